#pragma once
// The op set every backend implements, on pointers into that backend's memory. Layers in models/
// call these; the graph executor never sees layer types. CpuBackend runs kernels/cpu/, CudaBackend
// runs kernels/cuda/ and cuDNN/cuBLAS on one compute stream. All calls are asynchronous with
// respect to the host on CUDA; synchronize() waits.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "engine/precision.h"
#include "kernels/common/shapes.h"

namespace fer {

using kernels::Act;
using kernels::AdamParams;
using kernels::BatchNormShape;
using kernels::ConvShape;
using kernels::DenseShape;
using kernels::PoolMode;
using kernels::PoolShape;
using kernels::SgdParams;

enum class DeviceKind { cpu, cuda };
const char* device_name(DeviceKind kind);

// Per-image augmentation draw (Keras ImageDataGenerator semantics; see kernels/common/augment.h).
struct AugmentDraw;
namespace kernels {
struct AugmentConfig;
}

class Backend {
 public:
  virtual ~Backend() = default;
  virtual DeviceKind kind() const = 0;
  virtual std::string description() const = 0;

  // ---- memory (used by the arena and for host transfers) ----
  virtual void* allocate(size_t bytes) = 0;
  virtual void deallocate(void* p) = 0;
  virtual void copy_from_host(void* dst, const void* src, size_t bytes) = 0;
  virtual void copy_to_host(void* dst, const void* src, size_t bytes) = 0;
  virtual void copy(void* dst, const void* src, size_t bytes) = 0;
  virtual void fill(float* p, int64_t n, float value) = 0;
  virtual void synchronize() = 0;
  // Free and total device memory; false where the question has no useful answer (host memory).
  virtual bool memory_info(size_t* free_bytes, size_t* total_bytes) { return false; }
  // The backend's compute stream (cudaStream_t) for loaders that order copies against it;
  // null on the CPU.
  virtual void* native_stream() { return nullptr; }

  // ---- numeric mode (engine/precision.h): asked by Graph::plan, once per plan ----
  // The precision of a plan that names none: fp32 on the CPU; on CUDA tf32 when the backend has
  // TF32 math on, else fp32.
  virtual Precision default_precision() const { return Precision::fp32; }
  // Empty when a plan in precision p runs on this backend; otherwise why not, naming the missing
  // hardware feature or setting (a sentence shown to the user as is).
  virtual std::string precision_unsupported(Precision p) const;

  // ---- convolution (bias included; activation is a separate in-place op) ----
  // s.math / DenseShape::math: the operand type (the plan's precision); all pointers are FP32.
  // Bytes of scratch the forward/backward calls need for this shape (im2col buffer, cuDNN workspace).
  virtual size_t conv2d_workspace_bytes(const ConvShape& s) = 0;
  virtual void conv2d_forward(const ConvShape& s, const float* x, const float* w, const float* b,
                              float* y, void* workspace) = 0;
  // dx may be null (first layer). dw and db are overwritten, not accumulated.
  virtual void conv2d_backward(const ConvShape& s, const float* x, const float* w, const float* dy,
                               float* dx, float* dw, float* db, void* workspace) = 0;

  // ---- dense ----
  virtual void dense_forward(const DenseShape& s, const float* x, const float* w, const float* b,
                             float* y) = 0;
  virtual void dense_backward(const DenseShape& s, const float* x, const float* w, const float* dy,
                              float* dx, float* dw, float* db) = 0;

  // ---- element-wise activation; y may alias x, dx may alias dy ----
  // relu/linear act per element of n; softmax acts per row of `cols` (n = rows * cols).
  virtual void activation_forward(Act act, int64_t n, int cols, const float* x, float* y) = 0;
  virtual void activation_backward(Act act, int64_t n, int cols, const float* y, const float* dy,
                                   float* dx) = 0;

  // ---- batch normalisation ----
  // Training: normalise with batch statistics (biased variance), save mean and 1/sqrt(var+eps)
  // for backward, and update moving stats as Keras does: m = momentum*m + (1-momentum)*batch
  // (moving variance uses the unbiased batch variance, like TensorFlow).
  virtual void batchnorm_forward_train(const BatchNormShape& s, const float* x, const float* gamma,
                                       const float* beta, float* y, float* save_mean,
                                       float* save_invstd, float* moving_mean, float* moving_var,
                                       float momentum, float epsilon) = 0;
  virtual void batchnorm_forward_infer(const BatchNormShape& s, const float* x, const float* gamma,
                                       const float* beta, const float* moving_mean,
                                       const float* moving_var, float* y, float epsilon) = 0;
  virtual void batchnorm_backward(const BatchNormShape& s, const float* x, const float* gamma,
                                  const float* dy, const float* save_mean, const float* save_invstd,
                                  float* dx, float* dgamma, float* dbeta) = 0;

