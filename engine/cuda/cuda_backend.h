#pragma once
// The CUDA backend: one compute stream per backend, cuDNN and cuBLAS handles bound to it, custom
// kernels from kernels/cuda/. Every op is asynchronous on that stream (no host synchronisation, no
// allocation), so a training step can be captured as a CUDA graph; the exceptions are stated below.
//
// Convolutions (NHWC activations, OHWI = cuDNN NHWC/KRSC filters) run through cuDNN (engine/cuda/
// conv_cudnn.cpp; dense layers: dense_cublas.cpp; the file map: backend_impl.h). For each
// ConvShape the first conv2d_workspace_bytes() (or, failing that, the first conv call) builds a
// plan: descriptors, how the padding is expressed (plan_conv_padding below) and the fastest
// forward / backward-data / backward-filter algorithms measured by cudnnFind*Algorithm (host
// blocking: call conv2d_workspace_bytes for every shape while planning, before the step loop or
// any graph capture). With BackendOptions::deterministic no time is measured: the algorithms are
// a fixed function of the shape and cuDNN's heuristic candidate list (engine/cuda/
// conv_algo_choice.h), so every process picks the same. Plans are cached per shape and MathType.
//
// MathType::bf16 (Precision::bf16): convolutions and dense layers cast their FP32 operands to bf16
// copies (kernels/cuda/cast.cuh; in the convolution workspace, conv_plan.h, or for dense layers a
// backend-owned buffer grown on the first call of a larger shape) and multiply them with FP32
// accumulation; every pointer stays FP32. Weights are cast at each call (forward, and again for the
// data gradient), not once per step.
//
// This header is plain C++ (no CUDA types): the implementation lives behind a pointer.
#include <memory>
#include <string>

#include "engine/backend.h"
#include "engine/cuda/conv_plan.h"

namespace fer {

// One-line descriptions used in error messages (describe(ConvShape): conv_plan.h).
std::string describe(const DenseShape& s);
std::string describe(const PoolShape& s);
std::string describe(const BatchNormShape& s);

class CudaBackend final : public Backend {
 public:
  // Throws DeviceError when the device cannot be opened.
  CudaBackend(int device_ordinal, const BackendOptions& options);
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  DeviceKind kind() const override { return DeviceKind::cuda; }
  std::string description() const override;
  // Whether TF32 math is actually in use (allowed by the options and supported by the device).
  bool tf32_enabled() const;
  const BackendOptions& options() const;
  // Precision (engine/precision.h; defined in cuda_precision.cpp): tf32 when TF32 is enabled,
  // else fp32; fp32 and tf32 are fixed when the backend is made (BackendOptions::allow_tf32); bf16
  // runs on GPUs with bf16 tensor cores (sm_80+), refused on older ones naming that.
  Precision default_precision() const override;
  std::string precision_unsupported(Precision p) const override;

  // allocate: cudaMalloc (at least 256 bytes, so never null); out of memory throws DeviceError
  // with the bytes asked for and the bytes free. deallocate: cudaFree (synchronises the device).
  void* allocate(size_t bytes) override;
  bool memory_info(size_t* free_bytes, size_t* total_bytes) override;
  // CUDA events on the compute stream: timing a layer adds no host synchronisation.
  void* timer_create() override;
  void timer_record(void* timer) override;
  float timer_elapsed_ms(void* a, void* b) override;
  void timer_destroy(void* timer) override;
  void deallocate(void* p) override;
  // Enqueued on the compute stream. With pageable src the data has been taken when this returns;
  // with pinned src keep it unchanged until the stream has passed the copy.
  void copy_from_host(void* dst, const void* src, size_t bytes) override;
  // Waits for the compute stream (everything enqueued before included), so dst is ready on return.
  void copy_to_host(void* dst, const void* src, size_t bytes) override;
  void copy(void* dst, const void* src, size_t bytes) override;
  void fill(float* p, int64_t n, float value) override;
  void synchronize() override;
  void* native_stream() override;  // the cudaStream_t of every op

  size_t conv2d_workspace_bytes(const ConvShape& s) override;
  void conv2d_forward(const ConvShape& s, const float* x, const float* w, const float* b, float* y,
                      void* workspace) override;
  void conv2d_backward(const ConvShape& s, const float* x, const float* w, const float* dy,
                       float* dx, float* dw, float* db, void* workspace) override;

  void dense_forward(const DenseShape& s, const float* x, const float* w, const float* b,
                     float* y) override;
  void dense_backward(const DenseShape& s, const float* x, const float* w, const float* dy,
                      float* dx, float* dw, float* db) override;

  void activation_forward(Act act, int64_t n, int cols, const float* x, float* y) override;
  void activation_backward(Act act, int64_t n, int cols, const float* y, const float* dy,
                           float* dx) override;

  void batchnorm_forward_train(const BatchNormShape& s, const float* x, const float* gamma,
                               const float* beta, float* y, float* save_mean, float* save_invstd,
                               float* moving_mean, float* moving_var, float momentum,
                               float epsilon) override;
  void batchnorm_forward_infer(const BatchNormShape& s, const float* x, const float* gamma,
                               const float* beta, const float* moving_mean, const float* moving_var,
                               float* y, float epsilon) override;
  void batchnorm_backward(const BatchNormShape& s, const float* x, const float* gamma,
                          const float* dy, const float* save_mean, const float* save_invstd,
                          float* dx, float* dgamma, float* dbeta) override;

  void pool2d_forward(const PoolShape& s, PoolMode mode, const float* x, float* y) override;
  void pool2d_backward(const PoolShape& s, PoolMode mode, const float* x, const float* y,
                       const float* dy, float* dx) override;

  void dropout_forward(int64_t n, float rate, uint64_t seed, uint64_t stream_id, uint64_t first,
                       const float* x, float* y) override;
  void dropout_backward(int64_t n, float rate, uint64_t seed, uint64_t stream_id, uint64_t first,
                        const float* dy, float* dx) override;

  void softmax_cross_entropy(int rows, int classes, const float* logits, const int32_t* labels,
                             float* dlogits, float grad_scale, double* metrics) override;

  void adam_update(int64_t n, float* params, const float* grads, float* m, float* v,
                   const AdamParams& p) override;
  void sgd_update(int64_t n, float* params, const float* grads, float* velocity,
                  const SgdParams& p) override;

  void images_to_float(int n, int h, int w, const uint8_t* src, const AugmentDraw* draws,
                       float* dst) override;

  void gather_rows(int n, const int32_t* indices, const uint8_t* images, const int32_t* labels,
                   int64_t row_bytes, uint8_t* dst_images, int32_t* dst_labels) override;
  void augment_draws(int n, const int32_t* indices, const int64_t* keys, uint64_t seed,
                     uint64_t epoch, const kernels::AugmentConfig& cfg, AugmentDraw* dst) override;

  // The algorithms chosen for a shape, for logs and benchmarks ("fwd=IMPLICIT_PRECOMP_GEMM ...").
  std::string conv_algorithms(const ConvShape& s);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace fer
