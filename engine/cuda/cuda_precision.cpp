// CudaBackend's answers about precision (engine/precision.h), kept apart from cuda_backend.cpp.
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
      return "bf16 on CUDA (cuDNN/cuBLAS bf16 operands) is not implemented in this build: use tf32 or fp32";
  }
  return "unknown precision";
}

}  // namespace fer
