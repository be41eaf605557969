// CudaBackend's ops that are one launcher of kernels/cuda each (activations, batch normalisation,
// pooling, dropout, the fused loss, optimizers, input preparation): check the launch, name the op
// and its shape on failure, and nothing else. The kernels live in kernels/cuda/<family>.cu.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "engine/cuda/backend_impl.h"
#include "kernels/common/augment.h"
#include "kernels/cuda/activation.cuh"
#include "kernels/cuda/augment.cuh"
#include "kernels/cuda/batch_norm.cuh"
#include "kernels/cuda/dropout.cuh"
#include "kernels/cuda/gather.cuh"
#include "kernels/cuda/launch_util.cuh"
#include "kernels/cuda/optimizers.cuh"
#include "kernels/cuda/pooling.cuh"
#include "kernels/cuda/softmax_xent.cuh"

namespace fer {

namespace kc = kernels::cuda;
using cuda_detail::ensure_device;

std::string describe(const PoolShape& s) {
  return "pool2d x[" + std::to_string(s.n) + "," + std::to_string(s.h) + "," + std::to_string(s.w) +
         "," + std::to_string(s.c) + "] window " + std::to_string(s.ph) + "x" +
         std::to_string(s.pw) + " stride " + std::to_string(s.stride_h) + "x" +
         std::to_string(s.stride_w) + " -> y[" + std::to_string(s.n) + "," + std::to_string(s.oh) +
         "," + std::to_string(s.ow) + "," + std::to_string(s.c) + "]";
}

std::string describe(const BatchNormShape& s) {
  return "batchnorm rows " + std::to_string(s.rows) + " channels " + std::to_string(s.channels);
}

// ------------------------------------------------------------------------------------------------
// Activations.

namespace {

int64_t softmax_rows(int64_t n, int cols) {
  if (cols <= 0 || n % cols != 0) {
    throw std::invalid_argument("softmax activation: n=" + std::to_string(n) +
                                " is not a multiple of a positive cols=" + std::to_string(cols));
  }
  return n / cols;
}

}  // namespace

void CudaBackend::activation_forward(Act act, int64_t n, int cols, const float* x, float* y) {
  Impl& m = *impl_;
  ensure_device(m.device);
  const auto what = [&] {
    return "activation " + std::to_string(int(act)) + " n=" + std::to_string(n) +
           " cols=" + std::to_string(cols);
  };
  switch (act) {
    case Act::linear:
      if (x != y && n > 0) {
        FER_CUDA_CHECK(cudaMemcpyAsync(y, x, size_t(n) * sizeof(float), cudaMemcpyDeviceToDevice,
                                       m.stream),
                       what());
      }
      break;
    case Act::relu:
      FER_CUDA_CHECK(kc::relu_forward(n, x, y, m.stream), what());
      break;
    case Act::softmax:
      FER_CUDA_CHECK(kc::softmax_forward(softmax_rows(n, cols), cols, x, y, m.stream), what());
      break;
    default:
      throw std::invalid_argument("activation_forward: unknown activation " +
                                  std::to_string(int(act)));
  }
  m.after_op("activation_forward", what);
}

void CudaBackend::activation_backward(Act act, int64_t n, int cols, const float* y,
                                      const float* dy, float* dx) {
  Impl& m = *impl_;
  ensure_device(m.device);
  const auto what = [&] {
    return "activation " + std::to_string(int(act)) + " n=" + std::to_string(n) +
           " cols=" + std::to_string(cols);
  };
  switch (act) {
    case Act::linear:
      if (dy != dx && n > 0) {
        FER_CUDA_CHECK(cudaMemcpyAsync(dx, dy, size_t(n) * sizeof(float),
                                       cudaMemcpyDeviceToDevice, m.stream),
                       what());
      }
      break;
    case Act::relu:
      FER_CUDA_CHECK(kc::relu_backward(n, y, dy, dx, m.stream), what());
      break;
    case Act::softmax:
      FER_CUDA_CHECK(kc::softmax_backward(softmax_rows(n, cols), cols, y, dy, dx, m.stream),
                     what());
      break;
    default:
      throw std::invalid_argument("activation_backward: unknown activation " +
                                  std::to_string(int(act)));
  }
  m.after_op("activation_backward", what);
}

// ------------------------------------------------------------------------------------------------
// Batch normalisation, pooling, dropout.

void CudaBackend::batchnorm_forward_train(const BatchNormShape& s, const float* x,
                                          const float* gamma, const float* beta, float* y,
                                          float* save_mean, float* save_invstd,
                                          float* moving_mean, float* moving_var, float momentum,
                                          float epsilon) {
  Impl& m = *impl_;
  ensure_device(m.device);
  const auto what = [&] { return describe(s); };
  FER_CUDA_CHECK(kc::batchnorm_forward_train(s.rows, s.channels, x, gamma, beta, y, save_mean,
                                             save_invstd, moving_mean, moving_var, momentum,
                                             epsilon, m.reduce_scratch, kc::kReduceScratchBytes,
                                             m.stream),
                 what());
  m.after_op("batchnorm_forward_train", what);
}

void CudaBackend::batchnorm_forward_infer(const BatchNormShape& s, const float* x,
                                          const float* gamma, const float* beta,
                                          const float* moving_mean, const float* moving_var,
                                          float* y, float epsilon) {
  Impl& m = *impl_;
  ensure_device(m.device);
  const auto what = [&] { return describe(s); };
  FER_CUDA_CHECK(kc::batchnorm_forward_infer(s.rows, s.channels, x, gamma, beta, moving_mean,
                                             moving_var, y, epsilon, m.stream),
                 what());
  m.after_op("batchnorm_forward_infer", what);
}

void CudaBackend::batchnorm_backward(const BatchNormShape& s, const float* x, const float* gamma,
                                     const float* dy, const float* save_mean,
                                     const float* save_invstd, float* dx, float* dgamma,
                                     float* dbeta) {
  Impl& m = *impl_;
  ensure_device(m.device);
  const auto what = [&] { return describe(s); };
  if (!dgamma || !dbeta) {
    throw std::invalid_argument("batchnorm_backward needs dgamma and dbeta buffers: " + what());
  }
  FER_CUDA_CHECK(kc::batchnorm_backward(s.rows, s.channels, x, gamma, dy, save_mean, save_invstd,
                                        dx, dgamma, dbeta, m.reduce_scratch,
                                        kc::kReduceScratchBytes, m.stream),
                 what());
  m.after_op("batchnorm_backward", what);
}

void CudaBackend::pool2d_forward(const PoolShape& s, PoolMode mode, const float* x, float* y) {
  Impl& m = *impl_;
  ensure_device(m.device);
  const auto what = [&] { return describe(s) + (mode == PoolMode::max ? " max" : " average"); };
  FER_CUDA_CHECK(kc::pool2d_forward(s, mode, x, y, m.stream), what());
  m.after_op("pool2d_forward", what);
}

void CudaBackend::pool2d_backward(const PoolShape& s, PoolMode mode, const float* x,
                                  const float* y, const float* dy, float* dx) {
  Impl& m = *impl_;
  ensure_device(m.device);
  const auto what = [&] { return describe(s) + (mode == PoolMode::max ? " max" : " average"); };
  FER_CUDA_CHECK(kc::pool2d_backward(s, mode, x, y, dy, dx, m.stream), what());
  m.after_op("pool2d_backward", what);
}

void CudaBackend::dropout_forward(int64_t n, float rate, uint64_t seed, uint64_t stream_id,
                                  uint64_t first, const float* x, float* y) {
  Impl& m = *impl_;
  ensure_device(m.device);
  const auto what = [&] { return "dropout n=" + std::to_string(n) + " rate=" + std::to_string(rate); };
  FER_CUDA_CHECK(kc::dropout_apply(n, rate, seed, stream_id, first, x, y, m.stream), what());
  m.after_op("dropout_forward", what);
}

void CudaBackend::dropout_backward(int64_t n, float rate, uint64_t seed, uint64_t stream_id,
                                   uint64_t first, const float* dy, float* dx) {
  Impl& m = *impl_;
  ensure_device(m.device);
  const auto what = [&] { return "dropout n=" + std::to_string(n) + " rate=" + std::to_string(rate); };
  FER_CUDA_CHECK(kc::dropout_apply(n, rate, seed, stream_id, first, dy, dx, m.stream), what());
  m.after_op("dropout_backward", what);
}

// ------------------------------------------------------------------------------------------------
// Loss, optimizers, input.

void CudaBackend::softmax_cross_entropy(int rows, int classes, const float* logits,
                                        const int32_t* labels, float* dlogits, float grad_scale,
                                        double* metrics) {
  Impl& m = *impl_;
  ensure_device(m.device);
  const auto what = [&] {
    return "softmax_cross_entropy rows=" + std::to_string(rows) +
           " classes=" + std::to_string(classes);
  };
  FER_CUDA_CHECK(kc::softmax_cross_entropy(rows, classes, logits, labels, dlogits, grad_scale,
                                           metrics, m.stream),
                 what());
  m.after_op("softmax_cross_entropy", what);
}

void CudaBackend::adam_update(int64_t n, float* params, const float* grads, float* mom, float* v,
                              const AdamParams& p) {
  Impl& m = *impl_;
  ensure_device(m.device);
  const auto what = [&] { return "adam n=" + std::to_string(n) + " step=" + std::to_string(p.step); };
  FER_CUDA_CHECK(kc::adam_update(n, params, grads, mom, v, p, m.stream), what());
  m.after_op("adam_update", what);
}

void CudaBackend::sgd_update(int64_t n, float* params, const float* grads, float* velocity,
                             const SgdParams& p) {
  Impl& m = *impl_;
  ensure_device(m.device);
  const auto what = [&] { return "sgd n=" + std::to_string(n); };
  FER_CUDA_CHECK(kc::sgd_update(n, params, grads, velocity, p, m.stream), what());
  m.after_op("sgd_update", what);
}

void CudaBackend::images_to_float(int n, int h, int w, const uint8_t* src,
                                  const AugmentDraw* draws, float* dst) {
  Impl& m = *impl_;
  ensure_device(m.device);
  const auto what = [&] {
    return "images_to_float n=" + std::to_string(n) + " " + std::to_string(h) + "x" +
           std::to_string(w);
  };
  try {
    kc::images_to_float(n, h, w, src, draws, dst, m.stream);
  } catch (const std::exception& e) {
    cuda_check::fail("CUDA", "kernels::cuda::images_to_float", e.what(), __FILE__, __LINE__,
                     what());
  }
  m.after_op("images_to_float", what);
}

void CudaBackend::gather_rows(int n, const int32_t* indices, const uint8_t* images,
                              const int32_t* labels, int64_t row_bytes, uint8_t* dst_images,
                              int32_t* dst_labels) {
  Impl& m = *impl_;
  ensure_device(m.device);
  const auto what = [&] {
    return "gather_rows n=" + std::to_string(n) + " row_bytes=" + std::to_string(row_bytes);
  };
  FER_CUDA_CHECK(kc::gather_rows(n, indices, images, labels, row_bytes, dst_images, dst_labels,
                                 m.stream),
                 what());
  m.after_op("gather_rows", what);
}

void CudaBackend::augment_draws(int n, const int32_t* indices, const int64_t* keys, uint64_t seed,
                                uint64_t epoch, const kernels::AugmentConfig& cfg,
                                AugmentDraw* dst) {
  Impl& m = *impl_;
  ensure_device(m.device);
  const auto what = [&] {
    return "augment_draws n=" + std::to_string(n) + " epoch=" + std::to_string(epoch);
  };
  FER_CUDA_CHECK(kc::augment_draws(n, indices, keys, seed, epoch, cfg, dst, m.stream), what());
  m.after_op("augment_draws", what);
}

}  // namespace fer
