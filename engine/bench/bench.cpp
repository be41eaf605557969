#include "engine/bench/bench.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "engine/error.h"
#include "engine/graph.h"
#include "engine/nvtx.h"
#include "engine/optimizer.h"
#include "loaders/dataset.h"
#include "models/summary.h"

#if FER_HAVE_CUDA
#include "engine/cuda/cuda_backend.h"
#endif

namespace fer::bench {
namespace {

// ---------------------------------------------------------------- input pools

kernels::AugmentConfig augment_config(const models::RunConfig& config) {
  kernels::AugmentConfig a;
  a.shear_range_deg = config.augment.shear_range;
  a.zoom_range = config.augment.zoom_range;
  a.horizontal_flip = config.augment.horizontal_flip;
  return a;
}

void fill_draws(InputPool& pool, const models::RunConfig& config, uint64_t seed,
                const std::vector<int64_t>& rows) {
  const kernels::AugmentConfig a = augment_config(config);
  pool.augment = a.enabled();
  pool.draws.assign(size_t(pool.images), AugmentDraw{});
  if (!pool.augment) return;
  for (int i = 0; i < pool.images; ++i) {
    pool.draws[size_t(i)] = kernels::augment_draw(seed, 0, uint64_t(rows.empty() ? i : rows[size_t(i)]), a);
  }
}

// FER2013 (Kaggle CSV): 28,709 Training rows, 3,589 PublicTest + 3,589 PrivateTest; disgust (id 1)
// has 436 / 56 / 55 of them.
void fer2013_split(const models::RunConfig& config, InputPool& pool) {
  const auto& drop = config.data.drop_classes;
  const bool train_default = config.data.train_usage == std::vector<std::string>{"Training"};
  const bool val_default =
      config.data.validation_usage == std::vector<std::string>{"PublicTest", "PrivateTest"};
  if (!train_default || !val_default) return;
  if (drop.empty()) {
    pool.train_images = 28709, pool.validation_images = 7178;
    pool.split_note = "FER2013 7-class split (28,709 train + 7,178 validation images)";
  } else if (drop == std::vector<int>{1}) {
    pool.train_images = 28273, pool.validation_images = 7067;
    pool.split_note = "FER2013 6-class split without disgust (28,273 train + 7,067 validation images)";
  }
}

loaders::Usage parse_usage(const std::string& name, const std::string& config_path) {
  for (int u = 0; u < loaders::kNumUsages; ++u) {
    if (name == loaders::usage_name(loaders::Usage(u))) return loaders::Usage(u);
  }
  throw UserError(config_path + ": unknown data usage '" + name + "'");
}

// ---------------------------------------------------------------- timers

// Backend timers owned RAII-style; destroyed before the backend goes.
class Timers {
 public:
  Timers(Backend& backend, size_t count) : backend_(backend) {
    timers_.reserve(count);
    for (size_t i = 0; i < count; ++i) timers_.push_back(backend_.timer_create());
  }
  ~Timers() {
    for (void* t : timers_) backend_.timer_destroy(t);
  }
  Timers(const Timers&) = delete;
  Timers& operator=(const Timers&) = delete;
  void record(size_t i) { backend_.timer_record(timers_[i]); }
  double ms(size_t a, size_t b) { return backend_.timer_elapsed_ms(timers_[a], timers_[b]); }

 private:
  Backend& backend_;
  std::vector<void*> timers_;
};

// Timer slots of the per-layer profile: two per (layer, pass), then the pseudo-rows.
struct ProfileSlots {
  int layers = 0;
  size_t layer(int i, Pass p, bool after) const { return size_t(((i * 2) + int(p)) * 2 + int(after)); }
  size_t base() const { return size_t(layers) * 4; }
  size_t step_begin() const { return base() + 0; }
  size_t input_begin() const { return base() + 1; }
  size_t input_end() const { return base() + 2; }
  size_t loss_begin() const { return base() + 3; }
  size_t loss_end() const { return base() + 4; }
  size_t optim_begin() const { return base() + 5; }
  size_t optim_end() const { return base() + 6; }
  size_t step_end() const { return base() + 7; }
  size_t count() const { return base() + 8; }
};

class TimingObserver final : public LayerObserver {
 public:
  TimingObserver(Timers& timers, const ProfileSlots& slots) : timers_(timers), slots_(slots) {}
  void before_layer(int index, Pass pass) override { timers_.record(slots_.layer(index, pass, false)); }
  void after_layer(int index, Pass pass) override { timers_.record(slots_.layer(index, pass, true)); }

