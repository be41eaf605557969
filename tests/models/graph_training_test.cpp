// The whole forward/backward/optimizer chain on the CPU backend: the graph's gradient agrees with
// finite differences of its loss, and every numbered model fits one small batch.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "engine/graph.h"
#include "engine/optimizer.h"
#include "kernels/common/augment.h"
#include "kernels/common/philox.h"
#include "loaders/batch_stream.h"
#include "models/run_config.h"

namespace {

using fer::models::build_graph;
using fer::models::parse_run_config;

struct Batch {
  std::vector<uint8_t> images;
  std::vector<int32_t> labels;
};

Batch random_batch(int n, int pixels, int classes, uint32_t seed) {
  std::mt19937 rng(seed);
  Batch b;
  b.images.resize(size_t(n) * pixels);
  for (auto& p : b.images) p = uint8_t(rng() % 256);
  for (int i = 0; i < n; ++i) b.labels.push_back(int32_t(i % classes));
  return b;
}

double loss_of(fer::Graph& g, int n, uint64_t step) {
  g.forward(n, true, step);
  g.loss(n, false);
  return g.take_metrics().mean_loss();
}

// A small network using every layer type, odd sizes, same padding with stride 2 and BN after
// both a convolution and a dense layer.
const char* kEveryLayer = R"([model]
name = "every-layer"
input_shape = [11, 9, 1]
classes = 3

[data]
drop_classes = [0, 1, 2, 4]

[[layers]]
type = "Conv2D"
filters = 5
kernel_size = [3, 2]
strides = 2
padding = "same"
activation = "relu"

[[layers]]
type = "BatchNormalization"

[[layers]]
type = "Conv2D"
filters = 4
kernel_size = 3
padding = "same"

[[layers]]
type = "Activation"
activation = "relu"

[[layers]]
type = "AveragePooling2D"
pool_size = [2, 1]

[[layers]]
type = "Dropout"
rate = 0.3

[[layers]]
type = "MaxPooling2D"
pool_size = 2
strides = 1

[[layers]]
type = "Conv2D"
filters = 6
kernel_size = 1

[[layers]]
type = "GlobalAveragePooling2D"

[[layers]]
type = "Dense"
units = 7

[[layers]]
type = "BatchNormalization"

[[layers]]
type = "Activation"
activation = "relu"

[[layers]]
type = "Dense"
units = 3
activation = "softmax"
)";

TEST(GraphGradient, MatchesFiniteDifferences) {
  auto run = parse_run_config(kEveryLayer, "every-layer.toml");
  auto graph = build_graph(run);
  std::shared_ptr<fer::Backend> backend = fer::make_cpu_backend();
  const int n = 5;
  graph->plan(backend, n);
  graph->initialize(7);
  Batch b = random_batch(n, 11 * 9, 3, 3);
  graph->set_batch_from_host(n, b.images.data(), b.labels.data(), nullptr);

  const uint64_t step = 11;  // fixed step: the same dropout mask in every evaluation
  graph->forward(n, true, step);
  graph->loss(n, true);
  graph->backward(n, step);
  const double base = graph->take_metrics().mean_loss();
  ASSERT_TRUE(std::isfinite(base));
  const std::vector<float> grads = graph->download_grads();
  std::vector<float> params = graph->download_params();
  const std::vector<float> state = graph->download_state();

  // Central differences on a spread of parameters from every layer that has them. BN moving
  // statistics change during forward passes but do not affect a training-mode loss.
  int checked = 0, kinks = 0;
  double worst = 0.0;
  for (const fer::ParamEntry& p : graph->all_params()) {
    if (!p.spec.trainable) continue;
    int compared_here = 0;
    for (int64_t j = 0; j < p.spec.size(); j += std::max<int64_t>(1, p.spec.size() / 4)) {
      const int64_t at = p.offset + j;
      const float keep = params[at];
      const auto loss_at = [&](float value) {
        params[at] = value;
        graph->upload_params(params);
        const double l = loss_of(*graph, n, step);
        params[at] = keep;
        return l;
      };
      // A ReLU or max-pool kink inside [keep - h, keep + h] makes the loss non-smooth there, and
      // then the one-sided slopes disagree: such a point has no central difference to compare
      // with (a wrong analytic gradient does not make them disagree). Retried with h / 10 (float
      // rounding of the loss then still allows ~3e-3 relative), then counted and bounded below.
      bool smooth = false;
      double numeric = 0;
      for (const float h : {3e-3f, 3e-4f}) {
        const double up = loss_at(keep + h), down = loss_at(keep - h);
        const double right = (up - base) / h, left = (base - down) / h;
        numeric = (up - down) / (2.0 * h);
        if (std::abs(right - left) <= 3e-2 * std::max(1e-2, std::abs(right) + std::abs(left))) {
          smooth = true;
          break;
        }
      }
      if (!smooth) {
        ++kinks;
        continue;
      }
      const double err = std::abs(numeric - grads[at]) / std::max(1e-2, std::abs(numeric) + std::abs(grads[at]));
      worst = std::max(worst, err);
      EXPECT_LT(err, 3e-2) << graph->layer(p.layer).name() << "/" << p.spec.name << "[" << j
                           << "]: analytic " << grads[at] << " numeric " << numeric;
      ++checked;
      ++compared_here;
    }
    EXPECT_GT(compared_here, 0) << graph->layer(p.layer).name() << "/" << p.spec.name
                                << ": every sampled point straddles a kink";
  }
  graph->upload_params(params);
  graph->upload_state(state);
  EXPECT_GT(checked, 30);
  EXPECT_LE(kinks, checked / 10) << kinks << " points straddle a kink, " << checked << " compared";
  RecordProperty("worst_relative_error", std::to_string(worst));
  RecordProperty("points_at_a_kink", std::to_string(kinks));
}

