#pragma once
// Fused softmax + categorical cross-entropy over rows of logits, with loss and accuracy summed on
// the device. Host-includable launcher.
#include <cstdint>

#include <cuda_runtime_api.h>

namespace fer::kernels::cuda {

// Per row r: p = softmax(logits[r]); loss_r = log(sum exp(l - max)) - (l[label] - max);
// correct_r = (first argmax of logits[r] == label). metrics[0] += sum loss_r,
// metrics[1] += sum correct_r (device doubles). dlogits (may be null, may alias logits) =
// (p - onehot(label)) * grad_scale. A label outside [0, classes) adds NaN to the loss.
cudaError_t softmax_cross_entropy(int rows, int classes, const float* logits,
                                  const int32_t* labels, float* dlogits, float grad_scale,
                                  double* metrics, cudaStream_t stream);

}  // namespace fer::kernels::cuda
