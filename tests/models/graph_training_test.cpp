// The whole forward/backward/optimizer chain on the CPU backend: the graph's gradient agrees with
// finite differences of its loss, and every numbered model fits one small batch.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "engine/graph.h"
#include "engine/optimizer.h"
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
  int checked = 0;
  double worst = 0.0;
  for (const fer::ParamEntry& p : graph->all_params()) {
    if (!p.spec.trainable) continue;
    for (int64_t j = 0; j < p.spec.size(); j += std::max<int64_t>(1, p.spec.size() / 4)) {
      const int64_t at = p.offset + j;
      const float h = 3e-3f;
      const float keep = params[at];
      params[at] = keep + h;
      graph->upload_params(params);
      const double up = loss_of(*graph, n, step);
      params[at] = keep - h;
      graph->upload_params(params);
      const double down = loss_of(*graph, n, step);
      params[at] = keep;
      const double numeric = (up - down) / (2.0 * h);
      const double err = std::abs(numeric - grads[at]) / std::max(1e-2, std::abs(numeric) + std::abs(grads[at]));
      worst = std::max(worst, err);
      EXPECT_LT(err, 3e-2) << graph->layer(p.layer).name() << "/" << p.spec.name << "[" << j
                           << "]: analytic " << grads[at] << " numeric " << numeric;
      ++checked;
    }
  }
  graph->upload_params(params);
  graph->upload_state(state);
  EXPECT_GT(checked, 30);
  RecordProperty("worst_relative_error", std::to_string(worst));
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
