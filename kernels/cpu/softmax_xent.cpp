#include "kernels/cpu/softmax_xent.h"

#include <cmath>
#include <stdexcept>
#include <string>

#include "kernels/cpu/parallel.h"

namespace fer::kernels::cpu {

void softmax_cross_entropy(int rows, int classes, const float* logits, const int32_t* labels,
                           float* dlogits, float grad_scale, double* metrics) {
  for (int r = 0; r < rows; ++r) {
    if (labels[r] < 0 || labels[r] >= classes) {
      throw std::out_of_range("softmax_cross_entropy: label " + std::to_string(labels[r]) +
                              " of row " + std::to_string(r) + " is outside [0, " +
                              std::to_string(classes) + ")");
    }
  }
  double loss_sum = 0.0, correct = 0.0;
  const bool parallel = int64_t(rows) * classes >= detail::kMinParallelElements;
#pragma omp parallel for schedule(static) reduction(+ : loss_sum, correct) if (parallel)
  for (int r = 0; r < rows; ++r) {
    const float* z = logits + int64_t(r) * classes;
    const int label = labels[r];
    int arg = 0;
    for (int j = 1; j < classes; ++j) {
      if (z[j] > z[arg]) arg = j;
    }
    const double mx = double(z[arg]);
    double sum = 0.0;
    for (int j = 0; j < classes; ++j) sum += std::exp(double(z[j]) - mx);
    const double lse = std::log(sum);
    loss_sum += lse - (double(z[label]) - mx);
    if (arg == label) correct += 1.0;
    if (dlogits) {
      float* d = dlogits + int64_t(r) * classes;
      const double inv = 1.0 / sum;
      for (int j = 0; j < classes; ++j) {
        const double p = std::exp(double(z[j]) - mx) * inv;
        d[j] = float((p - (j == label ? 1.0 : 0.0)) * double(grad_scale));
      }
    }
  }
  metrics[0] += loss_sum;
  metrics[1] += correct;
}

}  // namespace fer::kernels::cpu