 private:
  Timers& timers_;
  const ProfileSlots& slots_;
};

// ---------------------------------------------------------------- the step

class Runner {
 public:
  Runner(const models::RunConfig& config, std::shared_ptr<Backend> backend, const InputPool& pool,
         int batch, uint64_t seed, Precision precision)
      : backend_(std::move(backend)), pool_(pool), batch_(batch) {
    graph_ = models::build_graph(config);
    graph_->plan(backend_, batch_, {}, precision);
    graph_->initialize(seed);
    optimizer_ = std::make_unique<Optimizer>(backend_, graph_->param_layout(), config.train.optimizer);
    optim_name_ = config.train.optimizer.kind == OptimizerConfig::Kind::adam ? "optim/adam" : "optim/sgd";
    batches_ = pool_.images / batch_;
    if (batches_ < 1) throw UserError("the input pool holds fewer images than one batch");
    const size_t pixels = size_t(pool_.images) * pool_.height * pool_.width;
    pixels_ = static_cast<uint8_t*>(backend_->allocate(pixels));
    labels_ = static_cast<int32_t*>(backend_->allocate(size_t(pool_.images) * sizeof(int32_t)));
    draws_ = static_cast<AugmentDraw*>(backend_->allocate(size_t(pool_.images) * sizeof(AugmentDraw)));
    pool_bytes_ = pixels + size_t(pool_.images) * (sizeof(int32_t) + sizeof(AugmentDraw));
    backend_->copy_from_host(pixels_, pool_.pixels.data(), pixels);
    backend_->copy_from_host(labels_, pool_.labels.data(), size_t(pool_.images) * sizeof(int32_t));
    backend_->copy_from_host(draws_, pool_.draws.data(), size_t(pool_.images) * sizeof(AugmentDraw));
    backend_->synchronize();
  }
  ~Runner() {
    backend_->synchronize();
    backend_->deallocate(draws_);
    backend_->deallocate(labels_);
    backend_->deallocate(pixels_);
  }
  Runner(const Runner&) = delete;
  Runner& operator=(const Runner&) = delete;

  Graph& graph() { return *graph_; }
  Backend& backend() { return *backend_; }
  size_t pool_bytes() const { return pool_bytes_; }
  size_t optimizer_bytes() const { return size_t(optimizer_->state_floats()) * sizeof(float); }
  const std::string& optim_name() const { return optim_name_; }

  // Device-to-device copy of the next pooled batch into the graph's inputs, then conversion.
  void input(bool augment) {
    const int b = int(cursor_++ % uint64_t(batches_));
    const size_t first = size_t(b) * size_t(batch_);
    const size_t image_bytes = size_t(pool_.height) * pool_.width;
    backend_->copy(graph_->images(), pixels_ + first * image_bytes, size_t(batch_) * image_bytes);
    backend_->copy(graph_->labels(), labels_ + first, size_t(batch_) * sizeof(int32_t));
    if (augment) backend_->copy(graph_->draws(), draws_ + first, size_t(batch_) * sizeof(AugmentDraw));
    graph_->convert_images(batch_, augment);
  }

  void train_step(Timers* t = nullptr, const ProfileSlots* s = nullptr) {
    NvtxRange range("step");
    const uint64_t step = ++step_;
    if (t) t->record(s->step_begin()), t->record(s->input_begin());
    input(pool_.augment);
    if (t) t->record(s->input_end());
    graph_->forward(batch_, true, step);
    if (t) t->record(s->loss_begin());
    graph_->loss(batch_, true);
    if (t) t->record(s->loss_end());
    graph_->backward(batch_, step);
    if (t) t->record(s->optim_begin());
    optimizer_->step(graph_->params(), graph_->grads());  // emits its own optim/<kind> range
    if (t) t->record(s->optim_end()), t->record(s->step_end());
  }

