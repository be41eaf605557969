// fer_gpu bench's measuring logic on the CPU: the layer hook sees every layer in order, the profile
// covers every layer with shares adding to 100%, the statistics are right and --json parses back to the same numbers.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "engine/bench/bench.h"
#include "engine/bench/device_info.h"
#include "engine/graph.h"
#include "models/run_config.h"

namespace {

// Every layer type, including a Flatten (which aliases its input and does no work).
const char* kSmall = R"([model]
name = "bench-small"
input_shape = [12, 10, 1]
classes = 3

[data]
drop_classes = [0, 1, 2, 4]

[augment]
shear_range = 0.2
zoom_range = 0.2
horizontal_flip = true

[[layers]]
type = "Conv2D"
filters = 4
kernel_size = 3
activation = "relu"

[[layers]]
type = "BatchNormalization"

[[layers]]
type = "MaxPooling2D"
pool_size = 2

[[layers]]
type = "Dropout"
rate = 0.25

[[layers]]
type = "Flatten"

[[layers]]
type = "Dense"
units = 8
activation = "relu"

[[layers]]
type = "Dense"
units = 3
activation = "softmax"
)";

TEST(Stats, MedianQuartilesAndSpread) {
  const fer::bench::Stats s = fer::bench::Stats::of({5, 1, 3, 2, 4});
  EXPECT_DOUBLE_EQ(s.median, 3);
  EXPECT_DOUBLE_EQ(s.min, 1);
  EXPECT_DOUBLE_EQ(s.max, 5);
  EXPECT_DOUBLE_EQ(s.q1, 2);
  EXPECT_DOUBLE_EQ(s.q3, 4);
  EXPECT_EQ(s.samples.size(), 5u);
  EXPECT_DOUBLE_EQ(fer::bench::Stats::of({1, 2}).median, 1.5);
  EXPECT_DOUBLE_EQ(fer::bench::Stats::of({}).median, 0);
}

TEST(BackendTimer, HostDefaultMeasuresElapsedTime) {
  auto backend = fer::make_cpu_backend();
  void* a = backend->timer_create();
  void* b = backend->timer_create();
  backend->timer_record(a);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  backend->timer_record(b);
  const float ms = backend->timer_elapsed_ms(a, b);
  EXPECT_GE(ms, 19.0f);
  EXPECT_LT(ms, 2000.0f);
  backend->timer_destroy(a);
  backend->timer_destroy(b);
}

// Records (layer, pass) in call order and checks before/after pair up.
class Recorder final : public fer::LayerObserver {
 public:
  void before_layer(int index, fer::Pass pass) override {
    EXPECT_EQ(open_, -1) << "nested layer call";
    open_ = index;
  }
  void after_layer(int index, fer::Pass pass) override {
    EXPECT_EQ(open_, index);
    open_ = -1;
    calls.emplace_back(index, pass);
  }
  std::vector<std::pair<int, fer::Pass>> calls;

 private:
  int open_ = -1;
};

TEST(LayerObserver, SeesEveryWorkingLayerForwardThenBackwardInReverse) {
  auto run = fer::models::parse_run_config(kSmall, "bench-small.toml");
  auto graph = fer::models::build_graph(run);
  graph->plan(fer::make_cpu_backend(), 4);
  graph->initialize(1);
  std::vector<uint8_t> images(4 * 12 * 10, 100);
  std::vector<int32_t> labels{0, 1, 2, 0};
  graph->set_batch_from_host(4, images.data(), labels.data(), nullptr);
  Recorder rec;
  graph->set_layer_observer(&rec);
  graph->forward(4, true, 1);
  graph->loss(4, true);
  graph->backward(4, 1);
  graph->set_layer_observer(nullptr);
  graph->forward(4, true, 2);  // removed: no more calls

  std::vector<int> working;
  for (int i = 0; i < graph->num_layers(); ++i)
    if (!graph->layer(i).aliases_input()) working.push_back(i);
  ASSERT_EQ(rec.calls.size(), 2 * working.size());
  for (size_t k = 0; k < working.size(); ++k) {
    EXPECT_EQ(rec.calls[k].first, working[k]);
    EXPECT_EQ(rec.calls[k].second, fer::Pass::forward);
    EXPECT_EQ(rec.calls[working.size() + k].first, working[working.size() - 1 - k]);
    EXPECT_EQ(rec.calls[working.size() + k].second, fer::Pass::backward);
  }
}

