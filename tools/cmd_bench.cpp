// fer_gpu bench CONFIG: training and inference throughput on the CPU and/or the GPU, optionally a
// per-layer forward/backward profile (like `caffe time`), and a JSON record of every number.
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include "engine/bench/bench.h"
#include "engine/error.h"
#include "models/run_config.h"
#include "tools/commands.h"

namespace {

struct BenchArgs {
  std::string config;
  std::string precision;  // empty: the config's [train] precision, else the device's default
  std::string device;  // empty: cuda when a GPU answers, else cpu
  std::string json;
  std::string data;
  int pool_batches = 0;
  fer::bench::BenchOptions options;
};

void write_file_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw fer::UserError(path + ": cannot open for writing");
    out << text;
    if (!out.flush()) throw fer::UserError(path + ": write failed");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw fer::UserError(path + ": cannot replace the file");
  }
}

void run(const BenchArgs& a) {
  const fer::models::RunConfig config = fer::models::load_run_config(a.config);
  fer::bench::BenchOptions opt = a.options;
  if (!a.precision.empty()) opt.precision = fer::parse_precision(a.precision);
  const int batch = opt.batch_size > 0 ? opt.batch_size : config.train.batch_size;
  const int pool_images = batch * (a.pool_batches > 0 ? a.pool_batches : (a.data.empty() ? 4 : 16));
  const fer::bench::InputPool pool =
      a.data.empty() ? fer::bench::synthetic_pool(config, pool_images, opt.seed)
                     : fer::bench::dataset_pool(config, a.data, pool_images, opt.seed);

  fer::bench::BenchReport report;
  report.config_path = a.config;
  report.model_name = config.model.name;
  report.data = pool.description;
  report.split_note = pool.split_note;
  report.train_images = pool.train_images;
  report.validation_images = pool.validation_images;
  report.trainable = fer::models::build_graph(config)->trainable_count();

  std::string device = a.device;
  if (device.empty()) {
    std::string why;
    device = fer::cuda_device_available(&why) ? "cuda" : "cpu";
    if (device == "cpu") std::fprintf(stderr, "no GPU (%s): benchmarking the CPU\n", why.c_str());
  }
  const bool want_gpu = device == "cuda" || device == "both";
  const bool want_cpu = device == "cpu" || device == "both";
  if (want_gpu) {
    std::string why;
    if (fer::cuda_device_available(&why)) {
      std::fprintf(stderr, "bench %s on cuda...\n", config.model.name.c_str());
      report.results.push_back(fer::bench::run_benchmark(config, fer::DeviceKind::cuda, pool, opt));
    } else if (device == "cuda") {
      throw fer::DeviceError("no GPU to benchmark on: " + why + " (use --device cpu, or both)");
    } else {
      report.skipped.push_back("cuda: " + why);
    }
  }
  if (want_cpu) {
    std::fprintf(stderr, "bench %s on cpu...\n", config.model.name.c_str());
    report.results.push_back(fer::bench::run_benchmark(config, fer::DeviceKind::cpu, pool, opt));
  }
  if (report.results.size() == 2) {
    const auto& g = report.results[0];
    const auto& c = report.results[1];
    if (c.train_images_per_s.median > 0) report.gpu_cpu_train_ratio = g.train_images_per_s.median / c.train_images_per_s.median;
    if (c.infer_images_per_s.median > 0) report.gpu_cpu_infer_ratio = g.infer_images_per_s.median / c.infer_images_per_s.median;
  }

  std::fputs(fer::bench::format_report(report).c_str(), stdout);
  std::fflush(stdout);
  if (!a.json.empty()) write_file_atomically(a.json, fer::bench::to_json(report));
}

void add_bench(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "bench",
      "Measure training and inference throughput (and, with --layers, per-layer times) of a model config");
  auto a = std::make_shared<BenchArgs>();
  cmd->add_option("config", a->config, "Model config (TOML), e.g. configs/model5-v2.toml")->required();
  cmd->add_option("--device", a->device,
                  "cuda, cpu, or both (both also prints the GPU/CPU ratio); default: cuda when a GPU answers, else cpu")
      ->check(CLI::IsMember({"cuda", "cpu", "both"}));
  cmd->add_option("--batch-size", a->options.batch_size, "Batch size (default: the config's)")
      ->check(CLI::Range(1, 1 << 16));
  cmd->add_option("--steps", a->options.steps, "Timed steps per repeat (default: cuda 50, cpu 10)")
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--warmup", a->options.warmup, "Untimed warm-up steps (default: cuda 10, cpu 3)")
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--repeats", a->options.repeats,
                  "Repeats of the timed steps; median and spread are over these (default: cuda 5, cpu 3)")
      ->check(CLI::Range(1, 1000));
  cmd->add_flag("--layers", a->options.layers,
                "Also time every layer's forward and backward pass (in model order, with share and GFLOP/s)");
  cmd->add_flag("!--no-inference", a->options.inference, "Skip the inference measurement");
  cmd->add_option("--json", a->json, "Write every number to this JSON file");
  cmd->add_option("--precision", a->precision,
                  "fp32, tf32 (CUDA) or bf16 (default: the config's [train] precision, else the device's: "
                  "tf32 on CUDA, fp32 on the CPU)")
      ->check(CLI::IsMember({"fp32", "tf32", "bf16"}));
  cmd->add_option("--data", a->data,
                  "Benchmark on real data (FER2013 CSV or image folders) instead of synthetic images");
  cmd->add_option("--pool-batches", a->pool_batches,
                  "Batches held on the device and cycled through (default: 4 synthetic, 16 real)")
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--seed", a->options.seed, "Seed of weights, synthetic data and draws")->capture_default_str();
  cmd->callback([a] { run(*a); });
}

}  // namespace

FER_COMMAND(add_bench);
