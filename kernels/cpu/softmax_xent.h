#pragma once
// Fused softmax + categorical cross-entropy on the CPU, numerically stable (log-sum-exp).
#include <cstdint>

namespace fer::kernels::cpu {

// For each row of logits[rows, classes] with its class id labels[row] in [0, classes):
//   loss = log(sum_j exp(z_j - max)) - (z_label - max)
// metrics[0] += sum of losses; metrics[1] += rows whose first maximal logit is the label.
// dlogits (may be null) = (softmax - onehot) * grad_scale. Throws std::out_of_range on a bad label.
void softmax_cross_entropy(int rows, int classes, const float* logits, const int32_t* labels,
                           float* dlogits, float grad_scale, double* metrics);

}  // namespace fer::kernels::cpu
