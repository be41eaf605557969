#pragma once
// `fer_gpu bench`: training and inference throughput of a model config on a backend, and (with
// layers) a per-layer forward/backward profile in model order, like `caffe time`.
//
// One training step is what the trainer does with data resident on the device: copy a batch of
// uint8 images, labels and augmentation draws from a device-resident pool into the graph's input
// buffers, convert (augment + normalise), forward, fused softmax + cross-entropy, backward, Adam.
// Inference is the same without augmentation, loss and backward. Both are timed with the
// backend's timers (CUDA events on the GPU, the steady clock after synchronising on the CPU) over
// `steps` steps per repeat, after `warmup` untimed steps; the statistics are over repeats.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/bench/device_info.h"
#include "kernels/common/augment.h"
#include "models/run_config.h"

namespace fer::bench {

struct BenchOptions {
  int batch_size = 0;  // 0: the config's [train] batch_size
  // 0: the device's default (cuda: warmup 10, steps 50, repeats 5; cpu: 3, 10, 3).
  int warmup = 0, steps = 0, repeats = 0;
  bool layers = false;  // per-layer profile (timed over `steps` further steps)
  bool inference = true;
  uint64_t seed = 1;
  // Numeric mode (engine/precision.h); nullopt: the config's [train] precision, else the device's
  // default. A precision the device cannot run is a UserError.
  std::optional<Precision> precision;
};

// The batches a benchmark cycles through, in host memory (uploaded to the device once).
struct InputPool {
  int images = 0, height = 48, width = 48;
  std::vector<uint8_t> pixels;   // [images, height, width]
  std::vector<int32_t> labels;   // [images]
  std::vector<AugmentDraw> draws;  // [images]; identity draws when augmentation is off
  bool augment = false;
  std::string description;       // "synthetic (uniform random pixels and labels, seed 1)"
  // Sizes a 50-epoch projection uses: the data's own split, else FER2013's (stated).
  int64_t train_images = 0, validation_images = 0;
  std::string split_note;
};
// Uniform random pixels and labels; at least `images` images (rounded to whole batches).
InputPool synthetic_pool(const models::RunConfig& config, int images, uint64_t seed);
// The first `images` training rows of a permutation of the config's data (loaders/dataset.h).
InputPool dataset_pool(const models::RunConfig& config, const std::string& path, int images,
                       uint64_t seed);

struct Stats {
  double median = 0, min = 0, max = 0, q1 = 0, q3 = 0;
  std::vector<double> samples;
  static Stats of(std::vector<double> samples);
};

// One row of the layer profile. Layers that only alias their input (Flatten) do no work: runs is
// false and their times are zero. The pseudo-rows "input", "loss" and "optim/adam" and the
// remainder "other" (time inside the step not inside any of them) make the shares add to 100%.
struct LayerRow {
  int index = -1;        // graph layer index; -1 for pseudo-rows
  std::string name, type, output_shape;
  bool runs = true;
  double fwd_ms = 0, bwd_ms = 0;          // mean per step
  int64_t fwd_flops = 0, bwd_flops = 0;   // per step at the benchmark's batch
  double share = 0;                       // (fwd + bwd) / profiled step time
};

struct DeviceResult {
  std::string device;        // "cpu" or "cuda"
  std::string description;   // the backend's own description
  std::string hardware;      // CPU model / GPU name
  std::string math;          // the plan's precision: "fp32", "tf32" or "bf16" (convolutions and GEMMs)
  int batch = 0, warmup = 0, steps = 0, repeats = 0;
  Stats train_images_per_s, train_step_ms, infer_images_per_s;
  double final_loss = 0;     // mean loss of the last timed repeat (finite: sanity)
  int64_t step_flops = 0;    // forward + backward FLOPs of one training step
  int64_t infer_flops = 0;   // forward FLOPs of one inference batch
  PeakRate peak;
  double peak_gflops = 0;    // the peak the "% of peak" columns use (TF32 when it is in use)
  // Memory: the graph's arena, the optimizer's slots and the input pool (all backend allocations
  // the benchmark makes), and on CUDA the cudaMemGetInfo drop from before the backend existed to
  // after the run (cuDNN/cuBLAS handles and workspaces, context growth included).
  size_t arena_bytes = 0, optimizer_bytes = 0, pool_bytes = 0, device_delta_bytes = 0;
  size_t host_peak_rss_bytes = 0;
  std::vector<LayerRow> layers;  // empty unless options.layers
  double profiled_step_ms = 0;   // mean step time while profiling (timers add some overhead)
  // Projection of a whole run (the config's epochs) at the measured medians:
  // epochs x ((train // batch) x batch / train rate + validation / inference rate); 0 when the
  // split sizes are unknown.
  int epochs = 0;
  double projected_run_s = 0;
};

struct BenchReport {
  std::string config_path, model_name, data, split_note;
  int64_t train_images = 0, validation_images = 0;
  int64_t trainable = 0;
  std::vector<DeviceResult> results;
  std::vector<std::string> skipped;  // "cuda: no CUDA device present"
  // cuda median / cpu median from this same run, when both ran.
  double gpu_cpu_train_ratio = 0, gpu_cpu_infer_ratio = 0;
};

// Creates a backend of `kind` (device 0, TF32 allowed), builds and plans a fresh graph of
// `config` on it and benchmarks it. Throws DeviceError when the device cannot be opened.
DeviceResult run_benchmark(const models::RunConfig& config, DeviceKind kind, const InputPool& pool,
                           const BenchOptions& options);

// Human-readable report (throughput table, memory, per-layer tables, ratio).
std::string format_report(const BenchReport& report);
// The same numbers as one JSON object (nlohmann/json, one-space indent); a non-finite number
// (a ratio or peak not measured) is null.
std::string to_json(const BenchReport& report);

}  // namespace fer::bench
