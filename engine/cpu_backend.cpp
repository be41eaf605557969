// The host backend: every op forwards to kernels/cpu; memory is 64-byte aligned host memory.
#include <omp.h>

#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "engine/backend.h"
#include "kernels/cpu/bf16.h"
#include "kernels/cpu/ops.h"

namespace fer {
namespace {

constexpr size_t kAlignment = 64;

class CpuBackend final : public Backend {
 public:
  DeviceKind kind() const override { return DeviceKind::cpu; }

  // The kernels split their work over OpenMP threads and call OpenBLAS single-threaded inside
  // them (kernels/cpu/gemm.h); convolutions run on oneDNN when the build has it (one OpenMP
  // pool), unless FER_CPU_CONV=im2col (kernels/cpu/conv2d.h).
  std::string description() const override {
    using kernels::cpu::ConvImpl;
    const bool onednn = kernels::cpu::conv_onednn_compiled() &&
                        kernels::cpu::conv_impl() != ConvImpl::im2col;
    // A bf16 run on the slow rounding path says so: its speed is not a bf16 figure.
    const bool emulated = kernels::cpu::bf16_impl() == kernels::cpu::Bf16Impl::emulated;
    return "cpu (" + std::to_string(omp_get_max_threads()) + " OpenMP threads, " +
           (onednn ? "oneDNN convolutions, " : "im2col convolutions, ") + "OpenBLAS GEMMs" +
           (emulated ? "; bf16 emulated in FP32 kernels (FER_CPU_BF16=emulate)" : "") + ")";
  }

  // bf16 needs bf16 instructions (AVX512-BF16 or AMX-BF16) and oneDNN; FER_CPU_BF16=emulate
  // accepts it anywhere (the slow rounding path of kernels/cpu/bf16.h, for tests).
  std::string precision_unsupported(Precision p) const override {
    using kernels::cpu::Bf16Impl;
    if (p != Precision::bf16) return Backend::precision_unsupported(p);
    const auto& bf16 = kernels::cpu::cpu_bf16_support();
    if (bf16.native() || kernels::cpu::bf16_impl() == Bf16Impl::emulated) return "";
    return "bf16 on the CPU needs oneDNN and a CPU with AVX512-BF16 or AMX-BF16 instructions; this "
           "one has neither (" + bf16.summary + "): use fp32";
  }

  void* allocate(size_t bytes) override {
    const size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
    void* p = std::aligned_alloc(kAlignment, rounded == 0 ? kAlignment : rounded);
    if (!p) throw std::bad_alloc();
    return p;
  }
  void deallocate(void* p) override { std::free(p); }
  void copy_from_host(void* dst, const void* src, size_t bytes) override {
    if (bytes) std::memcpy(dst, src, bytes);
  }
  void copy_to_host(void* dst, const void* src, size_t bytes) override {
    if (bytes) std::memcpy(dst, src, bytes);
  }
  void copy(void* dst, const void* src, size_t bytes) override {
    if (bytes && dst != src) std::memmove(dst, src, bytes);
  }
  void fill(float* p, int64_t n, float value) override {
#pragma omp parallel for simd schedule(static) if (n > (int64_t(1) << 16))
    for (int64_t i = 0; i < n; ++i) p[i] = value;
  }
  void synchronize() override {}

  size_t conv2d_workspace_bytes(const ConvShape& s) override {
    return kernels::cpu::conv2d_workspace_bytes(s);
  }
  void conv2d_forward(const ConvShape& s, const float* x, const float* w, const float* b, float* y,
                      void* workspace) override {
    kernels::cpu::conv2d_forward(s, x, w, b, y, workspace);
  }
  void conv2d_backward(const ConvShape& s, const float* x, const float* w, const float* dy,
                       float* dx, float* dw, float* db, void* workspace) override {
    kernels::cpu::conv2d_backward(s, x, w, dy, dx, dw, db, workspace);
  }

  void dense_forward(const DenseShape& s, const float* x, const float* w, const float* b,
                     float* y) override {
    kernels::cpu::dense_forward(s, x, w, b, y);
  }
  void dense_backward(const DenseShape& s, const float* x, const float* w, const float* dy,
                      float* dx, float* dw, float* db) override {
    kernels::cpu::dense_backward(s, x, w, dy, dx, dw, db);
  }

  void activation_forward(Act act, int64_t n, int cols, const float* x, float* y) override {
    kernels::cpu::activation_forward(act, n, cols, x, y);
  }
  void activation_backward(Act act, int64_t n, int cols, const float* y, const float* dy,
                           float* dx) override {
    kernels::cpu::activation_backward(act, n, cols, y, dy, dx);
  }