  void infer_step() {
    NvtxRange range("infer");
    input(false);
    graph_->forward(batch_, false, 0);
  }

 private:
  std::shared_ptr<Backend> backend_;
  const InputPool& pool_;
  int batch_;
  std::unique_ptr<Graph> graph_;
  std::unique_ptr<Optimizer> optimizer_;
  std::string optim_name_;
  int batches_ = 0;
  uint8_t* pixels_ = nullptr;
  int32_t* labels_ = nullptr;
  AugmentDraw* draws_ = nullptr;
  size_t pool_bytes_ = 0;
  uint64_t cursor_ = 0, step_ = 0;
};

// ---------------------------------------------------------------- formatting helpers

std::string fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), format, v);
  return buf;
}

std::string mib(size_t bytes) { return fmt("%.1f MiB", double(bytes) / (1024.0 * 1024.0)); }

std::string duration(double s) {
  if (s <= 0) return "n/a";
  if (s < 120) return fmt("%.1f s", s);
  if (s < 7200) return fmt("%.1f min", s / 60.0);
  return fmt("%.2f h", s / 3600.0);
}

std::string pad(const std::string& s, size_t width, bool right = false) {
  if (s.size() >= width) return s;
  return right ? std::string(width - s.size(), ' ') + s : s + std::string(width - s.size(), ' ');
}

std::string gflops(int64_t flops, double ms) {
  if (flops <= 0 || ms <= 0) return "-";
  return fmt("%.1f", double(flops) / (ms * 1e6));
}

}  // namespace

// ---------------------------------------------------------------- public

Stats Stats::of(std::vector<double> samples) {
  Stats s;
  s.samples = samples;
  if (samples.empty()) return s;
  std::sort(samples.begin(), samples.end());
  auto quantile = [&](double q) {
    const double pos = q * double(samples.size() - 1);
    const size_t lo = size_t(std::floor(pos));
    const size_t hi = std::min(lo + 1, samples.size() - 1);
    return samples[lo] + (samples[hi] - samples[lo]) * (pos - double(lo));
  };
  s.min = samples.front();
  s.max = samples.back();
  s.median = quantile(0.5);
  s.q1 = quantile(0.25);
  s.q3 = quantile(0.75);
  return s;
}

InputPool synthetic_pool(const models::RunConfig& config, int images, uint64_t seed) {
  InputPool pool;
  pool.height = config.model.input_shape[0];
  pool.width = config.model.input_shape[1];
  pool.images = std::max(images, 1);
  std::mt19937_64 rng(seed);
  pool.pixels.resize(size_t(pool.images) * pool.height * pool.width);
  for (auto& p : pool.pixels) p = uint8_t(rng() & 0xff);
  pool.labels.resize(size_t(pool.images));
  for (auto& l : pool.labels) l = int32_t(rng() % uint64_t(config.model.classes));
  fill_draws(pool, config, seed, {});
  pool.description = "synthetic (uniform random pixels and labels, seed " + std::to_string(seed) + ", " +
                     std::to_string(pool.images) + " images resident on the device)";
  fer2013_split(config, pool);
  return pool;
}

