#pragma once
// CudaBackend's private state, shared by the files that implement it (CUDA types; include only
// from engine/cuda/*.cpp). The CUDA backend is split by op family as kernels/ is:
//   cuda_backend.cpp  construction, device description, memory, copies, timers
//   conv_cudnn.*      convolutions: per-shape cuDNN plans, algorithm choice, the forward /
//                     backward-data / backward-filter calls (FP32/TF32 or bf16 operands)
//   conv_plan.*       their plain host arithmetic, built and tested in every build: the padding
//                     plan and the workspace layout; conv_algo_choice.* the algorithm order
//   dense_cublas.cpp  dense layers through cuBLAS (cublasSgemm, or cublasGemmEx on bf16)
//   kernel_ops.cpp    every op that is one launcher of kernels/cuda (activations, batch norm,
//                     pooling, dropout, loss, optimizers, input)
//   cuda_precision.cpp  which Precision values this backend runs
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <memory>
#include <string>

#include "engine/cuda/check.h"
#include "engine/cuda/cuda_backend.h"

namespace fer {

class ConvPlanCache;  // engine/cuda/conv_cudnn.h

namespace cuda_detail {

constexpr size_t kAlign = 256;
inline size_t align_up(size_t v) { return (v + kAlign - 1) / kAlign * kAlign; }

// Makes `device` current on the calling thread for the scope of a backend call (cheap when it
// already is).
inline void ensure_device(int device) {
  int current = -1;
  FER_CUDA_CHECK(cudaGetDevice(&current), "");
  if (current != device) FER_CUDA_CHECK(cudaSetDevice(device), "device " + std::to_string(device));
}

}  // namespace cuda_detail

struct CudaBackend::Impl {
  int device = 0;
  BackendOptions options;
  bool tf32 = false;
  bool sync_check = false;  // FER_CUDA_SYNC_CHECK=1: wait after every op to pin down async faults
  cudaDeviceProp prop{};
  cudaStream_t stream = nullptr;
  cudnnHandle_t cudnn = nullptr;
  cublasHandle_t cublas = nullptr;
  void* cublas_workspace = nullptr;
  // Partial sums of the two-stage per-channel reductions (bias gradients, BN statistics): one
  // fixed buffer, so no op allocates; ops on the one stream use it one after another.
  double* reduce_scratch = nullptr;
  // cuDNN plans per convolution shape (engine/cuda/conv_cudnn.h).
  std::unique_ptr<ConvPlanCache> convs;
  // bf16 copies of a dense layer's operands (dense_cublas.cpp): grown, with the stream drained, the
  // first time a larger layer asks (the first step), never after.
  void* dense_bf16 = nullptr;
  size_t dense_bf16_bytes = 0;

  Impl();
  ~Impl();  // best effort, never throws (cuda_backend.cpp)

  // After an op: in sync-check mode, wait and attribute any asynchronous failure to this op.
  template <class Detail>
  void after_op(const char* op, Detail&& detail) {
    if (!sync_check) return;
    FER_CUDA_CHECK(cudaStreamSynchronize(stream), std::string(op) + ": " + detail());
  }
};

}  // namespace fer
