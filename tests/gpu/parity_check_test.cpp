// The model-parity comparison rules (tests/gpu/parity_check.h), checked on the CPU backend alone:
//  - the same step on the same batch with its samples permuted has the same gradient in exact
//    arithmetic (loss, BN statistics and every layer are permutation invariant; dropout is set to
//    rate 0 here), so the two results differ by rounding only, like two backends. In models 7 and
//    8 a plain relative error per tensor FAILS on exactly that (the biases feeding BN are zero in
//    exact arithmetic: noise against noise); the floored error passes, and the floored tensors are
//    exactly those biases.
//  - a 1e-3 relative perturbation of the input (what TF32 convolutions do to activations) flips
//    max-pool winners; the TF32 rule (cosine below the last pooling layer) still holds.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <numeric>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "engine/graph.h"
#include "models/run_config.h"
#include "tests/gpu/parity_check.h"
#include "tests/ops/op_test_util.h"
#include "tests/reference/reference_ops.h"

namespace fer::gputest {
namespace {

constexpr int kBatch = 8;

std::unique_ptr<Graph> cpu_graph_without_dropout(const std::string& config, uint64_t init_seed = 1234) {
  std::ifstream in(std::string(FER_SOURCE_DIR) + "/configs/" + config);
  std::stringstream text;
  text << in.rdbuf();
  const std::string no_dropout = std::regex_replace(text.str(), std::regex(R"((\n)rate = [0-9.]+)"), "$1rate = 0.0");  // not learning_rate
  auto g = models::build_graph(models::parse_run_config(no_dropout, config));
  g->plan(make_cpu_backend(), kBatch);
  g->initialize(init_seed);
  return g;
}

struct Batch {
  std::vector<uint8_t> images;
  std::vector<int32_t> labels;
};

Batch random_batch(const Graph& g, uint32_t seed) {
  std::mt19937 rng(seed);
  Batch b;
  b.images.resize(size_t(kBatch) * size_t(g.input_shape().size()));
  for (auto& p : b.images) p = uint8_t(rng() % 256);
  for (int i = 0; i < kBatch; ++i) b.labels.push_back(int32_t(rng() % uint32_t(g.classes())));
  return b;
}

Batch permuted(const Batch& b, int64_t pixels) {
  Batch p = b;
  for (int i = 0; i < kBatch; ++i) {
    const int from = (i * 3 + 5) % kBatch;  // 3 is coprime with 8: a permutation
    std::copy_n(b.images.begin() + from * pixels, pixels, p.images.begin() + i * pixels);
    p.labels[size_t(i)] = b.labels[size_t(from)];
  }
  return p;
}

// One training step's loss (sum) and dense-order gradients; input_noise perturbs the float input
// relatively (0: none).
std::pair<double, std::vector<float>> step(Graph& g, const Batch& b, double input_noise = 0) {
  g.set_batch_from_host(kBatch, b.images.data(), b.labels.data(), nullptr);
  if (input_noise > 0) {
    std::mt19937 rng(9);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    float* x = g.input();  // host memory on the CPU backend
    for (int64_t i = 0; i < kBatch * g.input_shape().size(); ++i) x[i] *= 1.0f + float(input_noise) * u(rng);
  }
  g.forward(kBatch, true, 1);
  g.loss(kBatch, true);
  g.backward(kBatch, 1);
  return {g.take_metrics().loss_sum, g.download_grads()};
}

class BiasBeforeBatchNorm : public ::testing::TestWithParam<const char*> {};

TEST_P(BiasBeforeBatchNorm, RelativeErrorFailsOnNoiseFlooredErrorHolds) {
  auto g = cpu_graph_without_dropout(GetParam());
  const Batch b = random_batch(*g, 77);
  const auto [loss_a, grads_a] = step(*g, b);
  const auto [loss_b, grads_b] = step(*g, permuted(b, g->input_shape().size()));
  EXPECT_NEAR(loss_b, loss_a, 1e-5 * std::fabs(loss_a));

  const auto plain = compare_tensors(*g, grads_b, grads_a, true, /*floor=*/false);
  const auto floored = compare_tensors(*g, grads_b, grads_a, true, /*floor=*/true);
  double max_norm = 0;
  for (const auto& c : floored) max_norm = std::max(max_norm, c.want_norm);
  double worst_plain = 0, noise_ratio = 0, smallest_real_ratio = 1;
  int floored_count = 0;
  for (size_t i = 0; i < floored.size(); ++i) {
    const auto& c = floored[i];
    worst_plain = std::max(worst_plain, plain[i].error);
    EXPECT_LT(c.error, kModelFp32Tol) << GetParam() << " " << c.name << (c.floored ? " (floored)" : "");
    const std::string next = c.layer + 1 < g->num_layers() ? g->layer(c.layer + 1).type() : "";
    const bool bias_into_bn = c.name.size() > 5 && c.name.substr(c.name.size() - 5) == "/bias" && next == "BatchNormalization";
    EXPECT_EQ(c.floored, bias_into_bn) << GetParam() << " " << c.name << ": norm " << c.want_norm
                                       << " of max " << max_norm;
    if (c.floored) {
      ++floored_count;
      noise_ratio = std::max(noise_ratio, c.want_norm / max_norm);
    } else {
      smallest_real_ratio = std::min(smallest_real_ratio, c.want_norm / max_norm);
    }
  }
  std::cout << "[          ] " << GetParam() << ": " << floored_count << " floored tensors, noise/max "
            << noise_ratio << ", smallest real/max " << smallest_real_ratio << ", worst plain relative error "
            << worst_plain << "\n";
  EXPECT_GE(floored_count, 4) << "models 7 and 8 put a bias before every BN";
  // The defect the floor fixes: the plain relative rule fails on this rounding-only difference.
  EXPECT_GT(worst_plain, kModelFp32Tol);
  // kFloorRatio sits between the two populations with room on both sides.
  EXPECT_LT(noise_ratio, kFloorRatio / 10);
  EXPECT_GT(smallest_real_ratio, kFloorRatio * 10);
}

INSTANTIATE_TEST_SUITE_P(Models, BiasBeforeBatchNorm, ::testing::Values("model7.toml", "model8.toml"),
                         [](const auto& info) { return std::string(info.param).substr(0, 6); });

// The TF32 and bf16 bounds of parity_check.h hold for a perturbation of the format's size on
// model5-v2 at several initialisations: the default one, and those with the worst relative L2
// above the last pool (5) and the worst 1 - cos below it (11) among seeds 1-11 and 1234.
void perturbation_passes(double noise, double tol, double loss_tol, double cosine_min, const char* format) {
  for (const uint64_t init_seed : {uint64_t(1234), uint64_t(1), uint64_t(5), uint64_t(11)}) {
    auto g = cpu_graph_without_dropout("model5-v2.toml", init_seed);
    const Batch b = random_batch(*g, 31);
    const auto [loss_a, grads_a] = step(*g, b);
    const auto [loss_b, grads_b] = step(*g, b, noise);
    EXPECT_NEAR(loss_b, loss_a, loss_tol * std::fabs(loss_a)) << format << " init seed " << init_seed;
    const int pool = last_pooling_layer(*g);
    ASSERT_GE(pool, 1);
    const auto failures = gradient_failures(*g, grads_b, grads_a, tol, /*cosine_below_pool=*/true, cosine_min);
    EXPECT_TRUE(failures.empty()) << format << " init seed " << init_seed << ": " << failures.front();
    double worst_above = 0, worst_gap_below = 0;
    for (const auto& c : compare_tensors(*g, grads_b, grads_a, true)) {
      if (c.layer >= pool) worst_above = std::max(worst_above, c.error);
      else worst_gap_below = std::max(worst_gap_below, 1 - c.cosine);
    }
    std::cout << "[          ] " << format << ", model5-v2 init seed " << init_seed << ", input x(1 +- " << noise
              << "): above the last pool worst relative L2 " << worst_above << ", below it worst 1 - cos "
              << worst_gap_below << ", loss " << std::fabs(loss_b - loss_a) / std::fabs(loss_a) << "\n";
  }
}

TEST(Tf32Rule, PerturbedInputKeepsCosineBelowPoolAndErrorAbove) {
  perturbation_passes(1e-3, kModelTf32Tol, kModelTf32LossTol, kTf32CosineMin, "tf32");
}

TEST(Bf16Rule, PerturbedInputKeepsCosineBelowPoolAndErrorAbove) {
  perturbation_passes(4e-3, kModelBf16Tol, kModelBf16LossTol, kBf16CosineMin, "bf16");
}

TEST(Tf32Rule, ADifferentGradientStillFails) {
  auto g = cpu_graph_without_dropout("model7.toml");
  const auto [loss, grads] = step(*g, random_batch(*g, 5));
  std::vector<float> wrong = grads;
  const ParamEntry first = g->all_params().front();  // the first conv kernel, below every pool
  std::reverse(wrong.begin() + first.offset, wrong.begin() + first.offset + first.spec.size());
  EXPECT_FALSE(gradient_failures(*g, wrong, grads, kModelTf32Tol, true).empty());
  EXPECT_FALSE(gradient_failures(*g, wrong, grads, kModelFp32Tol, false).empty());
  EXPECT_TRUE(gradient_failures(*g, grads, grads, kModelFp32Tol, false).empty());
  EXPECT_FALSE(gradient_failures(*g, wrong, grads, kModelFp32Tol, true, kFp32CosineMin).empty());
}

// FP32's own pool flips (parity_check.h): a 1e-5 relative perturbation of the input, ten times what
// two FP32 backends' summation orders do (1e-6 flipped nothing here at the old initialisation),
// leaves the loss unchanged to ~1e-5 but flips some max-pool winners, so a kernel gradient below
// the last pool misses kModelFp32Tol; the FP32 rule (tolerance or cosine >= kFp32CosineMin below
// the pool) still passes. Measured on model5-v2: worst relative L2 below the pool 1.3e-3,
// 1 - cos 7.6e-7 at the old initialisation; 7.8e-3, 3e-5 at the tagged init stream's (philox.h).
// (model8 is left out: at 1e-5 even its dense kernel gradient, above every pool, moved by 1.7%,
// ReLU and small-variance BN channels amplifying the perturbation, so 1e-5 is outside what FP32
// rounding does there; at 1e-6 all its tensors stayed within 1.8e-5.)
TEST(Fp32Rule, SummationOrderPoolFlipsPassOnlyByCosine) {
  auto g = cpu_graph_without_dropout("model5-v2.toml");
  const Batch b = random_batch(*g, 41);
  const auto [loss_a, grads_a] = step(*g, b);
  const auto [loss_b, grads_b] = step(*g, b, 1e-5);
  EXPECT_NEAR(loss_b, loss_a, 1e-4 * std::fabs(loss_a));
  const int pool = last_pooling_layer(*g);
  double worst_error = 0, worst_gap = 0;
  for (const auto& c : compare_tensors(*g, grads_b, grads_a, true)) {
    if (c.layer >= pool || c.floored) continue;
    worst_error = std::max(worst_error, c.error);
    worst_gap = std::max(worst_gap, 1 - c.cosine);
  }
  std::cout << "[          ] model5-v2, input x(1 +- 1e-5): below the last pool worst relative L2 "
            << worst_error << ", worst 1 - cos " << worst_gap << "\n";
  EXPECT_FALSE(gradient_failures(*g, grads_b, grads_a, kModelFp32Tol, false).empty())
      << "no flip, so this case does not exercise the rule";
  const auto failures = gradient_failures(*g, grads_b, grads_a, kModelFp32Tol, true, kFp32CosineMin);
  EXPECT_TRUE(failures.empty()) << failures.front();
  EXPECT_LT(worst_gap, (1 - kFp32CosineMin) / 2);
}

// The first FER layer's weight gradient (16 images of 48x48, 1 -> 64 channels, 3x3): each of its
// 576 entries sums 36,864 products. The CPU backend against double precision stays within the
// one-implementation FP32 model that fp32_sum_tolerance builds on, and that tolerance is looser
// than the flat 1e-5 the parity test used (which two correct FP32 sums need not meet).
TEST(Fp32SumTolerance, FirstLayerWeightGradientAgainstDouble) {
  const ConvShape s = testing::conv_shape(16, 48, 48, 1, 64, 3, 3, 1, 1, testing::Padding::same);
  const int64_t terms = int64_t(s.n) * s.oh * s.ow;
  ASSERT_EQ(terms, 36864);
  const auto x = testing::random_floats(size_t(s.x_size()), 11);
  const auto w = testing::random_floats(size_t(s.w_size()), 12, -0.5f, 0.5f);
  const auto dy = testing::random_floats(size_t(s.y_size()), 14);
  auto cpu = make_cpu_backend();
  std::vector<float> y(size_t(s.y_size())), dw(w.size()), db(size_t(s.k));
  std::vector<unsigned char> ws(std::max<size_t>(cpu->conv2d_workspace_bytes(s), 1));
  cpu->conv2d_backward(s, x.data(), w.data(), dy.data(), nullptr, dw.data(), db.data(), ws.data());
  const std::vector<double> xd(x.begin(), x.end()), wd(w.begin(), w.end()), dyd(dy.begin(), dy.end());
  std::vector<double> dxd(x.size()), dwd(w.size()), dbd(size_t(s.k));
  reference::conv2d_backward(s, xd.data(), wd.data(), dyd.data(), dxd.data(), dwd.data(), dbd.data());
  double num = 0, den = 0;
  for (size_t i = 0; i < dw.size(); ++i) {
    num += (double(dw[i]) - dwd[i]) * (double(dw[i]) - dwd[i]);
    den += dwd[i] * dwd[i];
  }
  const double err = std::sqrt(num / den);
  const double one_impl = kFp32UnitRoundoff * std::sqrt(double(terms) / 2.0);
  std::cout << "[          ] first-layer dw: CPU vs double " << err << ", sequential-sum model " << one_impl
            << ", parity tolerance " << fp32_sum_tolerance(terms, 1e-5) << "\n";
  EXPECT_LT(err, one_impl);
  EXPECT_GT(fp32_sum_tolerance(terms, 1e-5), 2 * 1e-5);
  EXPECT_EQ(fp32_sum_tolerance(9 * 64, 1e-5), 1e-5);  // short sums keep the flat tolerance
}

}  // namespace
}  // namespace fer::gputest
