// Fused softmax + cross-entropy (loss, accuracy, gradient on the device) and the optimizers over
// a flat parameter buffer, GPU against the CPU backend.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include "engine/cuda/cuda_backend.h"
#include "tests/gpu/gpu_test_util.h"

namespace fer::gputest {
namespace {

using testing::random_floats;
using testing::random_labels;

Backend* side(Pair& bk, int i) { return i == 0 ? bk.cpu.get() : bk.gpu.get(); }

// ------------------------------------------------------------------------------ softmax-xent

class SoftmaxXentParity : public ::testing::TestWithParam<std::tuple<int, int, int>> {};

TEST_P(SoftmaxXentParity, LossAccuracyGradient) {
  FER_REQUIRE_CUDA_DEVICE();
  const int rows = std::get<0>(GetParam());
  const int classes = std::get<1>(GetParam());
  const int variant = std::get<2>(GetParam());  // 0: separate dlogits, 1: in place, 2: no grad
  Pair bk(false);
  auto logits = random_floats(size_t(rows) * classes, 111, -4.0f, 4.0f);
  // Some rows with tied maxima: accuracy must use the first maximum, as the CPU does.
  for (int r = 0; r < rows; r += 5) {
    if (classes > 2) logits[size_t(r) * classes + 2] = logits[size_t(r) * classes + 1] = 5.0f;
  }
  const auto labels = random_labels(size_t(rows), classes, 112);
  const float grad_scale = 1.0f / float(rows);
  std::vector<double> metrics[2];
  std::vector<float> grad[2];
  for (int i = 0; i < 2; ++i) {
    Backend& b = *side(bk, i);
    Buffer<float> l_(b, logits), d_(b, logits);
    Buffer<int32_t> lab_(b, labels);
    Buffer<double> m_(b, std::vector<double>{1.5, 2.0});  // accumulates onto what is there
    float* d = variant == 0 ? d_.get() : variant == 1 ? l_.get() : nullptr;
    b.softmax_cross_entropy(rows, classes, l_.get(), lab_.get(), d, grad_scale, m_.get());
    // A second call accumulates again (the epoch's running sums).
    if (variant == 2) {
      b.softmax_cross_entropy(rows, classes, l_.get(), lab_.get(), nullptr, grad_scale, m_.get());
    }
    metrics[i] = m_.download();
    if (variant == 0) grad[i] = d_.download();
    if (variant == 1) grad[i] = l_.download();
  }
  const std::string what = "rows " + std::to_string(rows) + " classes " + std::to_string(classes);
  EXPECT_NEAR(metrics[1][0], metrics[0][0], 1e-5 * std::fabs(metrics[0][0]) + 1e-6) << what;
  EXPECT_EQ(metrics[1][1], metrics[0][1]) << what << " (correct count)";
  if (variant != 2) expect_close(grad[1], grad[0], kFp32Tol, what + " dlogits");
}

std::string xent_case_name(const ::testing::TestParamInfo<std::tuple<int, int, int>>& info) {
  static const char* const kVariants[3] = {"grad", "inplace", "nograd"};
  std::string name = "rows" + std::to_string(std::get<0>(info.param));
  name += "_classes" + std::to_string(std::get<1>(info.param));
  name += std::string("_") + kVariants[std::get<2>(info.param)];
  return name;
}

INSTANTIATE_TEST_SUITE_P(Cases, SoftmaxXentParity,
                         ::testing::Combine(::testing::Values(1, 13, 64, 300),
                                            ::testing::Values(1, 2, 7, 40),
                                            ::testing::Values(0, 1, 2)),
                         xent_case_name);

// ------------------------------------------------------------------------------ optimizers

class AdamParity : public ::testing::TestWithParam<int64_t> {};

TEST_P(AdamParity, ThreeStepsMatch) {
  FER_REQUIRE_CUDA_DEVICE();
  const int64_t n = GetParam();
  Pair bk(false);
  const auto p0 = random_floats(size_t(n), 121);
  std::vector<float> out[2][3];
  for (int i = 0; i < 2; ++i) {
    Backend& b = *side(bk, i);
    Buffer<float> p_(b, p0), m_(b, size_t(n)), v_(b, size_t(n)), g_(b, size_t(n));
    b.fill(m_.get(), n, 0.0f);
    b.fill(v_.get(), n, 0.0f);
    for (int step = 1; step <= 3; ++step) {
      g_.upload(random_floats(size_t(n), 200 + uint64_t(step), -0.1f, 0.1f));
      AdamParams ap;
      ap.step = step;
      b.adam_update(n, p_.get(), g_.get(), m_.get(), v_.get(), ap);
    }
    out[i][0] = p_.download();
    out[i][1] = m_.download();
    out[i][2] = v_.download();
  }
  const char* names[3] = {"params", "m", "v"};
  for (int k = 0; k < 3; ++k) {
    EXPECT_LT(rel_l2_error(out[1][k], out[0][k]), 1e-6) << names[k] << " n=" << n;
    EXPECT_LT(testing::max_abs_diff(out[1][k].data(), out[0][k].data(), size_t(n)), 1e-6)
        << names[k] << " n=" << n;
  }
}

INSTANTIATE_TEST_SUITE_P(Sizes, AdamParity, ::testing::Values<int64_t>(1, 1000, 100003),
                         [](const auto& info) { return "n" + std::to_string(info.param); });

class SgdParity : public ::testing::TestWithParam<std::tuple<float, bool>> {};

TEST_P(SgdParity, ThreeStepsMatch) {
  FER_REQUIRE_CUDA_DEVICE();
  const float momentum = std::get<0>(GetParam());
  const bool nesterov = std::get<1>(GetParam());
  const int64_t n = 4099;
  Pair bk(false);
  const auto p0 = random_floats(size_t(n), 131);
  std::vector<float> out[2][2];
  for (int i = 0; i < 2; ++i) {
    Backend& b = *side(bk, i);
    Buffer<float> p_(b, p0), vel_(b, size_t(n)), g_(b, size_t(n));
    b.fill(vel_.get(), n, 0.0f);
    for (int step = 1; step <= 3; ++step) {
      g_.upload(random_floats(size_t(n), 300 + uint64_t(step)));
      SgdParams sp;
      sp.lr = 0.05f;
      sp.momentum = momentum;
      sp.nesterov = nesterov;
      b.sgd_update(n, p_.get(), g_.get(), vel_.get(), sp);
    }
    out[i][0] = p_.download();
    out[i][1] = vel_.download();
  }
  EXPECT_LT(testing::max_abs_diff(out[1][0].data(), out[0][0].data(), size_t(n)), 1e-6);
  EXPECT_LT(testing::max_abs_diff(out[1][1].data(), out[0][1].data(), size_t(n)), 1e-6);
}

INSTANTIATE_TEST_SUITE_P(Settings, SgdParity,
                         ::testing::Combine(::testing::Values(0.0f, 0.9f), ::testing::Bool()),
                         [](const auto& info) {
                           std::string name = std::get<0>(info.param) == 0.0f ? "plain" : "momentum";
                           name += std::get<1>(info.param) ? "_nesterov" : "";
                           return name;
                         });

}  // namespace
}  // namespace fer::gputest