InputPool dataset_pool(const models::RunConfig& config, const std::string& path, int images,
                       uint64_t seed) {
  loaders::DatasetOptions opt;
  opt.drop_classes = config.data.drop_classes;
  opt.train_usages.clear();
  opt.validation_usages.clear();
  for (const auto& u : config.data.train_usage) opt.train_usages.push_back(parse_usage(u, config.path));
  for (const auto& u : config.data.validation_usage) opt.validation_usages.push_back(parse_usage(u, config.path));
  const loaders::Dataset data = loaders::load_dataset(path, opt);
  data.require_labels("benchmarking a training step");
  if (data.num_classes() != config.model.classes) {
    throw UserError(path + ": has " + std::to_string(data.num_classes()) + " classes after drop_classes, but " +
                    config.path + " expects " + std::to_string(config.model.classes));
  }
  if (data.height != config.model.input_shape[0] || data.width != config.model.input_shape[1]) {
    throw UserError(path + ": images are " + std::to_string(data.height) + "x" + std::to_string(data.width) +
                    ", the model takes " + std::to_string(config.model.input_shape[0]) + "x" +
                    std::to_string(config.model.input_shape[1]));
  }
  std::vector<int64_t> rows = data.train_rows;
  if (rows.empty()) throw UserError(path + ": no training rows for the config's train_usage");
  std::mt19937_64 rng(seed);
  std::shuffle(rows.begin(), rows.end(), rng);
  if (int64_t(rows.size()) > images) rows.resize(size_t(images));
  InputPool pool;
  pool.height = data.height;
  pool.width = data.width;
  pool.images = int(rows.size());
  pool.pixels.resize(size_t(pool.images) * pool.height * pool.width);
  pool.labels.resize(size_t(pool.images));
  for (int i = 0; i < pool.images; ++i) {
    const int64_t r = rows[size_t(i)];
    std::copy(data.image(r), data.image(r) + data.image_bytes(), pool.pixels.data() + size_t(i) * data.image_bytes());
    pool.labels[size_t(i)] = data.labels[size_t(r)];
  }
  fill_draws(pool, config, seed, rows);
  pool.description = "real data: " + path + " (" + data.layout + "), " + std::to_string(pool.images) +
                     " shuffled training images resident on the device";
  pool.train_images = int64_t(data.train_rows.size());
  pool.validation_images = int64_t(data.validation_rows.size());
  pool.split_note = "split of " + path + " (" + std::to_string(pool.train_images) + " train + " +
                    std::to_string(pool.validation_images) + " validation images)";
  return pool;
}

