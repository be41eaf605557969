// CudaBackend's answers about precision (engine/precision.h), kept apart from cuda_backend.cpp.
//   fp32, tf32: fixed when the backend is made (BackendOptions::allow_tf32 and the GPU's TF32).
//   bf16: convolutions (conv_cudnn.cpp) and dense layers (dense_cublas.cpp) on bf16 operands with
//         FP32 accumulation, on any backend of a GPU with bf16 tensor cores (sm_80+); every other
//         op, and every buffer, stays FP32 whatever allow_tf32 says.
#include "engine/cuda/backend_impl.h"
#include "engine/cuda/cuda_backend.h"

namespace fer {

Precision CudaBackend::default_precision() const {
  return tf32_enabled() ? Precision::tf32 : Precision::fp32;
}

std::string CudaBackend::precision_unsupported(Precision p) const {
  switch (p) {
    case Precision::fp32:
      return tf32_enabled() ? "this CUDA backend was made with TF32 math on (BackendOptions::allow_tf32); "
                              "make it with allow_tf32 = false for fp32"
                            : "";
    case Precision::tf32:
      if (tf32_enabled()) return "";
      return options().allow_tf32 ? "tf32 needs TF32 tensor cores (compute capability 8.0 or later); this GPU "
                                    "has none: use fp32"
                                  : "this CUDA backend was made with TF32 math off (BackendOptions::allow_tf32)";
    case Precision::bf16:
      if (impl_->prop.major >= 8) return "";
      return "bf16 on CUDA needs bf16 tensor cores (compute capability 8.0 or later; cuDNN's bf16 "
             "convolutions and cuBLAS's bf16 GEMMs); this GPU is sm_" +
             std::to_string(impl_->prop.major) + std::to_string(impl_->prop.minor) +
             ": use fp32 or tf32";
  }
  return "unknown precision";
}

}  // namespace fer