TEST(GraphInference, DropoutOffAndMovingStatisticsUsed) {
  auto run = parse_run_config(kEveryLayer, "every-layer.toml");
  auto graph = build_graph(run);
  std::shared_ptr<fer::Backend> backend = fer::make_cpu_backend();
  graph->plan(backend, 4);
  graph->initialize(3);
  Batch b = random_batch(4, 11 * 9, 3, 5);
  graph->set_batch_from_host(4, b.images.data(), b.labels.data(), nullptr);
  graph->forward(4, false, 1);
  const std::vector<float> p1 = graph->probabilities(4);
  graph->forward(4, false, 2);  // another step id: inference must not depend on it
  const std::vector<float> p2 = graph->probabilities(4);
  EXPECT_EQ(p1, p2);
  for (int i = 0; i < 4; ++i) {
    double sum = 0;
    for (int c = 0; c < 3; ++c) sum += p1[i * 3 + c];
    EXPECT_NEAR(sum, 1.0, 1e-5);
  }
  // Training-mode forward passes move the moving statistics towards the batch's.
  const std::vector<float> before = graph->download_state();
  graph->forward(4, true, 3);
  EXPECT_NE(before, graph->download_state());
}

// Dropout masks and initial weights are independent draws, as in Keras. They share the key (the
// seed), so they must never share a Philox counter: initial weights once used stream 0x1000 + param,
// which is dropout's stream at step 1 for layer = param, so that step's mask kept exactly the
// elements whose initial kernel weight was >= 0. Here layer 0 is a Dropout and the Dense kernel is
// param 0 (the old collision). With one all-ones image the Dense kernel's gradient row j is zero
// exactly when feature j was dropped, which shows the mask the graph used at each step.
const char* kDropoutThenDense = R"([model]
name = "dropout-then-dense"
input_shape = [1, 256, 1]
classes = 2

[data]
drop_classes = [2, 3, 4, 5, 6]

[[layers]]
type = "Dropout"
rate = 0.5

[[layers]]
type = "Flatten"

[[layers]]
type = "Dense"
units = 2
activation = "softmax"
)";

TEST(RandomStreams, DropoutMasksAreIndependentOfTheInitialWeights) {
  auto run = parse_run_config(kDropoutThenDense, "dropout-then-dense.toml");
  auto graph = build_graph(run);
  std::shared_ptr<fer::Backend> backend = fer::make_cpu_backend();
  graph->plan(backend, 1);
  const uint64_t seed = 5;
  graph->initialize(seed);
  const std::vector<float> w0 = graph->download_params();  // Dense kernel [256, 2], then bias
  const int features = 256;
  const std::vector<uint8_t> ones(features, 255);
  const int32_t label = 0;
  graph->set_batch_from_host(1, ones.data(), &label, nullptr);
  for (uint64_t step = 0; step < 3; ++step) {
    graph->forward(1, true, step);
    graph->loss(1, true);
    graph->backward(1, step);
    const std::vector<float> g = graph->download_grads();
    int kept = 0, agree_with_init_sign = 0;
    for (int j = 0; j < features; ++j) {
      const bool used = g[size_t(2 * j)] != 0.0f;
      // The graph uses the documented stream of (step, layer 0).
      ASSERT_EQ(used, fer::kernels::dropout_keep(seed, fer::kernels::dropout_stream_id(step, 0), uint64_t(j), 0.5f))
          << "step " << step << " feature " << j;
      kept += used;
      // Under the old collision at step 1: kept(j) == (flat kernel element j >= 0) for every j.
      agree_with_init_sign += used == (w0[size_t(j)] >= 0.0f);
    }
    // Independent draws: about half agree (binomial(256, 1/2): sd 8; the bounds are 5 sd).
    EXPECT_NEAR(kept, features / 2, 40) << "step " << step;
    EXPECT_NEAR(agree_with_init_sign, features / 2, 40) << "step " << step;
  }
  // The initial kernel is drawn from the documented init stream of param 0.
  const double limit = std::sqrt(6.0 / (256 + 2));
  for (int j = 0; j < 2 * features; ++j) {
    const float u = fer::kernels::philox_uniform_at(seed, fer::kernels::init_stream_id(0), uint64_t(j));
    ASSERT_EQ(w0[size_t(j)], float((2.0 * u - 1.0) * limit)) << j;
  }
}

