#pragma once
// The GPU convolution: cuDNN plans per convolution shape (private to the CUDA backend; CUDA types).
// CudaBackend::conv2d_* (conv_cudnn.cpp) run a shape's plan; the padding scheme is described at
// ConvPadding in cuda_backend.h and the algorithm order in conv_algo_choice.h.
#include <cudnn.h>

#include <array>
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "engine/cuda/conv_plan.h"
#include "engine/cuda/cuda_backend.h"

namespace fer {

// Element type of x, w and y in cuDNN's view: FP32, or bf16 for MathType::bf16 (the legacy API's
// PSEUDO_BFLOAT16_CONFIG: bf16 tensors, FP32 compute type).
cudnnDataType_t cudnn_data_type(const ConvShape& s);

// The three passes of a convolution, each planned the same way (its own descriptor, because the
// math type goes with the chosen algorithm; its own algorithm and workspace).
enum class ConvPass : int { forward = 0, backward_data = 1, backward_filter = 2 };
constexpr int kConvPasses = 3;

struct ConvPassPlan {
  cudnnConvolutionDescriptor_t desc = nullptr;
  int algo = 0;  // cudnnConvolutionFwdAlgo_t / BwdDataAlgo_t / BwdFilterAlgo_t, by pass
  cudnnMathType_t math = CUDNN_FMA_MATH;
  size_t workspace = 0;  // bytes cuDNN needs for algo under math
};

// Everything cuDNN needs for one convolution shape.
struct ConvPlan {
  ConvShape shape;
  ConvPadding pad;
  cudnnTensorDescriptor_t x_desc = nullptr;  // x, or xp when pad.padded_copy
  cudnnTensorDescriptor_t y_desc = nullptr;
  cudnnFilterDescriptor_t w_desc = nullptr;
  std::array<ConvPassPlan, kConvPasses> passes;
  ConvWorkspace layout;  // where xp, the bf16 copies and cuDNN's workspace lie (conv_plan.h)
  size_t total_ws = 0;   // layout.total(the largest cuDNN workspace)

  ConvPlan() = default;
  ConvPlan(const ConvPlan&) = delete;
  ConvPlan& operator=(const ConvPlan&) = delete;
  ~ConvPlan();

  const ConvPassPlan& pass(ConvPass p) const { return passes[size_t(p)]; }
  ConvPassPlan& pass(ConvPass p) { return passes[size_t(p)]; }
  // "direct fwd=IMPLICIT_PRECOMP_GEMM/tensor_op(0B) bwd_data=... workspace=...B".
  std::string algorithms() const;
};

// Plans by shape, built on first use and kept for the backend's life. Thread-safe.
class ConvPlanCache {
 public:
  // tf32: cuDNN may pick tensor-op math for FP32 shapes (TF32 on sm_80+); otherwise FMA math only.
  // bf16 shapes always take the math type cuDNN lists with the algorithm (bf16 tensor cores).
  // deterministic: no measured times decide (conv_algo_choice.h).
  ConvPlanCache(cudnnHandle_t cudnn, bool tf32, bool deterministic)
      : cudnn_(cudnn), tf32_(tf32), deterministic_(deterministic) {}

  // The plan of a shape. `reported`: asked by conv2d_workspace_bytes (the caller will provide
  // what the plan needs); otherwise the shape was never planned (a batch size the executor did not
  // announce) and its algorithms must fit the workspace already provided (DeviceError if its
  // padded copy alone does not).
  const ConvPlan& plan(const ConvShape& s, bool reported);
  // conv2d_workspace_bytes: the plan's total workspace, remembered as a bound for unplanned shapes.
  size_t report(const ConvShape& s);

 private:
  std::unique_ptr<ConvPlan> build(const ConvShape& s, size_t cudnn_ws_cap);
  template <ConvPass P>
  void choose(ConvPlan& p, size_t cap);
  bool tensor_math(const ConvShape& s) const {
    return tf32_ || s.math == kernels::MathType::bf16;
  }

  cudnnHandle_t cudnn_;
  bool tf32_, deterministic_;
  std::mutex mutex_;
  std::map<std::array<int, 14>, std::unique_ptr<ConvPlan>> plans_;  // by shape and MathType
  // The largest workspace report() has given: what the executor provides.
  size_t max_reported_ws_ = 0;
};

}  // namespace fer
