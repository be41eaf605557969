#pragma once
// FP32 <-> bf16 element casts for the bf16 matrix ops of the CUDA backend (MathType::bf16): the
// operands of cuDNN convolutions and cuBLAS GEMMs are bf16 copies of FP32 buffers, and cuDNN's
// bf16 results are widened back to FP32. bf16 values travel as their uint16_t bit patterns (the
// layout of __nv_bfloat16), so this header needs no cuda_bf16.h. Rounding: to nearest even,
// kernels/common/bf16_bits.h. Host-includable launchers; each returns the launch status.
#include <cstdint>

#include <cuda_runtime_api.h>

namespace fer::kernels::cuda {

// y[i] = bf16(x[i]) for i < n.
cudaError_t float_to_bf16(int64_t n, const float* x, uint16_t* y, cudaStream_t stream);
// y[i] = float(x[i]) for i < n (exact).
cudaError_t bf16_to_float(int64_t n, const uint16_t* x, float* y, cudaStream_t stream);

}  // namespace fer::kernels::cuda