DeviceResult run_benchmark(const models::RunConfig& config, DeviceKind kind, const InputPool& pool,
                           const BenchOptions& options) {
  DeviceResult r;
  r.device = device_name(kind);
  const bool gpu = kind == DeviceKind::cuda;
  r.batch = options.batch_size > 0 ? options.batch_size : config.train.batch_size;
  r.warmup = options.warmup > 0 ? options.warmup : (gpu ? 10 : 3);
  r.steps = options.steps > 0 ? options.steps : (gpu ? 50 : 10);
  r.repeats = options.repeats > 0 ? options.repeats : (gpu ? 5 : 3);
  r.epochs = config.train.epochs;

  // Free device memory before the backend exists (this creates the CUDA context).
  const size_t free_before = gpu ? gpu_free_bytes() : 0;
  // The precision: --precision, else the config's [train] precision, else the device's default.
  const std::optional<Precision> asked = options.precision ? options.precision : config.train.precision;
  BackendOptions backend_options;
  backend_options.allow_tf32 = asked != Precision::fp32;
  std::shared_ptr<Backend> backend = gpu ? std::shared_ptr<Backend>(make_cuda_backend(0, backend_options))
                                         : std::shared_ptr<Backend>(make_cpu_backend());
  r.description = backend->description();
  const Precision precision = asked.value_or(backend->default_precision());
  if (const std::string why = backend->precision_unsupported(precision); !why.empty()) {
    throw UserError(std::string("precision ") + precision_name(precision) + " on " + r.device + ": " + why);
  }
  r.math = precision_name(precision);
  if (gpu) {
    GpuInfo info;
    std::string why;
    if (gpu_info(0, &info, &why)) {
      r.hardware = info.name + " (sm_" + std::to_string(info.cc_major) + std::to_string(info.cc_minor) +
                   ", driver " + info.driver + ", runtime " + info.runtime + ")";
      r.peak = gpu_peak(info);
    }
  } else {
    const CpuInfo info = cpu_info(true);
    r.hardware = info.model + " (" + std::to_string(info.threads_used) + " threads, " +
                 std::to_string(info.physical_cores) + " cores, " + info.simd + ")";
    r.peak = cpu_peak(info);
  }
  r.peak_gflops = (precision == Precision::tf32 && r.peak.tf32_gflops > 0)   ? r.peak.tf32_gflops
                  : (precision == Precision::bf16 && r.peak.bf16_gflops > 0) ? r.peak.bf16_gflops
                                                                             : r.peak.fp32_gflops;

  InputPool sized = pool;  // the pool must hold at least one batch: repeat it if it is smaller
  if (sized.images < r.batch) {
    const int copies = (r.batch + sized.images - 1) / sized.images;
    InputPool grown = sized;
    grown.images = sized.images * copies;
    for (int c = 1; c < copies; ++c) {
      grown.pixels.insert(grown.pixels.end(), sized.pixels.begin(), sized.pixels.end());
      grown.labels.insert(grown.labels.end(), sized.labels.begin(), sized.labels.end());
      grown.draws.insert(grown.draws.end(), sized.draws.begin(), sized.draws.end());
    }
    sized = std::move(grown);
  }

  {
    Runner run(config, backend, sized, r.batch, options.seed, precision);
    Graph& g = run.graph();
    for (int i = 0; i < g.num_layers(); ++i) {
      r.step_flops += g.layer(i).forward_flops(r.batch) + g.layer(i).backward_flops(r.batch);
      r.infer_flops += g.layer(i).forward_flops(r.batch);
    }

    // Warm-up: first-touch of the arena, cuDNN/cuBLAS lazy set-up, caches, clocks.
    for (int i = 0; i < r.warmup; ++i) run.train_step();
    if (options.inference) {
      for (int i = 0; i < std::max(1, std::min(r.warmup, 3)); ++i) run.infer_step();
    }
    g.take_metrics();

    Timers t(run.backend(), 2);
    std::vector<double> ips, step_ms, infer_ips;
    for (int rep = 0; rep < r.repeats; ++rep) {
      t.record(0);
      for (int i = 0; i < r.steps; ++i) run.train_step();
      t.record(1);
      const double ms = t.ms(0, 1);
      ips.push_back(double(r.steps) * r.batch / (ms / 1e3));
      step_ms.push_back(ms / r.steps);
      const BatchMetrics m = g.take_metrics();
      r.final_loss = m.mean_loss();
    }
    r.train_images_per_s = Stats::of(ips);
    r.train_step_ms = Stats::of(step_ms);
    if (!std::isfinite(r.final_loss)) {
      throw std::runtime_error("benchmark of " + config.model.name + " on " + r.device +
                               ": the loss is not finite (" + std::to_string(r.final_loss) + ")");
    }

    if (options.inference) {
      for (int rep = 0; rep < r.repeats; ++rep) {
        t.record(0);
        for (int i = 0; i < r.steps; ++i) run.infer_step();
        t.record(1);
        infer_ips.push_back(double(r.steps) * r.batch / (t.ms(0, 1) / 1e3));
      }
      r.infer_images_per_s = Stats::of(infer_ips);
    }

    if (options.layers) {
      ProfileSlots slots{g.num_layers()};
      Timers pt(run.backend(), slots.count());
      TimingObserver observer(pt, slots);
      std::vector<double> fwd(size_t(g.num_layers()), 0.0), bwd(size_t(g.num_layers()), 0.0);
      double input = 0, loss = 0, optim = 0, total = 0;
      std::vector<bool> runs(size_t(g.num_layers()));
      for (int i = 0; i < g.num_layers(); ++i) runs[size_t(i)] = !g.layer(i).aliases_input();
      g.set_layer_observer(&observer);
      try {
        for (int s = 0; s < r.steps; ++s) {
          run.train_step(&pt, &slots);
          total += pt.ms(slots.step_begin(), slots.step_end());
          input += pt.ms(slots.input_begin(), slots.input_end());
          loss += pt.ms(slots.loss_begin(), slots.loss_end());
          optim += pt.ms(slots.optim_begin(), slots.optim_end());
          for (int i = 0; i < g.num_layers(); ++i) {
            if (!runs[size_t(i)]) continue;
            fwd[size_t(i)] += pt.ms(slots.layer(i, Pass::forward, false), slots.layer(i, Pass::forward, true));
            // The first computing layer's backward still runs (parameter gradients only).
            bwd[size_t(i)] += pt.ms(slots.layer(i, Pass::backward, false), slots.layer(i, Pass::backward, true));
          }
        }
      } catch (...) {
        g.set_layer_observer(nullptr);
        throw;
      }
      g.set_layer_observer(nullptr);
      g.take_metrics();
      const double n = double(r.steps);
      r.profiled_step_ms = total / n;
      double attributed = 0;
      auto add = [&](LayerRow row) {
        attributed += row.fwd_ms + row.bwd_ms;
        r.layers.push_back(std::move(row));
      };
      // Rows of work outside the layers: input, loss, optimizer, and what no timer saw.
      auto pseudo_row = [](std::string name, std::string type, double ms) {
        LayerRow row;
        row.name = std::move(name);
        row.type = std::move(type);
        row.fwd_ms = ms;
        return row;
      };
      add(pseudo_row("input", pool.augment ? "copy+augment" : "copy+convert", input / n));
      for (int i = 0; i < g.num_layers(); ++i) {
        LayerRow row;
        row.index = i;
        row.name = g.layer(i).name();
        row.type = g.layer(i).type();
        row.output_shape = g.output_shape(i).str();
        row.runs = runs[size_t(i)];
        row.fwd_ms = fwd[size_t(i)] / n;
        row.bwd_ms = bwd[size_t(i)] / n;
        row.fwd_flops = g.layer(i).forward_flops(r.batch);
        row.bwd_flops = g.layer(i).backward_flops(r.batch);
        add(row);
      }
      add(pseudo_row("loss", "softmax+xent", loss / n));
      add(pseudo_row(run.optim_name(), "fused update", optim / n));
      r.layers.push_back(pseudo_row("other", "between timers", std::max(0.0, r.profiled_step_ms - attributed)));
      const double denom = std::max(r.profiled_step_ms, attributed);
      for (LayerRow& row : r.layers) row.share = denom > 0 ? (row.fwd_ms + row.bwd_ms) / denom : 0.0;
    }

    r.arena_bytes = g.arena_bytes();
    r.optimizer_bytes = run.optimizer_bytes();
    r.pool_bytes = run.pool_bytes();
    if (gpu) {
      const size_t free_after = gpu_free_bytes();
      r.device_delta_bytes = free_before > free_after ? free_before - free_after : 0;
    }
  }
  r.host_peak_rss_bytes = process_peak_rss_bytes();

  if (pool.train_images > 0 && pool.validation_images > 0 && r.train_images_per_s.median > 0 &&
      r.infer_images_per_s.median > 0) {
    const double train = double(pool.train_images / r.batch * r.batch);
    r.projected_run_s = r.epochs * (train / r.train_images_per_s.median +
                                    double(pool.validation_images) / r.infer_images_per_s.median);
  }
  return r;
}

