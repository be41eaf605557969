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

#include "engine/cuda/cuda_backend.h"

namespace fer {

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
  size_t pad_bytes = 0;  // leading part of the workspace holding xp (0 without a padded copy)
  size_t total_ws = 0;   // pad_bytes + the largest cuDNN workspace

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
  // tf32: cuDNN may pick tensor-op math (TF32 on sm_80+); otherwise FMA math only.
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

  cudnnHandle_t cudnn_;
  bool tf32_, deterministic_;
  std::mutex mutex_;
  std::map<std::array<int, 13>, std::unique_ptr<ConvPlan>> plans_;
  // The largest workspace report() has given: what the executor provides.
  size_t max_reported_ws_ = 0;
};

}  // namespace fer
