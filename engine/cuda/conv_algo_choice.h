#pragma once
// The order in which the CUDA backend tries cuDNN convolution algorithms for one pass of one
// shape (plain C++, no cuDNN types, so it is unit-tested on any machine).
//
// Default mode: cuDNN's measured candidates as returned (fastest first), then its heuristic list.
// Deterministic mode: measured times must not decide. Two processes, or two backends in one
// test, measure slightly different times and would pick different algorithms, and different
// algorithms differ in their last bits. So the order is a pure function of the candidate SET: the
// non-deterministic, failed, over-cap and fp16-converting candidates are dropped, duplicates
// (the same algorithm and math type listed twice) are merged, and the rest sorted by a fixed
// preference list of algorithm ids (unlisted ids after, ascending), then by math type. Neither the
// list's order nor any time affects the result.
#include <cstddef>
#include <cstdint>
#include <vector>

namespace fer {

struct ConvAlgoCandidate {
  int algo = 0;               // the cudnnConvolution*Algo_t value
  bool ok = true;             // cuDNN's status for it was CUDNN_STATUS_SUCCESS
  bool deterministic = true;  // cudnnDeterminism_t == CUDNN_DETERMINISTIC
  int math = 0;               // cudnnMathType_t value
  size_t workspace = 0;       // bytes cuDNN reported
  float time_ms = -1.0f;      // measured by cudnnFind* (negative: from the heuristic)
};

// Indices into `candidates` in the order to try them. `excluded_math` (cuDNN's
// CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION: fp16 inside) is never taken; `preference` lists algorithm
// ids best first for deterministic mode (ignored otherwise).
std::vector<size_t> conv_algo_try_order(const std::vector<ConvAlgoCandidate>& candidates,
                                        size_t workspace_cap, bool deterministic, int excluded_math,
                                        const std::vector<int>& preference);

}  // namespace fer