namespace {
// "[min, max]" of a rate, one decimal.
std::string min_max(const Stats& s) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "[%.1f, %.1f]", s.min, s.max);
  return buf;
}
}  // namespace

std::string format_report(const BenchReport& rep) {
  std::ostringstream out;
  out << "fer_gpu bench: " << rep.model_name << " (" << rep.config_path << "), "
      << models::with_thousands(rep.trainable) << " trainable parameters\n";
  out << "data: " << rep.data << "\n\n";

  out << pad("device", 7) << pad("math", 6) << pad("batch", 6, true) << "  " << pad("train img/s", 12, true)
      << "  " << pad("[min, max]", 19) << pad("step ms", 9, true) << "  " << pad("infer img/s", 12, true)
      << "  " << pad("[min, max]", 19) << pad("step GFLOP/s", 12, true) << pad("% peak", 8, true) << "\n";
  for (const DeviceResult& r : rep.results) {
    const double achieved = r.step_flops / (r.train_step_ms.median * 1e6);
    out << pad(r.device, 7) << pad(r.math, 6) << pad(std::to_string(r.batch), 6, true) << "  "
        << pad(fmt("%.1f", r.train_images_per_s.median), 12, true) << "  "
        << pad(min_max(r.train_images_per_s), 19)
        << pad(fmt("%.2f", r.train_step_ms.median), 9, true) << "  "
        << pad(r.infer_images_per_s.samples.empty() ? "-" : fmt("%.1f", r.infer_images_per_s.median), 12, true)
        << "  "
        << pad(r.infer_images_per_s.samples.empty() ? "" : min_max(r.infer_images_per_s), 19)
        << pad(fmt("%.1f", achieved), 12, true)
        << pad(r.peak_gflops > 0 ? fmt("%.1f%%", 100.0 * achieved / r.peak_gflops) : "-", 8, true) << "\n";
  }
  for (const std::string& s : rep.skipped) out << "skipped " << s << "\n";
  if (rep.gpu_cpu_train_ratio > 0) {
    out << "\nGPU/CPU (medians, this run, this machine): training " << fmt("%.1fx", rep.gpu_cpu_train_ratio);
    if (rep.gpu_cpu_infer_ratio > 0) out << ", inference " << fmt("%.1fx", rep.gpu_cpu_infer_ratio);
    out << "\n";
  }
  out << "\n";
  for (const DeviceResult& r : rep.results) {
    out << r.device << ": " << r.hardware << "\n";
    out << "  backend: " << r.description << "\n";
    out << "  timing: " << r.warmup << " warm-up steps, then " << r.repeats << " repeats of " << r.steps
        << " steps (" << (r.device == "cuda" ? "CUDA events" : "steady clock")
        << "); train step = input copy+convert, forward, loss, backward, optimizer; loss after the run "
        << fmt("%.4f", r.final_loss) << "\n";
    out << "  work: " << fmt("%.2f", r.step_flops / 1e9) << " GFLOP per training step, "
        << fmt("%.2f", r.infer_flops / 1e9) << " GFLOP per inference batch\n";
    out << "  peak: " << r.peak.formula << "\n";
    out << "  memory: arena " << mib(r.arena_bytes) << ", optimizer slots " << mib(r.optimizer_bytes)
        << ", input pool " << mib(r.pool_bytes) << " = " << mib(r.arena_bytes + r.optimizer_bytes + r.pool_bytes)
        << " allocated by the benchmark";
    if (r.device == "cuda") out << "; cudaMemGetInfo drop over the run " << mib(r.device_delta_bytes);
    out << "; host peak RSS " << mib(r.host_peak_rss_bytes) << "\n";
    if (r.projected_run_s > 0) {
      out << "  projected " << r.epochs << "-epoch run at these rates (" << rep.split_note
          << ", validation every epoch): " << duration(r.projected_run_s) << "\n";
    }
  }

  for (const DeviceResult& r : rep.results) {
    if (r.layers.empty()) continue;
    out << "\nper-layer profile, " << r.device << " (mean of " << r.steps << " training steps, batch " << r.batch
        << "; profiled step " << fmt("%.2f", r.profiled_step_ms) << " ms vs " << fmt("%.2f", r.train_step_ms.median)
        << " ms unprofiled; % peak against " << fmt("%.0f", r.peak_gflops) << " GFLOP/s " << r.math << ")\n";
    out << pad("#", 4, true) << "  " << pad("layer", 24) << pad("type", 20) << pad("output", 20)
        << pad("fwd ms", 9, true) << pad("bwd ms", 9, true) << pad("share", 8, true) << pad("fwd GF/s", 10, true)
        << pad("bwd GF/s", 10, true) << pad("% peak", 8, true) << "\n";
    double sum_share = 0, sum_ms = 0;
    for (const LayerRow& row : r.layers) {
      sum_share += row.share;
      sum_ms += row.fwd_ms + row.bwd_ms;
      const bool pseudo = row.index < 0;
      const int64_t flops = row.fwd_flops + row.bwd_flops;
      const double ms = row.fwd_ms + row.bwd_ms;
      out << pad(pseudo ? "" : std::to_string(row.index), 4, true) << "  " << pad(row.name, 24)
          << pad(row.type, 20) << pad(row.output_shape, 20);
      if (!row.runs) {
        out << pad("-", 9, true) << pad("-", 9, true) << pad("0.0%", 8, true) << "   (reshape: no work)\n";
        continue;
      }
      out << pad(fmt("%.3f", row.fwd_ms), 9, true)
          << pad(pseudo && row.bwd_ms == 0 ? "" : fmt("%.3f", row.bwd_ms), 9, true)
          << pad(fmt("%.1f%%", 100.0 * row.share), 8, true) << pad(gflops(row.fwd_flops, row.fwd_ms), 10, true)
          << pad(gflops(row.bwd_flops, row.bwd_ms), 10, true)
          << pad(flops > 0 && ms > 0 && r.peak_gflops > 0
                     ? fmt("%.1f%%", 100.0 * (double(flops) / (ms * 1e6)) / r.peak_gflops)
                     : "",
                 8, true)
          << "\n";
    }
    out << pad("", 4) << "  " << pad("total", 64) << pad(fmt("%.3f", sum_ms), 18, true)
        << pad(fmt("%.1f%%", 100.0 * sum_share), 8, true) << "\n";
  }
  return out.str();
}

