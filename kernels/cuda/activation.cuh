#pragma once
// Element-wise activations and row softmax (NHWC / row-major). y may alias x and dx may alias dy.
// Host-includable launchers; each returns the launch status (cudaGetLastError()).
#include <cstdint>

#include <cuda_runtime_api.h>

namespace fer::kernels::cuda {

// y = max(x, 0)
cudaError_t relu_forward(int64_t n, const float* x, float* y, cudaStream_t stream);
// dx = dy where y > 0, else 0 (TensorFlow's ReluGrad, from the output).
cudaError_t relu_backward(int64_t n, const float* y, const float* dy, float* dx,
                          cudaStream_t stream);

// Per row of `cols`: y = exp(x - max) / sum(exp(x - max)).
cudaError_t softmax_forward(int64_t rows, int cols, const float* x, float* y, cudaStream_t stream);
// Per row: dx = y * (dy - sum(dy * y)).
cudaError_t softmax_backward(int64_t rows, int cols, const float* y, const float* dy, float* dx,
                             cudaStream_t stream);

}  // namespace fer::kernels::cuda