  void batchnorm_forward_train(const BatchNormShape& s, const float* x, const float* gamma,
                               const float* beta, float* y, float* save_mean, float* save_invstd,
                               float* moving_mean, float* moving_var, float momentum,
                               float epsilon) override {
    kernels::cpu::batchnorm_forward_train(s, x, gamma, beta, y, save_mean, save_invstd, moving_mean,
                                          moving_var, momentum, epsilon);
  }
  void batchnorm_forward_infer(const BatchNormShape& s, const float* x, const float* gamma,
                               const float* beta, const float* moving_mean, const float* moving_var,
                               float* y, float epsilon) override {
    kernels::cpu::batchnorm_forward_infer(s, x, gamma, beta, moving_mean, moving_var, y, epsilon);
  }
  bool has_sync_batchnorm() const override { return true; }
  void batchnorm_sums(const BatchNormShape& s, const float* x, const float* shift, double* sums) override {
    kernels::cpu::batchnorm_sums(s, x, shift, sums);
  }
  void batchnorm_backward_sums(const BatchNormShape& s, const float* x, const float* dy, const float* mean,
                               double* sums) override {
    kernels::cpu::batchnorm_backward_sums(s, x, dy, mean, sums);
  }
  void batchnorm_backward_apply(const BatchNormShape& s, const float* x, const float* dy, const float* mean,
                                const float* k, const float* mean_dy, const float* mean_dyxhat_invstd,
                                float* dx) override {
    kernels::cpu::batchnorm_backward_apply(s, x, dy, mean, k, mean_dy, mean_dyxhat_invstd, dx);
  }
  void batchnorm_backward(const BatchNormShape& s, const float* x, const float* gamma,
                          const float* dy, const float* save_mean, const float* save_invstd,
                          float* dx, float* dgamma, float* dbeta) override {
    kernels::cpu::batchnorm_backward(s, x, gamma, dy, save_mean, save_invstd, dx, dgamma, dbeta);
  }

  void pool2d_forward(const PoolShape& s, PoolMode mode, const float* x, float* y) override {
    kernels::cpu::pool2d_forward(s, mode, x, y);
  }
  void pool2d_backward(const PoolShape& s, PoolMode mode, const float* x, const float* y,
                       const float* dy, float* dx) override {
    kernels::cpu::pool2d_backward(s, mode, x, y, dy, dx);
  }

  void dropout_forward(int64_t n, float rate, uint64_t seed, uint64_t stream_id, uint64_t first,
                       const float* x, float* y) override {
    kernels::cpu::dropout_forward(n, rate, seed, stream_id, first, x, y);
  }
  void dropout_backward(int64_t n, float rate, uint64_t seed, uint64_t stream_id, uint64_t first,
                        const float* dy, float* dx) override {
    kernels::cpu::dropout_backward(n, rate, seed, stream_id, first, dy, dx);
  }

  void softmax_cross_entropy(int rows, int classes, const float* logits, const int32_t* labels,
                             float* dlogits, float grad_scale, double* metrics) override {
    kernels::cpu::softmax_cross_entropy(rows, classes, logits, labels, dlogits, grad_scale,
                                        metrics);
  }

  void adam_update(int64_t n, float* params, const float* grads, float* m, float* v,
                   const AdamParams& p) override {
    kernels::cpu::adam_update(n, params, grads, m, v, p);
  }
  void sgd_update(int64_t n, float* params, const float* grads, float* velocity,
                  const SgdParams& p) override {
    kernels::cpu::sgd_update(n, params, grads, velocity, p);
  }

  void images_to_float(int n, int h, int w, const uint8_t* src, const AugmentDraw* draws,
                       float* dst) override {
    kernels::cpu::images_to_float(n, h, w, src, draws, dst);
  }

  void gather_rows(int n, const int32_t* indices, const uint8_t* images, const int32_t* labels,
                   int64_t row_bytes, uint8_t* dst_images, int32_t* dst_labels) override {
    kernels::cpu::gather_rows(n, indices, images, labels, row_bytes, dst_images, dst_labels);
  }
  void augment_draws(int n, const int32_t* indices, const int64_t* keys, uint64_t seed,
                     uint64_t epoch, const kernels::AugmentConfig& cfg, AugmentDraw* dst) override {
    kernels::cpu::augment_draws(n, indices, keys, seed, epoch, cfg, dst);
  }
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace fer