// ---------------------------------------------------------------- JSON

namespace {

using Json = nlohmann::ordered_json;

// JSON has no NaN or infinity (an unmeasured ratio, a peak the device does not report): null.
Json number(double v) { return std::isfinite(v) ? Json(v) : Json(nullptr); }

Json stats_json(const Stats& s) {
  Json samples = Json::array();
  for (double v : s.samples) samples.push_back(number(v));
  return Json{{"median", number(s.median)}, {"min", number(s.min)}, {"max", number(s.max)},
              {"q1", number(s.q1)},         {"q3", number(s.q3)},   {"samples", std::move(samples)}};
}

Json result_json(const DeviceResult& r) {
  Json layers = Json::array();
  for (const LayerRow& row : r.layers) {
    layers.push_back(Json{{"index", row.index},
                          {"name", row.name},
                          {"type", row.type},
                          {"output_shape", row.output_shape},
                          {"runs", row.runs},
                          {"fwd_ms", number(row.fwd_ms)},
                          {"bwd_ms", number(row.bwd_ms)},
                          {"fwd_flops", row.fwd_flops},
                          {"bwd_flops", row.bwd_flops},
                          {"share", number(row.share)}});
  }
  Json j;
  j["device"] = r.device;
  j["hardware"] = r.hardware;
  j["backend"] = r.description;
  j["math"] = r.math;
  j["batch"] = r.batch;
  j["warmup"] = r.warmup;
  j["steps"] = r.steps;
  j["repeats"] = r.repeats;
  j["train_images_per_s"] = stats_json(r.train_images_per_s);
  j["train_step_ms"] = stats_json(r.train_step_ms);
  j["infer_images_per_s"] = stats_json(r.infer_images_per_s);
  j["final_loss"] = number(r.final_loss);
  j["step_flops"] = r.step_flops;
  j["infer_flops"] = r.infer_flops;
  j["peak"] = Json{{"fp32_gflops", number(r.peak.fp32_gflops)},
                   {"tf32_gflops", number(r.peak.tf32_gflops)},
                   {"bf16_gflops", number(r.peak.bf16_gflops)},
                   {"used_gflops", number(r.peak_gflops)},
                   {"formula", r.peak.formula}};
  j["memory"] = Json{{"arena_bytes", r.arena_bytes},
                     {"optimizer_bytes", r.optimizer_bytes},
                     {"input_pool_bytes", r.pool_bytes},
                     {"device_delta_bytes", r.device_delta_bytes},
                     {"host_peak_rss_bytes", r.host_peak_rss_bytes}};
  j["epochs"] = r.epochs;
  j["projected_run_s"] = number(r.projected_run_s);
  j["profiled_step_ms"] = number(r.profiled_step_ms);
  j["layers"] = std::move(layers);
  return j;
}

}  // namespace

std::string to_json(const BenchReport& rep) {
  Json j;
  j["config"] = rep.config_path;
  j["model"] = rep.model_name;
  j["trainable_parameters"] = rep.trainable;
  j["data"] = rep.data;
  j["split"] = rep.split_note;
  j["train_images"] = rep.train_images;
  j["validation_images"] = rep.validation_images;
  j["results"] = Json::array();
  for (const DeviceResult& r : rep.results) j["results"].push_back(result_json(r));
  j["skipped"] = rep.skipped;
  j["gpu_cpu_train_ratio"] = number(rep.gpu_cpu_train_ratio);
  j["gpu_cpu_infer_ratio"] = number(rep.gpu_cpu_infer_ratio);
  // Device and file names need not be valid UTF-8: replaced, not thrown on.
  return j.dump(1, ' ', false, Json::error_handler_t::replace) + "\n";
}

}  // namespace fer::bench
