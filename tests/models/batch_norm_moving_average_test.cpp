// BatchNormalization's moving statistics over several training steps, through the graph (so the
// step count reaches the layer as the trainer passes it): Keras' rule by default, the
// zero-debiased average of standalone Keras 2.x with `zero_debias = true`. The expected values
// are computed here in double from the batches themselves.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/graph.h"
#include "models/run_config.h"

namespace {

// Input 2x2x1 -> BN over 1 channel (4 rows per sample) -> Flatten -> Dense(2, softmax).
std::string config(const std::string& bn_keys) {
  return R"([model]
name = "bn-moving"
input_shape = [2, 2, 1]
classes = 2

[data]
drop_classes = [0, 1, 2, 4, 5]

[[layers]]
type = "BatchNormalization"
)" + bn_keys + R"(

[[layers]]
type = "Flatten"

[[layers]]
type = "Dense"
units = 2
activation = "softmax"
)";
}

struct Stats {
  double mean, var_unbiased;
};

// Batch statistics of the float input the graph sees (uint8 / 255).
Stats batch_stats(const std::vector<uint8_t>& img) {
  double s = 0.0;
  for (uint8_t v : img) s += double(float(v) * (1.0f / 255.0f));
  const double n = double(img.size());
  const double mean = s / n;
  double sq = 0.0;
  for (uint8_t v : img) {
    const double d = double(float(v) * (1.0f / 255.0f)) - mean;
    sq += d * d;
  }
  return {mean, sq / (n - 1.0)};
}

// Runs `steps` training forwards (steps 0, 1, ...) on different batches; returns the moving
// mean/variance after each, and the expected values under either rule.
void run(bool zero_debias, int steps) {
  auto cfg = fer::models::parse_run_config(config(zero_debias ? "zero_debias = true" : ""), "bn.toml");
  auto graph = fer::models::build_graph(cfg);
  std::shared_ptr<fer::Backend> backend = fer::make_cpu_backend();
  const int n = 3;
  graph->plan(backend, n);
  graph->initialize(1);
  const double m = 0.99;
  double keras_mean = 0.0, keras_var = 1.0;  // Keras' initial moving statistics
  double biased_mean = 0.0, biased_var = 0.0;  // zero-debias: EMA from 0, divided by 1 - m^t
  std::mt19937 rng(5);
  const std::vector<int32_t> labels(n, 0);
  for (int t = 0; t < steps; ++t) {
    std::vector<uint8_t> img(size_t(n) * 4);
    for (auto& v : img) v = uint8_t(rng() % 256);
    graph->set_batch_from_host(n, img.data(), labels.data(), nullptr);
    graph->forward(n, true, uint64_t(t));
    const Stats b = batch_stats(img);
    keras_mean = m * keras_mean + (1 - m) * b.mean;
    keras_var = m * keras_var + (1 - m) * b.var_unbiased;
    biased_mean = m * biased_mean + (1 - m) * b.mean;
    biased_var = m * biased_var + (1 - m) * b.var_unbiased;
    const double correction = 1.0 - std::pow(m, double(t + 1));
    const std::vector<float> state = graph->download_state();  // moving_mean, moving_variance
    ASSERT_EQ(state.size(), 2u);
    const double want_mean = zero_debias ? biased_mean / correction : keras_mean;
    const double want_var = zero_debias ? biased_var / correction : keras_var;
    EXPECT_NEAR(state[0], want_mean, 2e-6 * (1 + std::fabs(want_mean))) << "step " << t;
    EXPECT_NEAR(state[1], want_var, 2e-6 * (1 + std::fabs(want_var))) << "step " << t;
    if (zero_debias && t == 0) {  // the first step's statistics exactly, the initial 0/1 ignored
      EXPECT_NEAR(state[0], b.mean, 1e-6);
      EXPECT_NEAR(state[1], b.var_unbiased, 1e-6);
    }
  }
  // Inference leaves the moving statistics alone.
  const std::vector<float> before = graph->download_state();
  graph->forward(n, false, uint64_t(steps));
  EXPECT_EQ(graph->download_state(), before);
}

TEST(BatchNormMovingAverage, KerasRuleByDefault) { run(false, 30); }

TEST(BatchNormMovingAverage, ZeroDebiasLikeStandaloneKeras2) { run(true, 30); }

TEST(BatchNormMovingAverage, ZeroDebiasMustBeABoolean) {
  EXPECT_THROW(fer::models::parse_run_config(config("zero_debias = 1"), "bn.toml"), fer::UserError);
}

}  // namespace
