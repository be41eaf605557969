// One block of 8 warps; warp w handles rows w, w+8, ... with lane j owning classes j, j+32, ...
// Each warp keeps its loss and hit count in double, the block adds the 8 warp totals in a fixed
// order and one thread adds them to metrics: a single launch, deterministic, no host sync. The
// batch (a few hundred rows of 7 classes) is far too small to need more than one block.
#include <cmath>

#include "kernels/cuda/softmax_xent.cuh"

namespace fer::kernels::cuda {
namespace {

constexpr int kWarp = 32;
constexpr int kWarps = 8;

__global__ void softmax_xent_kernel(int rows, int classes, const float* logits,
                                    const int32_t* labels, float* dlogits, float grad_scale,
                                    double* metrics) {
  __shared__ double loss_of[kWarps];
  __shared__ double hits_of[kWarps];
  const int lane = threadIdx.x % kWarp;
  const int warp = threadIdx.x / kWarp;
  double loss_sum = 0.0, hit_sum = 0.0;  // meaningful in lane 0

  for (int row = warp; row < rows; row += kWarps) {
    const float* l = logits + int64_t(row) * classes;
    const int label = labels[row];
    // Max and first argmax: each lane scans its classes in ascending order (strict > keeps the
    // first), then the warp keeps the larger value, the smaller index on ties.
    float best = -INFINITY;
    int best_at = classes;
    for (int c = lane; c < classes; c += kWarp) {
      const float v = l[c];
      if (v > best || best_at == classes) { best = v; best_at = c; }
    }
    for (int off = kWarp / 2; off > 0; off /= 2) {
      const float ov = __shfl_xor_sync(0xffffffffu, best, off);
      const int oi = __shfl_xor_sync(0xffffffffu, best_at, off);
      if (ov > best || (ov == best && oi < best_at)) { best = ov; best_at = oi; }
    }
    // Exponentials and their sum in double, like the CPU kernel (a handful of classes per row).
    const double mx = double(best);
    double s = 0.0;
    for (int c = lane; c < classes; c += kWarp) s += exp(double(l[c]) - mx);
    for (int off = kWarp / 2; off > 0; off /= 2) s += __shfl_xor_sync(0xffffffffu, s, off);
    const bool label_ok = label >= 0 && label < classes;
    // The label's logit, read by the lane owning it before anyone overwrites it (dlogits may
    // alias logits), then broadcast.
    float l_label = 0.0f;
    if (label_ok && label % kWarp == lane) l_label = l[label];
    l_label = label_ok ? __shfl_sync(0xffffffffu, l_label, label % kWarp) : 0.0f;
    if (dlogits) {
      float* d = dlogits + int64_t(row) * classes;
      const double inv = 1.0 / s;
      for (int c = lane; c < classes; c += kWarp) {
        const double p = exp(double(l[c]) - mx) * inv;
        d[c] = float((p - (c == label ? 1.0 : 0.0)) * double(grad_scale));
      }
    }
    if (lane == 0) {
      loss_sum += label_ok ? log(s) - (double(l_label) - mx) : double(NAN);
      hit_sum += (label_ok && best_at == label) ? 1.0 : 0.0;
    }
  }
  if (lane == 0) {
    loss_of[warp] = loss_sum;
    hits_of[warp] = hit_sum;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    double lt = 0.0, ht = 0.0;
    for (int w = 0; w < kWarps; ++w) {
      lt += loss_of[w];
      ht += hits_of[w];
    }
    atomicAdd(&metrics[0], lt);
    atomicAdd(&metrics[1], ht);
  }
}

}  // namespace

cudaError_t softmax_cross_entropy(int rows, int classes, const float* logits,
                                  const int32_t* labels, float* dlogits, float grad_scale,
                                  double* metrics, cudaStream_t stream) {
  if (rows <= 0 || classes <= 0) return cudaSuccess;
  softmax_xent_kernel<<<1, kWarps * kWarp, 0, stream>>>(rows, classes, logits, labels, dlogits,
                                                       grad_scale, metrics);
  return cudaGetLastError();
}

}  // namespace fer::kernels::cuda