TEST(Benchmark, LayerProfileCoversEveryLayerAndSharesAddUp) {
  auto run = fer::models::parse_run_config(kSmall, "bench-small.toml");
  fer::bench::BenchOptions opt;
  opt.batch_size = 4;
  opt.warmup = 1;
  opt.steps = 3;
  opt.repeats = 2;
  opt.layers = true;
  const fer::bench::InputPool pool = fer::bench::synthetic_pool(run, 6, 3);  // fewer than 2 batches
  EXPECT_TRUE(pool.augment);
  const fer::bench::DeviceResult r = fer::bench::run_benchmark(run, fer::DeviceKind::cpu, pool, opt);

  EXPECT_EQ(r.device, "cpu");
  EXPECT_EQ(r.batch, 4);
  EXPECT_EQ(r.train_images_per_s.samples.size(), 2u);
  EXPECT_EQ(r.infer_images_per_s.samples.size(), 2u);
  EXPECT_GT(r.train_images_per_s.median, 0);
  EXPECT_GT(r.infer_images_per_s.median, 0);
  // Each repeat's throughput and step time come from the same timed interval, so their product is
  // the batch (in images) times 1000 ms/s exactly, sample by sample; the two medians come from
  // differently shaped statistics of noisy samples and are not compared (that was flaky).
  ASSERT_EQ(r.train_step_ms.samples.size(), r.train_images_per_s.samples.size());
  for (size_t k = 0; k < r.train_step_ms.samples.size(); ++k) {
    EXPECT_NEAR(r.train_step_ms.samples[k] * r.train_images_per_s.samples[k], 4 * 1000.0, 4 * 1000.0 * 1e-9) << k;
  }
  EXPECT_NEAR(r.train_step_ms.min * r.train_images_per_s.max, 4 * 1000.0, 4 * 1000.0 * 1e-9);
  EXPECT_TRUE(std::isfinite(r.final_loss));
  EXPECT_GT(r.step_flops, r.infer_flops);
  EXPECT_GT(r.peak_gflops, 0);
  EXPECT_GT(r.arena_bytes, 0u);
  EXPECT_GT(r.optimizer_bytes, 0u);

  auto graph = fer::models::build_graph(run);
  // input, every layer in model order, loss, optimizer, other.
  ASSERT_EQ(r.layers.size(), size_t(graph->num_layers()) + 4);
  EXPECT_EQ(r.layers.front().name, "input");
  EXPECT_EQ(r.layers[r.layers.size() - 3].name, "loss");
  EXPECT_EQ(r.layers[r.layers.size() - 2].name, "optim/adam");
  EXPECT_EQ(r.layers.back().name, "other");
  double share = 0;
  for (int i = 0; i < graph->num_layers(); ++i) {
    const fer::bench::LayerRow& row = r.layers[size_t(i) + 1];
    EXPECT_EQ(row.index, i);
    EXPECT_EQ(row.name, graph->layer(i).name());
    EXPECT_EQ(row.runs, !graph->layer(i).aliases_input()) << row.name;
    if (!row.runs) {
      EXPECT_EQ(row.fwd_ms + row.bwd_ms, 0.0);
    } else {
      EXPECT_GT(row.fwd_ms, 0.0) << row.name;
      EXPECT_GT(row.bwd_ms, 0.0) << row.name;
      EXPECT_EQ(row.fwd_flops, graph->layer(i).forward_flops(4));
    }
  }
  for (const auto& row : r.layers) {
    EXPECT_GE(row.share, 0.0);
    share += row.share;
  }
  EXPECT_NEAR(share, 1.0, 1e-6);
  EXPECT_GT(r.profiled_step_ms, 0.0);

  fer::bench::BenchReport rep;
  rep.config_path = "bench-small.toml";
  rep.model_name = "bench \"small\"";  // a quote must come out escaped
  rep.data = pool.description;
  rep.results.push_back(r);
  rep.skipped.push_back("cuda: no device\tat all");
  rep.gpu_cpu_train_ratio = NAN;  // not measured: null, as JSON has no NaN
  // Parsed back (nlohmann/json is strict: RFC 8259): every number where it was put.
  const std::string text_json = fer::bench::to_json(rep);
  const nlohmann::json json = nlohmann::json::parse(text_json);
  EXPECT_EQ(json["model"], "bench \"small\"");
  EXPECT_EQ(json["skipped"][0], "cuda: no device\tat all");
  EXPECT_TRUE(json["gpu_cpu_train_ratio"].is_null()) << text_json;
  ASSERT_EQ(json["results"].size(), 1u);
  const nlohmann::json& jr = json["results"][0];
  EXPECT_EQ(jr["train_images_per_s"]["median"].get<double>(), r.train_images_per_s.median);
  EXPECT_EQ(jr["train_images_per_s"]["samples"].size(), r.train_images_per_s.samples.size());
  EXPECT_EQ(jr["memory"]["optimizer_bytes"].get<size_t>(), r.optimizer_bytes);
  EXPECT_EQ(jr["step_flops"].get<int64_t>(), r.step_flops);
  ASSERT_EQ(jr["layers"].size(), r.layers.size());
  EXPECT_EQ(jr["layers"][r.layers.size() - 2]["name"], "optim/adam");
  EXPECT_EQ(jr["layers"][1]["fwd_ms"].get<double>(), r.layers[1].fwd_ms);
  const std::string text = fer::bench::format_report(rep);
  for (int i = 0; i < graph->num_layers(); ++i) EXPECT_NE(text.find(graph->layer(i).name()), std::string::npos);
  EXPECT_NE(text.find("skipped cuda: no device"), std::string::npos);
}

TEST(DeviceInfo, CpuPeakStatesItsFormula) {
  const fer::bench::CpuInfo info = fer::bench::cpu_info(false);
  EXPECT_GT(info.logical_cpus, 0);
  EXPECT_GT(info.physical_cores, 0);
  EXPECT_GT(info.flops_per_cycle, 0);
  const fer::bench::PeakRate p = fer::bench::cpu_peak(info);
  if (info.ghz > 0) {
    EXPECT_GT(p.fp32_gflops, 0);
  }
  EXPECT_NE(p.formula.find("FLOP/cycle"), std::string::npos);
}

TEST(DeviceInfo, GpuPeakFormula) {
  fer::bench::GpuInfo h100;
  h100.name = "H100";
  h100.cc_major = 9;
  h100.sms = 132;
  h100.ghz = 1.98;
  const fer::bench::PeakRate p = fer::bench::gpu_peak(h100);
  EXPECT_NEAR(p.fp32_gflops, 132 * 1.98 * 256, 1);  // about 67 TFLOP/s
  EXPECT_NEAR(p.tf32_gflops, 132 * 1.98 * 2048, 1);
  EXPECT_NEAR(p.bf16_gflops, 2 * p.tf32_gflops, 1);
}

}  // namespace