TEST(RandomStreams, StreamFamiliesNeverShareACounterWord) {
  using namespace fer::kernels;
  // c3 (the stream id's high word) tells the families apart for every realistic run length.
  for (uint64_t step : {uint64_t(0), uint64_t(1), uint64_t(2), uint64_t(1) << 20, uint64_t(1) << 30}) {
    for (uint64_t layer : {uint64_t(0), uint64_t(1), kDropoutLayerStride - 1}) {
      const uint32_t c3 = uint32_t(dropout_stream_id(step, layer) >> 32);
      EXPECT_NE(c3, kInitStreamTag);
      EXPECT_NE(c3, kAugmentStreamTag);
      EXPECT_NE(c3, fer::loaders::kPermutationStreamTag);
    }
  }
  EXPECT_EQ(uint32_t(init_stream_id(7) >> 32), kInitStreamTag);
  EXPECT_NE(kInitStreamTag, kAugmentStreamTag);
  EXPECT_NE(kInitStreamTag, fer::loaders::kPermutationStreamTag);
}

// Every numbered model drives the loss on one fixed small batch close to zero with Adam: the
// whole chain (forward, fused loss, backward, flat-buffer optimizer) is wired right.
class Overfit : public ::testing::TestWithParam<const char*> {};

TEST_P(Overfit, LossFallsNearZero) {
  auto run = fer::models::load_run_config(std::string(FER_SOURCE_DIR) + "/configs/" + GetParam());
  auto graph = build_graph(run);
  std::shared_ptr<fer::Backend> backend = fer::make_cpu_backend();
  const int n = 4;
  graph->plan(backend, n);
  graph->initialize(1);
  Batch b = random_batch(n, 48 * 48, graph->classes(), 9);
  graph->set_batch_from_host(n, b.images.data(), b.labels.data(), nullptr);
  fer::Optimizer adam(backend, graph->param_layout(), run.train.optimizer);
  // Fitted means: the training-mode loss, or (for the dropout-heavy model6, whose training loss
  // stays noisy) the inference-mode loss on the same batch, falls below 0.05.
  double first = 0, last = 0, eval = 0;
  int step = 0;
  for (; step < 300; ++step) {
    graph->forward(n, true, uint64_t(step));
    graph->loss(n, true);
    graph->backward(n, uint64_t(step));
    adam.step(graph->params(), graph->grads());
    last = graph->take_metrics().mean_loss();
    if (step == 0) first = last;
    ASSERT_TRUE(std::isfinite(last)) << "step " << step;
    if (last < 0.02) break;
    if (step % 25 == 24) {
      graph->forward(n, false, 0);
      graph->loss(n, false);
      eval = graph->take_metrics().mean_loss();
      if (eval < 0.02) break;
    }
  }
  EXPECT_LT(std::min(last, step % 25 == 24 ? eval : last), 0.05)
      << "after " << step << " steps: first loss " << first << ", last " << last << ", inference " << eval;
  EXPECT_GT(first, 0.5);
}

INSTANTIATE_TEST_SUITE_P(Numbered, Overfit,
                         ::testing::Values("model4.toml", "model5.toml", "model5-v2.toml", "model6.toml",
                                           "model7.toml", "model8.toml"),
                         [](const auto& info) {
                           std::string name = info.param;
                           name = name.substr(0, name.find('.'));
                           for (char& c : name)
                             if (c == '-') c = '_';
                           return name;
                         });

}  // namespace
