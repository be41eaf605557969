// Parameter tensors start 256-byte aligned in the graph's backend buffers (engine/param_layout.h),
// also for configs whose channel counts are not multiples of 4, while everything the host sees
// (downloads, uploads, optimizer state for checkpoints, Keras counts) stays in the dense order.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "engine/graph.h"
#include "engine/optimizer.h"
#include "models/run_config.h"

namespace {

using fer::models::build_graph;
using fer::models::parse_run_config;

// Odd channel counts everywhere: 3x3x1x3 = 27 kernel floats, 3 biases, 3-channel BN, a 7-unit
// dense layer on 5*5*3 inputs: with dense offsets almost no tensor after the first would start on
// a 256-byte boundary.
const char* kOdd = R"([model]
name = "odd-channels"
input_shape = [10, 10, 1]
classes = 5

[data]
drop_classes = [0, 1]

[[layers]]
type = "Conv2D"
filters = 3
kernel_size = 3
padding = "same"
activation = "relu"

[[layers]]
type = "BatchNormalization"

[[layers]]
type = "MaxPooling2D"
pool_size = 2

[[layers]]
type = "Flatten"

[[layers]]
type = "Dense"
units = 7
activation = "relu"

[[layers]]
type = "BatchNormalization"

[[layers]]
type = "Dense"
units = 5
activation = "softmax"
)";

std::unique_ptr<fer::Graph> planned(int batch) {
  auto g = build_graph(parse_run_config(kOdd, "odd-channels.toml"));
  g->plan(fer::make_cpu_backend(), batch);
  g->initialize(3);
  return g;
}

TEST(ParamLayout, EveryTensorStartsOn256Bytes) {
  auto g = planned(4);
  int misaligned_dense = 0;
  for (const fer::ParamEntry& p : g->all_params()) {
    EXPECT_EQ(p.device_offset * int64_t(sizeof(float)) % 256, 0)
        << g->layer(p.layer).name() << "/" << p.spec.name << " at float " << p.device_offset;
    if (p.offset * int64_t(sizeof(float)) % 256 != 0) ++misaligned_dense;
  }
  // The config is a real test of the alignment: in the dense order most tensors are misaligned.
  EXPECT_GE(misaligned_dense, 5);
  // The Keras counts are those of the dense order: 27+3 + 4*3 + 75*7+7 + 4*7 + 7*5+5.
  EXPECT_EQ(g->trainable_count() + g->non_trainable_count(), 30 + 12 + 532 + 28 + 40);
  EXPECT_EQ(g->param_layout().dense_floats, g->trainable_count());
  EXPECT_GT(g->param_layout().device_floats, g->trainable_count());
}

TEST(ParamLayout, HostSeesTheDenseOrder) {
  auto g = planned(4);
  std::vector<float> params(size_t(g->trainable_count())), state(size_t(g->non_trainable_count()));
  for (size_t i = 0; i < params.size(); ++i) params[i] = float(i) + 0.5f;
  for (size_t i = 0; i < state.size(); ++i) state[i] = -float(i);
  g->upload_params(params);
  g->upload_state(state);
  EXPECT_EQ(g->download_params(), params);
  EXPECT_EQ(g->download_state(), state);
  // The tensor the layers read is the one at device_offset: the first conv bias sits at dense
  // offset 27 and device offset 64.
  const fer::ParamEntry bias = g->params_of_layer(0)[1];
  ASSERT_EQ(bias.offset, 27);
  EXPECT_EQ(bias.device_offset, 64);
  EXPECT_EQ(g->params()[bias.device_offset], params[27]);
  EXPECT_THROW(g->upload_params(std::vector<float>(params.size() + 1)), std::invalid_argument);
}

TEST(ParamLayout, GapsStayZeroThroughTrainingAndOptimizerStateIsDense) {
  auto g = planned(6);
  const auto run = parse_run_config(kOdd, "odd-channels.toml");
  fer::Optimizer adam(g->shared_backend(), g->param_layout(), run.train.optimizer);
  std::mt19937 rng(5);
  std::vector<uint8_t> images(6 * 100);
  std::vector<int32_t> labels(6);
  for (int step = 1; step <= 3; ++step) {
    for (auto& p : images) p = uint8_t(rng() % 256);
    for (auto& l : labels) l = int32_t(rng() % 5);
    g->set_batch_from_host(6, images.data(), labels.data(), nullptr);
    g->forward(6, true, uint64_t(step));
    g->loss(6, true);
    g->backward(6, uint64_t(step));
    adam.step(g->params(), g->grads());
  }
  const fer::ParamLayout& l = g->param_layout();
  std::vector<bool> used(size_t(l.device_floats), false);
  for (const auto& r : l.runs)
    for (int64_t j = 0; j < r.size; ++j) used[size_t(r.device + j)] = true;
  for (int64_t i = 0; i < l.device_floats; ++i) {
    if (used[size_t(i)]) continue;
    ASSERT_EQ(g->params()[i], 0.0f) << "gap float " << i;
    ASSERT_EQ(g->grads()[i], 0.0f) << "gap float " << i;
  }
  // Adam's m and v, as a checkpoint holds them: dense, and they round-trip.
  const std::vector<float> slots = adam.download_state();
  ASSERT_EQ(int64_t(slots.size()), 2 * g->trainable_count());
  fer::Optimizer again(g->shared_backend(), g->param_layout(), run.train.optimizer);
  again.upload_state(slots, adam.steps_taken());
  EXPECT_EQ(again.download_state(), slots);
  EXPECT_THROW(again.upload_state(std::vector<float>(slots.size() - 1), 1), std::invalid_argument);
}

}  // namespace