  // Synchronized BatchNormalization across data-parallel ranks (kernels/cpu/batch_norm.h has the
  // formulas): per-channel sums into HOST double arrays sums[2 * channels], then the input
  // gradient from the all-reduced means. The defaults throw DeviceError: only the CPU backend has
  // them so far (the trainer refuses --sync-batchnorm elsewhere, has_sync_batchnorm()).
  virtual bool has_sync_batchnorm() const { return false; }
  virtual void batchnorm_sums(const BatchNormShape& s, const float* x, const float* shift, double* sums);
  virtual void batchnorm_backward_sums(const BatchNormShape& s, const float* x, const float* dy,
                                       const float* mean, double* sums);
  virtual void batchnorm_backward_apply(const BatchNormShape& s, const float* x, const float* dy,
                                        const float* mean, const float* k, const float* mean_dy,
                                        const float* mean_dyxhat_invstd, float* dx);

  // ---- pooling ("valid"); GlobalAveragePooling2D is average pooling over the whole map ----
  virtual void pool2d_forward(const PoolShape& s, PoolMode mode, const float* x, float* y) = 0;
  // Max pooling routes each gradient to the first maximum of its window (recomputed from x, y).
  virtual void pool2d_backward(const PoolShape& s, PoolMode mode, const float* x, const float* y,
                               const float* dy, float* dx) = 0;

  // ---- inverted dropout; the mask is recomputed from (seed, stream_id) in backward ----
  // Element i of the n draws stream element first + i (kernels/cpu/dropout.h): 0 for one process,
  // a data-parallel rank's first row of the global batch times the row's elements otherwise.
  virtual void dropout_forward(int64_t n, float rate, uint64_t seed, uint64_t stream_id, uint64_t first,
                               const float* x, float* y) = 0;
  virtual void dropout_backward(int64_t n, float rate, uint64_t seed, uint64_t stream_id, uint64_t first,
                                const float* dy, float* dx) = 0;

  // ---- fused softmax + categorical cross-entropy over rows of logits ----
  // labels: int32 class ids. Adds the summed loss and the number of correct argmax predictions to
  // metrics[0] and metrics[1] (device doubles). dlogits (may be null) receives
  // (softmax - onehot) * grad_scale, where grad_scale is 1/batch for a mean loss.
  virtual void softmax_cross_entropy(int rows, int classes, const float* logits,
                                     const int32_t* labels, float* dlogits, float grad_scale,
                                     double* metrics) = 0;

  // ---- optimizers over one flat parameter buffer ----
  virtual void adam_update(int64_t n, float* params, const float* grads, float* m, float* v,
                           const AdamParams& p) = 0;
  virtual void sgd_update(int64_t n, float* params, const float* grads, float* velocity,
                          const SgdParams& p) = 0;

  // ---- timing (benchmarks): a timer marks a point in this backend's sequence of work ----
  // timer_record(t) stamps t when the work enqueued before it has run; timer_elapsed_ms(a, b) is
  // the time from a's stamp to b's, valid once both were recorded (it waits for b if needed).
  // Default (host backends): synchronize(), then read the steady clock. CudaBackend overrides
  // them with CUDA events on its stream (engine/cuda/cuda_timer.h), so timing a layer adds no host
  // synchronisation.
  virtual void* timer_create();
  virtual void timer_record(void* timer);
  virtual float timer_elapsed_ms(void* a, void* b);
  virtual void timer_destroy(void* timer);

  // ---- input: uint8 48x48 images -> float NHWC in [0, 1], optionally warped ----
  // draws: one per image (null: no augmentation). src and draws live in this backend's memory.
  virtual void images_to_float(int n, int h, int w, const uint8_t* src, const AugmentDraw* draws,
                               float* dst) = 0;

  // ---- resident data sets (loaders/resident_data.h): batches gathered where the data lives ----
  // For i < n, with r = indices[i]: row i of dst_images = row r of images (row_bytes bytes each),
  // dst_labels[i] = labels[r] (skipped when labels or dst_labels is null). Every pointer is in this
  // backend's memory; source and destination do not overlap.
  virtual void gather_rows(int n, const int32_t* indices, const uint8_t* images,
                           const int32_t* labels, int64_t row_bytes, uint8_t* dst_images,
                           int32_t* dst_labels) = 0;
  // dst[i] = kernels::augment_draw(seed, epoch, key, cfg) with key = keys[indices[i]] (the data-set
  // row of each resident row), or indices[i] when keys is null: the draws the batch stream makes on
  // the host for the same rows, bit for bit. indices, keys and dst are in this backend's memory.
  virtual void augment_draws(int n, const int32_t* indices, const int64_t* keys, uint64_t seed,
                             uint64_t epoch, const kernels::AugmentConfig& cfg,
                             AugmentDraw* dst) = 0;
};

// Settings of the CUDA backend (ignored by the CPU one).
struct BackendOptions {
  // TF32 tensor-core math in cuDNN convolutions and cuBLAS GEMMs, on GPUs that have it (sm_80+).
  // Off for exact-parity tests.
  bool allow_tf32 = true;
  // Only deterministic cuDNN algorithms (bitwise-reproducible runs from the same seed).
  bool deterministic = false;
};

std::unique_ptr<Backend> make_cpu_backend();
// Throws DeviceError when the build has no CUDA or no device is present.
std::unique_ptr<Backend> make_cuda_backend(int device_ordinal = 0, const BackendOptions& options = {});
// True when the build has CUDA and at least one device answers.
bool cuda_device_available(std::string* why_not = nullptr);

}  // namespace fer
