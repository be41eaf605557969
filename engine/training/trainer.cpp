#include "engine/training/trainer.h"

#include <unistd.h>

#include <algorithm>
#include <limits>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iterator>
#include <sstream>

#include "engine/error.h"
#include "engine/graph.h"
#include "engine/nvtx.h"
#include "engine/optimizer.h"
#include "engine/training/callbacks.h"
#include "engine/training/checkpoint.h"
#include "engine/training/collapse.h"
#include "engine/training/distributed_training.h"
#include "engine/training/evaluate.h"
#include "engine/training/fileio.h"
#include "engine/training/progress.h"
#include "engine/training/report.h"
#include "engine/training/run_setup.h"
#include "loaders/batch_stream.h"
#include "loaders/resident_data.h"
#include "models/run_config.h"
#include "models/summary.h"

namespace fer::training {

namespace fs = std::filesystem;

std::string shell_quote(const std::string& word) {
  if (!word.empty() && word.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./=:+,@%") ==
                           std::string::npos) {
    return word;
  }
  std::string out = "'";
  for (char c : word) {
    if (c == '\'') out += "'\\''";
    else out += c;
  }
  return out + "'";
}

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string fmt4(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.4f", v);
  return buf;
}

// A directory we may create a run in: absent (its parent is created), or present and empty.
void check_new_run_dir(const std::string& dir, const std::string& option) {
  std::error_code ec;
  if (fs::exists(dir, ec)) {
    if (!fs::is_directory(dir, ec)) throw UserError(option + " " + dir + ": exists and is not a directory");
    if (!fs::is_empty(dir, ec)) {
      const bool run = path_exists(dir + "/last.ckpt") || path_exists(dir + "/history.csv");
      throw UserError(option + " " + dir + ": " +
                      (run ? "already holds a run; continue it with --resume " + dir + " or choose another --out"
                           : std::string("exists and is not empty; choose another --out")));
    }
  }
}

}  // namespace

struct Trainer::Impl {
  TrainRequest req;
  models::RunConfig config;
  std::string resolved_text;
  DataChoice data_choice;
  loaders::Dataset data;
  std::vector<std::string> class_names;
  std::shared_ptr<Backend> backend;
  std::optional<Precision> precision;  // nullopt: the device's default
  std::string device_description;
  std::unique_ptr<Graph> graph;
  uint64_t arch_hash = 0;
  // The data held on the backend (resident mode; null when streaming) and the validation batches
  // gathered from it. Declared in this order: the batches refer to the data.
  std::shared_ptr<loaders::ResidentData> resident;
  std::unique_ptr<loaders::ResidentBatches> resident_val;
  std::string data_placement;  // "resident in device memory, 82 MiB ..." / "streamed ..."
  std::unique_ptr<Optimizer> optimizer;
  std::unique_ptr<BestCheckpoint> best;
  std::unique_ptr<ReduceLROnPlateau> reduce_lr;
  std::unique_ptr<EarlyStopping> early_stopping;
  std::unique_ptr<CollapseWatch> collapse;
  History history;
  Predictions predictions;
  TrainPosition pos;
  int batch_size = 0;
  int target_epochs = 0;
  uint64_t seed = 0;
  std::string run_dir;
  bool created_run_dir = false;
  bool resumed = false;
  std::string resumed_from;
  std::string model_summary;
  Progress progress{nullptr, false};
  Clock::time_point started;
  std::string last_good;  // last.ckpt description for divergence messages
  // Data parallelism (distributed_training.h): this rank's share of each batch and of the
  // validation rows; a single process has local_batch == batch_size and val_rows == all of them.
  DistributedTraining dist;
  int local_batch = 0;
  std::vector<int64_t> val_rows;

  // State of one call to Trainer::run that its steps share: when to stop, where the checkpoints
  // go, and the training feed (batches gathered from the resident data, or the stream's ring:
  // exactly one of the two is set).
  struct RunLoop {
    const std::atomic<bool>* stop = nullptr;
    int64_t interrupt_after_steps = -1;
    int metrics_every = 1;
    int64_t steps_this_process = 0;
    std::string last_path, best_path;
    std::unique_ptr<loaders::ResidentBatches> resident_train;
    std::unique_ptr<loaders::BatchStream> stream;
    int64_t steps = 0;  // batches per epoch

    bool stop_requested() const {
      if (stop && stop->load()) return true;
      return interrupt_after_steps >= 0 && steps_this_process >= interrupt_after_steps;
    }
  };
  // The sums of the epoch in progress (restored from the checkpoint when resuming inside it).
  struct EpochSums {
    int64_t done = 0;  // steps trained
    double loss_sum = 0, correct = 0, prior_seconds = 0;
    int64_t samples = 0;
    double train_seconds = 0, loader_stall = 0;  // set when the steps end
  };
  enum class StepsEnd { epoch_done, interrupted, diverged };

  void say(const std::string& text) { progress.line(text); }
  std::string resume_command() const;

  // Trainer's constructor: prepare() runs these steps in order.
  void prepare();
  loaders::ResidentMode check_command_line() const;
  void read_resume_checkpoint(Checkpoint& ckpt, std::string& ckpt_path);
  void choose_precision(const Checkpoint& ckpt, const std::string& ckpt_path);
  std::string open_device();
  void build_model(const Checkpoint& ckpt, const std::string& ckpt_path);
  void load_data();
  void choose_recipe();
  void resolve_config();
  void plan_graph();
  void place_data(loaders::ResidentMode resident_mode);
  void make_callbacks();
  void restore_or_initialize(Checkpoint& ckpt, const std::string& ckpt_path);
  void open_run_dir(const std::string& ckpt_path);

  // Trainer::run's steps.
  TrainResult stop_before_start(TrainResult result);
  void announce();
  RunLoop start_loop(const std::atomic<bool>* stop);
  int next_batch(RunLoop& loop, int64_t epoch, int64_t index);
  EpochSums start_epoch(RunLoop& loop, int64_t epoch);
  StepsEnd train_steps(RunLoop& loop, int64_t epoch, EpochSums& sums, TrainResult& result);
  TrainResult save_interrupted(const RunLoop& loop, int64_t epoch, const EpochSums& sums, TrainResult result);
  EpochRecord validate(const RunLoop& loop, int64_t epoch, const EpochSums& sums, CollapseReport* collapsed);
  void advance_position(int64_t epoch);
  std::string run_callbacks(const RunLoop& loop, const EpochRecord& rec, const CollapseReport& collapsed);
  bool save_epoch(const RunLoop& loop, int64_t epoch);
  TrainResult interrupted_after_epoch(const RunLoop& loop, int64_t epoch, TrainResult result);
  void finish(TrainResult& result);

  Checkpoint snapshot(bool with_optimizer) const;
  void save(const std::string& path) const {  // rank 0 writes, the others hold the same weights
    if (dist.root()) write_checkpoint(path, snapshot(true));
  }
  void write_files(const std::string& status);
  std::string augmentation_text() const;
  std::string optimizer_text() const;
  CollapseReport watch_collapse(EpochRecord& rec, const std::vector<int32_t>& val_predicted) const;
};

Trainer::Trainer(const TrainRequest& request) : impl_(std::make_unique<Impl>()) {
  impl_->req = request;
  // Data parallelism: every rank prepares, a failure on any stops all before step 0, only rank 0
  // prints (distributed_training.h).
  Impl& s = *impl_;
  s.dist = DistributedTraining(request.communicator, request.sync_batchnorm);
  if (!s.dist.root()) s.req.out = nullptr;
  s.dist.prepare_together([&] { s.prepare(); },
                          [&] {
                            std::error_code ec;
                            if (s.created_run_dir) fs::remove_all(s.run_dir, ec);
                          });
  s.dist.start(*s.graph);
}

Trainer::~Trainer() = default;

const std::string& Trainer::run_dir() const { return impl_->run_dir; }

std::string Trainer::resume_command() const { return impl_->resume_command(); }

std::string Trainer::Impl::resume_command() const {
  const TrainRequest& r = req;
  std::string cmd = dist.launch_prefix() + "fer_gpu train " + shell_quote(r.config_path);
  if (r.data_path) cmd += " --data " + shell_quote(*r.data_path);
  if (r.device) cmd += " --device " + shell_quote(*r.device);
  if (r.epochs) cmd += " --epochs " + std::to_string(*r.epochs);
  if (r.batch_size) cmd += " --batch-size " + std::to_string(*r.batch_size);
  if (r.seed) cmd += " --seed " + std::to_string(*r.seed);
  if (r.resident) cmd += " --resident " + shell_quote(*r.resident);
  if (r.sync_batchnorm && dist.active()) cmd += " --sync-batchnorm";
  return cmd + " --resume " + shell_quote(run_dir);
}

// Everything that can fail is checked here, before step 0; the steps run in this order so that
// cheap checks (arguments, config, checkpoint, device, model) come before loading the data.
void Trainer::Impl::prepare() {
  started = Clock::now();
  const bool tty = req.tty ? *req.tty : (req.out == stdout && Progress::stdout_is_tty());
  progress = Progress(req.out, tty);

  loaders::ResidentMode resident_mode = check_command_line();
  config = models::load_run_config(req.config_path);
  Checkpoint ckpt;
  std::string ckpt_path;
  read_resume_checkpoint(ckpt, ckpt_path);
  choose_precision(ckpt, ckpt_path);
  const std::string notice = open_device();
  build_model(ckpt, ckpt_path);
  load_data();
  say(notice);
  choose_recipe();
  resolve_config();
  plan_graph();
  place_data(resident_mode);
  make_callbacks();
  restore_or_initialize(ckpt, ckpt_path);
  graph->set_seed(seed);
  graph->set_first_row(dist.first_row(local_batch));
  last_good = resumed ? resumed_from + " (epoch " + std::to_string(pos.epoch) + ")" : "";
  if (dist.root()) open_run_dir(ckpt_path);  // the run directory is rank 0's alone
}

// The command-line values that need no file to check; returns --resident's mode (automatic
// when not given).
loaders::ResidentMode Trainer::Impl::check_command_line() const {
  if (req.epochs && *req.epochs < 1) throw UserError("--epochs must be at least 1");
  if (req.batch_size && *req.batch_size < 1) throw UserError("--batch-size must be at least 1");
  if (req.seed && *req.seed < 0) throw UserError("--seed must not be negative");
  if (req.out_dir && req.out_dir->empty()) throw UserError("--out needs a directory");
  loaders::ResidentMode resident_mode = loaders::ResidentMode::automatic;
  if (req.resident && !loaders::parse_resident_mode(*req.resident, &resident_mode)) {
    throw UserError("--resident must be auto, on or off, not '" + *req.resident + "'");
  }
  return resident_mode;
}

// The checkpoint to resume from (--resume: a run directory's last.ckpt or a checkpoint file);
// leaves `ckpt` empty without --resume.
void Trainer::Impl::read_resume_checkpoint(Checkpoint& ckpt, std::string& ckpt_path) {
  if (!req.resume) return;
  const std::string& r = *req.resume;
  if (is_directory(r)) {
    ckpt_path = (fs::path(r) / "last.ckpt").string();
    if (!path_exists(ckpt_path)) throw UserError("--resume " + r + ": no last.ckpt in this directory");
  } else if (path_exists(r)) {
    ckpt_path = r;
  } else {
    throw UserError("--resume " + r + ": no such run directory or checkpoint file");
  }
  if (!req.out_dir && fs::path(ckpt_path).filename() != "last.ckpt") {
    throw UserError("--resume " + r + ": continuing from a checkpoint other than a run's last.ckpt would "
                    "overwrite that run's last.ckpt and history; add --out NEW_DIR to continue into a new run directory");
  }
  ckpt = read_checkpoint(ckpt_path);
  resumed = true;
  resumed_from = ckpt_path;
}

// Precision: --precision, else the resumed run's, else the config's, else (nullopt) the device's.
void Trainer::Impl::choose_precision(const Checkpoint& ckpt, const std::string& ckpt_path) {
  if (req.precision) {
    precision = parse_precision(*req.precision);
    if (!precision) throw UserError("--precision must be fp32, tf32 or bf16, not '" + *req.precision + "'");
  } else if (resumed) {
    precision = models::parse_run_config(ckpt.config_text, ckpt_path).train.precision;
  } else {
    precision = config.train.precision;
  }
}

// The device, before the data: a missing GPU or an impossible precision is reported before
// anything slow. Returns the line that describes the device and precision.
std::string Trainer::Impl::open_device() {
  std::string notice;
  backend = make_backend(req.device ? *req.device : "", &notice, precision, dist.cuda_device());
  device_description = backend->description();
  dist.check_backend(*backend);
  const Precision p = precision.value_or(backend->default_precision());
  if (const std::string why = backend->precision_unsupported(p); !why.empty()) {
    throw UserError(std::string("precision ") + precision_name(p) + ": " + why);
  }
  notice += "; precision " + std::string(precision_name(p));
  return notice;
}

// The model, and whether the checkpoint belongs to it (before the data: loading the full set
// takes a while, a wrong checkpoint should not).
void Trainer::Impl::build_model(const Checkpoint& ckpt, const std::string& ckpt_path) {
  target_epochs = req.epochs ? *req.epochs : config.train.epochs;
  graph = models::build_graph(config);
  arch_hash = models::architecture_hash(*graph);
  model_summary = models::keras_summary(*graph, config.model.name);
  if (!resumed) return;
  check_checkpoint_matches(ckpt, ckpt_path, *graph, arch_hash, config.model.name, req.config_path);
  if (ckpt.position.finished) {
    const int es_epoch = ckpt.callbacks.early_stopping.stopped_epoch;
    const std::string by = es_epoch > 0 ? "EarlyStopping at epoch " + std::to_string(es_epoch)
                                        : "TerminateOnCollapse at epoch " + std::to_string(ckpt.position.epoch);
    throw UserError("--resume " + *req.resume + ": that run stopped early (" + by + "); there is nothing to resume");
  }
  if (ckpt.position.epoch >= target_epochs && ckpt.position.batch_in_epoch == 0) {
    throw UserError("--resume " + *req.resume + ": the run has already completed " + std::to_string(ckpt.position.epoch) +
                    " epochs; pass --epochs N with N > " + std::to_string(ckpt.position.epoch) + " to train further");
  }
  if (ckpt.position.epoch >= target_epochs) {
    throw UserError("--resume " + *req.resume + ": the checkpoint is inside epoch " + std::to_string(ckpt.position.epoch + 1) +
                    " but --epochs/epochs is " + std::to_string(target_epochs));
  }
  if (int(ckpt.optimizer_kind) != int(config.train.optimizer.kind)) {
    throw UserError(ckpt_path + ": the checkpoint was trained with another optimizer than " + req.config_path + " names");
  }
}

// The data set (--data, the config's path, or the bundled sample) with its splits checked.
void Trainer::Impl::load_data() {
  data_choice = choose_data(config.data.path, req.data_path, req.config_path);
  loaders::DatasetOptions options = dataset_options(config, data_choice.path);
  data = loaders::load_dataset(data_choice.path, options);
  data.require_labels("training");
  if (data.num_classes() != config.model.classes) {
    throw UserError(data_choice.path + ": the data has " + std::to_string(data.num_classes()) + " classes after drop_classes but " +
                    req.config_path + " [model] classes = " + std::to_string(config.model.classes));
  }
  class_names = data.class_names;
  if (data.train_rows.empty()) {
    throw UserError(data_choice.path + ": no training rows (train_usage in " + req.config_path + ")");
  }
  if (data.validation_rows.empty()) {
    throw UserError(data_choice.path + ": no validation rows (validation_usage in " + req.config_path +
                    "); training monitors validation metrics");
  }
  if (data_choice.is_sample) {
    std::string banner = sample_banner(data_choice, data.size());
    if (!banner.empty() && banner.back() == '\n') banner.pop_back();
    say(banner);
  }
}

// The effective recipe: batch size (capped for the bundled sample) and seed.
void Trainer::Impl::choose_recipe() {
  batch_size = req.batch_size ? *req.batch_size : config.train.batch_size;
  const int64_t train_rows = int64_t(data.train_rows.size());
  if (data_choice.is_sample && !req.batch_size && batch_size > train_rows / 2) {
    const int capped = int(std::min<int64_t>(32, std::max<int64_t>(1, train_rows / 2)));
    say("The sample has " + std::to_string(train_rows) + " training images: batch size " + std::to_string(batch_size) +
        " -> " + std::to_string(capped) + ".");
    batch_size = capped;
  }
  if (config.train.drop_last && train_rows < batch_size) {
    throw UserError(data_choice.path + ": " + std::to_string(train_rows) + " training images are fewer than one batch of " +
                    std::to_string(batch_size) + " (drop_last = true); lower --batch-size");
  }
  seed = req.seed ? uint64_t(*req.seed) : config.train.seed;
  local_batch = dist.local_batch(batch_size, config.train.drop_last, req.config_path);
  val_rows = dist.rows_of_rank(data.validation_rows, "validation images in " + data_choice.path);
}

// The resolved config: the user's text with the values this run really uses.
void Trainer::Impl::resolve_config() {
  std::vector<ConfigOverride> overrides;
  if (req.epochs) overrides.push_back({"train", "epochs", std::to_string(target_epochs)});
  if (batch_size != config.train.batch_size) overrides.push_back({"train", "batch_size", std::to_string(batch_size)});
  if (req.seed) overrides.push_back({"train", "seed", std::to_string(seed)});
  if (data_choice.path != config.data.path) overrides.push_back({"data", "path", toml_string(data_choice.path)});
  // Written when it differs from the config's, so the run directory and its checkpoints carry it
  // and a resume keeps it.
  if (precision && precision != config.train.precision) {
    overrides.push_back({"train", "precision", toml_string(precision_name(*precision))});
  }
  resolved_text = apply_config_overrides(config.source_text, req.config_path, overrides);
  if (!overrides.empty()) {
    std::string note = "# Resolved by fer_gpu train from " + req.config_path + " with";
    for (const auto& o : overrides) note += " " + o.table + "." + o.key + " = " + o.literal + ";";
    note.back() = '\n';
    resolved_text = note + resolved_text;
    config = models::parse_run_config(resolved_text, req.config_path);
    if (config.train.epochs != target_epochs || config.train.batch_size != batch_size || config.train.seed != seed) {
      throw std::logic_error("resolved config does not carry the command-line values");
    }
  }
}

// The graph's memory for every batch size the run sees (full, and the training and validation
// tails), and the optimizer's.
void Trainer::Impl::plan_graph() {
  const int64_t train_rows = int64_t(data.train_rows.size());
  std::vector<int> other_batches;
  const int val_tail = int(int64_t(val_rows.size()) % local_batch);
  if (val_tail) other_batches.push_back(val_tail);
  const int train_tail = int(train_rows % batch_size);
  if (!config.train.drop_last && train_tail) other_batches.push_back(train_tail);
  const int max_batch = int(std::min<int64_t>(local_batch, std::max<int64_t>(train_rows, int64_t(val_rows.size()))));
  graph->plan(backend, std::max(1, max_batch), other_batches, precision);
  optimizer = std::make_unique<Optimizer>(backend, graph->param_layout(), config.train.optimizer);
}

// Where the images live during training: the backend's memory or the batch stream. Asked after
// the graph and the optimizer have their memory. Both splits are held (training and validation),
// once.
void Trainer::Impl::place_data(loaders::ResidentMode resident_mode) {
  if (!req.resident && !loaders::parse_resident_mode(config.data.resident, &resident_mode)) {
    throw std::logic_error("run_config accepted [data] resident = \"" + config.data.resident + "\"");
  }
  std::vector<int64_t> held;
  held.reserve(data.train_rows.size() + data.validation_rows.size());
  std::set_union(data.train_rows.begin(), data.train_rows.end(), data.validation_rows.begin(),
                 data.validation_rows.end(), std::back_inserter(held));
  const loaders::ResidentChoice choice =
      loaders::choose_resident(resident_mode, *backend, loaders::resident_bytes(data, int64_t(held.size())));
  data_placement = choice.reason;
  if (choice.resident) {
    resident = std::make_shared<loaders::ResidentData>(data, std::move(held), backend);
    loaders::BatchStreamOptions vo;
    vo.batch_size = graph->max_batch();
    vo.shuffle = false;
    vo.drop_last = false;
    resident_val = std::make_unique<loaders::ResidentBatches>(*resident, val_rows, vo);
  }
  say("Data: " + data_placement + ".");
}

void Trainer::Impl::make_callbacks() {
  best = std::make_unique<BestCheckpoint>(config.checkpoint);
  reduce_lr = std::make_unique<ReduceLROnPlateau>(config.reduce_lr);
  early_stopping = std::make_unique<EarlyStopping>(config.early_stopping);
  collapse = std::make_unique<CollapseWatch>(config.terminate_on_collapse, class_names, req.config_path);
}

// The position to start from, and the weights: the checkpoint's (parameters, state, optimizer,
// callbacks, history; a warning when the settings changed) or fresh ones from the seed.
void Trainer::Impl::restore_or_initialize(Checkpoint& ckpt, const std::string& ckpt_path) {
  pos = TrainPosition{};
  pos.seed = seed;
  pos.target_epochs = target_epochs;
  pos.batch_size = batch_size;
  pos.train_rows = int64_t(data.train_rows.size());
  pos.val_rows = int64_t(data.validation_rows.size());
  if (!resumed) {
    graph->initialize(seed);
    return;
  }
  graph->upload_params(ckpt.params);
  graph->upload_state(ckpt.state);
  graph->set_seed(seed);
  optimizer->upload_state(ckpt.optimizer_state, ckpt.optimizer_steps);
  optimizer->set_learning_rate(ckpt.learning_rate);
  best->state = ckpt.callbacks.best;
  reduce_lr->state = ckpt.callbacks.reduce_lr;
  early_stopping->state = std::move(ckpt.callbacks.early_stopping);
  history = std::move(ckpt.history);
  predictions = std::move(ckpt.predictions);
  const TrainPosition& p = ckpt.position;
  pos.epoch = p.epoch;
  pos.batch_in_epoch = p.batch_in_epoch;
  pos.global_step = p.global_step;
  pos.partial_loss_sum = p.partial_loss_sum;
  pos.partial_correct = p.partial_correct;
  pos.partial_samples = p.partial_samples;
  pos.partial_train_seconds = p.partial_train_seconds;
  std::vector<std::string> differs;
  if (p.seed != seed) differs.push_back("seed " + std::to_string(p.seed) + " -> " + std::to_string(seed));
  if (p.batch_size != batch_size) differs.push_back("batch size " + std::to_string(p.batch_size) + " -> " + std::to_string(batch_size));
  if (p.train_rows != pos.train_rows || p.val_rows != pos.val_rows) {
    differs.push_back("data rows " + std::to_string(p.train_rows) + "+" + std::to_string(p.val_rows) + " -> " +
                      std::to_string(pos.train_rows) + "+" + std::to_string(pos.val_rows));
  }
  if (!differs.empty()) {
    std::string w = "warning: resuming with different settings (";
    for (size_t i = 0; i < differs.size(); ++i) w += (i ? ", " : "") + differs[i];
    say(w + "): the run will not repeat a straight run exactly");
  }
  if (p.batch_size != batch_size && p.batch_in_epoch > 0) {
    throw UserError(ckpt_path + ": the checkpoint is inside an epoch trained with batch size " + std::to_string(p.batch_size) +
                    "; resume it with the same batch size");
  }
}

// The run directory: the last check, then the first write (config.toml). A resumed run keeps its
// directory (and loses the temporaries of a killed writer); a new one gets --out or
// runs/<config>-<timestamp>, removed again if writing into it fails.
void Trainer::Impl::open_run_dir(const std::string& ckpt_path) {
  if (resumed && !req.out_dir) {
    run_dir = fs::path(ckpt_path).parent_path().string();
    if (run_dir.empty()) run_dir = ".";
    if (::access(run_dir.c_str(), W_OK) != 0) throw UserError(run_dir + ": the run directory is not writable");
    // Temporaries of a process killed while writing (kill -9, power loss) never got their final
    // name; remove them.
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(run_dir, ec)) {
      const std::string name = e.path().filename().string();
      for (const char* ours : {"last.ckpt", "best.ckpt", "history.csv", "history.json", "report.html", "config.toml"}) {
        if (name.rfind(std::string(ours) + ".tmp.", 0) == 0) fs::remove(e.path(), ec);
      }
    }
  } else {
    if (req.out_dir) {
      run_dir = *req.out_dir;
      check_new_run_dir(run_dir, "--out");
    } else {
      const std::string stem = fs::path(req.config_path).stem().string();
      const std::string base = "runs/" + stem + "-" + local_timestamp(true);
      run_dir = base;
      for (int k = 2; path_exists(run_dir); ++k) run_dir = base + "-" + std::to_string(k);
    }
    std::error_code ec;
    const bool existed = fs::exists(run_dir, ec);
    fs::create_directories(run_dir, ec);
    if (ec) throw UserError(run_dir + ": cannot create the run directory: " + ec.message());
    created_run_dir = !existed;
  }
  try {
    write_file_atomic((fs::path(run_dir) / "config.toml").string(), resolved_text);
  } catch (...) {
    if (created_run_dir) {
      std::error_code ec;
      fs::remove_all(run_dir, ec);
    }
    throw;
  }
}

std::string Trainer::Impl::augmentation_text() const {
  const models::AugmentSpec& a = config.augment;
  if (!a.enabled()) return "none";
  char buf[160];
  std::snprintf(buf, sizeof buf, "shear_range %g deg, zoom_range %g, horizontal_flip %s", a.shear_range, a.zoom_range,
                a.horizontal_flip ? "on" : "off");
  return buf;
}

std::string Trainer::Impl::optimizer_text() const {
  const OptimizerConfig& o = config.train.optimizer;
  char buf[160];
  if (o.kind == OptimizerConfig::Kind::adam) {
    std::snprintf(buf, sizeof buf, "Adam (learning rate %g, now %g; beta_1 %g, beta_2 %g, epsilon %g)", o.learning_rate,
                  optimizer ? optimizer->learning_rate() : o.learning_rate, o.beta1, o.beta2, o.epsilon);
  } else {
    std::snprintf(buf, sizeof buf, "SGD (learning rate %g, now %g; momentum %g%s)", o.learning_rate,
                  optimizer ? optimizer->learning_rate() : o.learning_rate, o.momentum, o.nesterov ? ", nesterov" : "");
  }
  return buf;
}

// Marks the epoch's collapse signs in `rec` (before it joins the history) and says what to warn
// about and whether [callbacks.terminate_on_collapse] stops the run. Host-only: the validation
// predictions are already on the host, the mean loss was read once for the epoch.
CollapseReport Trainer::Impl::watch_collapse(EpochRecord& rec, const std::vector<int32_t>& val_predicted) const {
  collapse->mark(rec, val_predicted);
  return collapse->check(rec, history.epochs);
}

Checkpoint Trainer::Impl::snapshot(bool with_optimizer) const {
  Checkpoint c;
  c.model_name = config.model.name;
  c.arch_hash = arch_hash;
  c.class_names = class_names;
  c.config_text = resolved_text;
  c.config_origin = req.config_path;
  c.tensors = tensor_table(*graph);
  c.trainable_count = graph->trainable_count();
  c.state_count = graph->non_trainable_count();
  c.params = graph->download_params();
  c.state = graph->download_state();
  const OptimizerConfig& o = optimizer->config();
  c.optimizer_kind = int32_t(o.kind);
  c.learning_rate = optimizer->learning_rate();
  c.beta1 = o.beta1;
  c.beta2 = o.beta2;
  c.epsilon = o.epsilon;
  c.momentum = o.momentum;
  c.nesterov = o.nesterov ? 1 : 0;
  c.optimizer_steps = optimizer->steps_taken();
  if (with_optimizer) c.optimizer_state = optimizer->download_state();
  else c.optimizer_state.assign(size_t(optimizer->state_floats()), 0.0f);
  c.position = pos;
  c.callbacks.best = best->state;
  c.callbacks.reduce_lr = reduce_lr->state;
  c.callbacks.early_stopping = early_stopping->state;
  c.history = history;
  c.predictions = predictions;
  c.device = device_description;
  c.created = local_timestamp(false);
  return c;
}

void Trainer::Impl::write_files(const std::string& status) {
  if (!dist.root()) return;
  const fs::path dir(run_dir);
  write_file_atomic((dir / "history.csv").string(), history.to_csv(), false);
  write_file_atomic((dir / "history.json").string(), history.to_json(), false);
  ReportInput in;
  in.model_name = config.model.name;
  in.config_path = req.config_path;
  in.config_text = resolved_text;
  in.run_dir = run_dir;
  in.status = status;
  in.created = local_timestamp(false);
  in.device = device_description;
  in.data_path = data_choice.path;
  in.sample_data = data_choice.is_sample;
  in.train_rows = int64_t(data.train_rows.size());
  in.val_rows = int64_t(data.validation_rows.size());
  in.trainable_params = graph->trainable_count();
  in.non_trainable_params = graph->non_trainable_count();
  in.batch_size = batch_size;
  in.target_epochs = target_epochs;
  in.seed = seed;
  in.optimizer = optimizer_text();
  in.augmentation = augmentation_text();
  in.monitor = best->monitor().quantity + " (" + best->monitor().mode() + ")";
  in.best = best->state;
  in.model_summary = model_summary;
  in.total_seconds = seconds_since(started);
  in.history = &history;
  in.class_names = class_names;
  in.predictions = &predictions;
  in.data = &data;
  write_file_atomic((dir / "report.html").string(), render_report(in), false);
}

// An epoch: its steps, then (unless interrupted or diverged) validation, the position moved to
// the next epoch, the callbacks, and the files.
TrainResult Trainer::run(const std::atomic<bool>* stop) {
  Impl& s = *impl_;
  TrainResult result;
  result.run_dir = s.run_dir;
  if (s.dist.any(stop && stop->load())) return s.stop_before_start(result);
  s.announce();
  Impl::RunLoop loop = s.start_loop(stop);
  for (int64_t epoch = s.pos.epoch; epoch < s.target_epochs; ++epoch) {
    Impl::EpochSums sums = s.start_epoch(loop, epoch);
    const Impl::StepsEnd end = s.train_steps(loop, epoch, sums, result);
    if (end == Impl::StepsEnd::diverged) return result;
    if (end == Impl::StepsEnd::interrupted) return s.save_interrupted(loop, epoch, sums, result);
    CollapseReport collapsed;
    const EpochRecord rec = s.validate(loop, epoch, sums, &collapsed);
    s.advance_position(epoch);
    const std::string notes = s.run_callbacks(loop, rec, collapsed);
    const bool done_all = s.save_epoch(loop, epoch);
    s.progress.end_epoch(rec, notes);
    for (const std::string& warning : collapsed.warnings) s.say(warning);
    if (s.pos.finished) {
      result.status = TrainStatus::early_stopped;
      break;
    }
    if (s.dist.any(loop.stop_requested()) && !done_all) return s.interrupted_after_epoch(loop, epoch, result);
  }
  s.finish(result);
  return result;
}

// Interrupted before anything happened: a fresh run leaves nothing behind.
TrainResult Trainer::Impl::stop_before_start(TrainResult result) {
  if (created_run_dir && history.epochs.empty()) {  // rank 0's alone
    std::error_code ec;
    fs::remove_all(run_dir, ec);
  }
  result.status = TrainStatus::interrupted;
  result.message = "Interrupted before the first step; nothing was trained.";
  say(result.message);
  return result;
}

void Trainer::Impl::announce() {
  say("Training " + config.model.name + " (" + models::with_thousands(graph->trainable_count()) +
      " trainable parameters) on " + std::to_string(data.train_rows.size()) + " images, validating on " +
      std::to_string(data.validation_rows.size()) + "; batch " + std::to_string(batch_size) + dist.describe(batch_size) + ", " +
      std::to_string(target_epochs) + " epochs. Run directory: " + run_dir);
  if (resumed) {
    say("Resuming from " + resumed_from + " at epoch " + std::to_string(pos.epoch + 1) +
        (pos.batch_in_epoch ? ", step " + std::to_string(pos.batch_in_epoch + 1) : std::string()) + ".");
  }
}

// The loop's paths, its metric-read interval and its training feed.
Trainer::Impl::RunLoop Trainer::Impl::start_loop(const std::atomic<bool>* stop) {
  RunLoop loop;
  loop.stop = stop;
  loop.interrupt_after_steps = req.interrupt_after_steps;
  const fs::path dir(run_dir);
  loop.last_path = (dir / "last.ckpt").string();
  loop.best_path = (dir / "best.ckpt").string();
  // On a GPU, reading metrics synchronises the host with the device: once per epoch (and when
  // stopping) keeps every step free of host waits, as the design asks.
  loop.metrics_every = req.metrics_every > 0                   ? req.metrics_every
                       : backend->kind() == DeviceKind::cpu ? 1
                                                            : std::numeric_limits<int>::max();
  loaders::BatchStreamOptions so;
  so.batch_size = batch_size;
  so.shuffle = true;
  so.drop_last = config.train.drop_last;
  so.augment = kernels::AugmentConfig{config.augment.shear_range, config.augment.zoom_range,
                                      config.augment.horizontal_flip};
  so.seed = seed;
  so.first_epoch = pos.epoch;
  dist.shard(so);
  // One of the two feeds: batches gathered from the resident data, or the stream's ring.
  if (resident) {
    loop.resident_train = std::make_unique<loaders::ResidentBatches>(*resident, data.train_rows, so);
  } else {
    loop.stream = std::make_unique<loaders::BatchStream>(data, data.train_rows, so, backend.get());
  }
  loop.steps = loop.resident_train ? loop.resident_train->batches_per_epoch() : loop.stream->batches_per_epoch();
  return loop;
}

// Puts batch `index` of `epoch` into the graph's input (and labels); 0 at the end of the epoch.
int Trainer::Impl::next_batch(RunLoop& loop, int64_t epoch, int64_t index) {
  if (loop.resident_train) return index < loop.steps ? loop.resident_train->load(*graph, epoch, index) : 0;
  const loaders::Batch* b = loop.stream->next();
  if (!b) return 0;
  const int n = b->size;
  const int h = graph->input_shape().dims[0], w = graph->input_shape().dims[1];
  backend->copy(graph->labels(), b->labels, size_t(n) * sizeof(int32_t));
  backend->images_to_float(n, h, w, b->pixels, b->draws, graph->input());
  loop.stream->release();
  return n;
}

// Position inside the epoch: zero, or when resuming an interrupted epoch the checkpoint's sums
// (and the stream moved past the batches already trained).
Trainer::Impl::EpochSums Trainer::Impl::start_epoch(RunLoop& loop, int64_t epoch) {
  EpochSums sums;
  if (epoch == pos.epoch && pos.batch_in_epoch > 0) {
    sums.done = pos.batch_in_epoch;
    sums.loss_sum = pos.partial_loss_sum;
    sums.correct = pos.partial_correct;
    sums.samples = pos.partial_samples;
    sums.prior_seconds = pos.partial_train_seconds;
    // The stream delivers batches in order: skip those already trained. Resident batches are
    // gathered by index, there is nothing to skip.
    for (int64_t i = 0; loop.stream && i < sums.done; ++i) {
      if (!loop.stream->next()) throw std::logic_error("the batch stream ended before the resume position");
      loop.stream->release();
    }
  }
  return sums;
}

// The epoch's training steps, from sums.done to the end of the epoch or a stop request; metrics
// are read every loop.metrics_every steps. A non-finite loss writes the run's files (not the
// diverged weights), fills `result` and returns diverged.
Trainer::Impl::StepsEnd Trainer::Impl::train_steps(RunLoop& loop, int64_t epoch, EpochSums& sums, TrainResult& result) {
  const int shown_epoch = int(epoch + 1);
  const int64_t steps = loop.steps;
  if (loop.resident_train) loop.resident_train->take_host_seconds();  // this epoch's count starts here
  progress.begin_epoch(shown_epoch, target_epochs, steps, sums.done);
  const Clock::time_point t_train = Clock::now();
  int64_t unread_from = sums.done + 1;  // first step whose metrics are not read yet
  bool interrupted = false;
  for (;;) {
    NvtxRange step_range("step");
    const int n = next_batch(loop, epoch, sums.done);
    if (n == 0) break;
    graph->forward(n, true, pos.global_step);
    graph->loss(n, true);
    graph->backward(n, pos.global_step);
    dist.average_gradients(*graph);
    optimizer->step(graph->params(), graph->grads());
    ++pos.global_step;
    ++sums.done;
    ++loop.steps_this_process;
    const bool want_stop = dist.any(loop.stop_requested());
    if (sums.done % loop.metrics_every == 0 || sums.done == steps || want_stop) {
      const BatchMetrics m = dist.sum(graph->take_metrics());
      if (!std::isfinite(m.loss_sum)) {
        progress.abandon();
        const std::string where = unread_from == sums.done
                                      ? "step " + std::to_string(sums.done)
                                      : "steps " + std::to_string(unread_from) + "-" + std::to_string(sums.done);
        result.status = TrainStatus::diverged;
        result.epochs_done = int(history.epochs.size());
        result.message = "the training loss became " + std::string(std::isnan(m.loss_sum) ? "NaN" : "infinite") +
                         " in epoch " + std::to_string(shown_epoch) + " at " + where + " of " + std::to_string(steps) +
                         " (learning rate " + fmt4(optimizer->learning_rate()) + "); " +
                         (last_good.empty() ? std::string("no checkpoint was written before it")
                                            : "the last good checkpoint is " + last_good + "") +
                         ". Lower the learning rate in " + req.config_path + " and train again.";
        write_files("diverged in epoch " + std::to_string(shown_epoch));
        return StepsEnd::diverged;
      }
      sums.loss_sum += m.loss_sum;
      sums.correct += m.correct;
      sums.samples += m.samples;
      unread_from = sums.done + 1;
    }
    progress.step(sums.done, sums.samples ? sums.loss_sum / double(sums.samples) : NAN,
                  sums.samples ? sums.correct / double(sums.samples) : NAN);
    if (want_stop && sums.done < steps) {
      interrupted = true;
      break;
    }
  }
  sums.train_seconds = sums.prior_seconds + seconds_since(t_train);
  sums.loader_stall = loop.resident_train ? loop.resident_train->take_host_seconds()
                                          : loop.stream->last_epoch_stats().stall_seconds;
  return interrupted ? StepsEnd::interrupted : StepsEnd::epoch_done;
}

// Interrupted inside an epoch: last.ckpt at the exact step reached, and the files.
TrainResult Trainer::Impl::save_interrupted(const RunLoop& loop, int64_t epoch, const EpochSums& sums, TrainResult result) {
  const int shown_epoch = int(epoch + 1);
  progress.abandon();
  pos.epoch = epoch;
  pos.batch_in_epoch = sums.done;
  pos.partial_loss_sum = sums.loss_sum;
  pos.partial_correct = sums.correct;
  pos.partial_samples = sums.samples;
  pos.partial_train_seconds = sums.train_seconds;
  save(loop.last_path);
  write_files("interrupted in epoch " + std::to_string(shown_epoch) + " after step " + std::to_string(sums.done));
  result.status = TrainStatus::interrupted;
  result.epochs_done = int(history.epochs.size());
  result.message = "Interrupted in epoch " + std::to_string(shown_epoch) + "/" + std::to_string(target_epochs) +
                   " after step " + std::to_string(sums.done) + "/" + std::to_string(loop.steps) + "; saved " +
                   loop.last_path + ".\nResume with: " + resume_command();
  say(result.message);
  return result;
}

// The validation pass and the epoch's record, marked for collapse (*collapsed: what to warn
// about, whether to stop) and added to the history; the validation predictions become the
// report's.
EpochRecord Trainer::Impl::validate(const RunLoop& loop, int64_t epoch, const EpochSums& sums, CollapseReport* collapsed) {
  const int shown_epoch = int(epoch + 1);
  progress.validating();
  const Clock::time_point t_val = Clock::now();
  dist.share_state(*graph);
  EvalOutput ev = dist.gather(evaluate_rows(*graph, data, val_rows, true, false, resident_val.get()));
  const double val_seconds = seconds_since(t_val);

  EpochRecord rec;
  rec.epoch = shown_epoch;
  rec.loss = sums.samples ? sums.loss_sum / double(sums.samples) : 0.0;
  rec.accuracy = sums.samples ? sums.correct / double(sums.samples) : 0.0;
  rec.val_loss = ev.metrics.mean_loss();
  rec.val_accuracy = ev.metrics.accuracy();
  rec.lr = optimizer->learning_rate();
  rec.steps = loop.steps;
  rec.train_images = sums.samples;
  rec.train_seconds = sums.train_seconds;
  rec.val_seconds = val_seconds;
  rec.loader_stall_seconds = sums.loader_stall;
  rec.seconds = sums.train_seconds + val_seconds;
  *collapsed = watch_collapse(rec, ev.predictions.predicted);
  history.epochs.push_back(rec);
  predictions = std::move(ev.predictions);
  predictions.epoch = shown_epoch;
  return rec;
}

void Trainer::Impl::advance_position(int64_t epoch) {
  pos.epoch = epoch + 1;
  pos.batch_in_epoch = 0;
  pos.partial_loss_sum = pos.partial_correct = 0;
  pos.partial_samples = 0;
  pos.partial_train_seconds = 0;
}

// The callbacks in Keras' order (best checkpoint, ReduceLROnPlateau, EarlyStopping, then
// TerminateOnCollapse); sets pos.finished when one stops the run. Returns the epoch line's notes.
std::string Trainer::Impl::run_callbacks(const RunLoop& loop, const EpochRecord& rec, const CollapseReport& collapsed) {
  std::string notes;
  auto note = [&](const std::string& t) {
    if (!notes.empty()) notes += '\n';
    notes += "  ";
    notes += t;
  };
  if (best->on_epoch_end(rec)) {
    save(loop.best_path);
    note(best->monitor().quantity + " improved to " + fmt4(best->state.best) + ": saved best.ckpt" +
         CollapseWatch::collapsed_note(rec));
  }
  std::string msg;
  const float lr = optimizer->learning_rate();
  const float next_lr = reduce_lr->on_epoch_end(rec, lr, &msg);
  if (next_lr != lr) {
    optimizer->set_learning_rate(next_lr);
    note(msg);
  }
  bool restore = false;
  msg.clear();
  const bool stop_early = early_stopping->on_epoch_end(
      rec,
      [&](std::vector<float>& params, std::vector<float>& state) {
        params = graph->download_params();
        state = graph->download_state();
      },
      &restore, &msg);
  if (!msg.empty()) note(msg);
  if (restore) {
    graph->upload_params(early_stopping->state.best_params);
    graph->upload_state(early_stopping->state.best_state);
    // The report's confusion matrix describes the model the run ends with.
    EvalOutput again = dist.gather(evaluate_rows(*graph, data, val_rows, true, false, resident_val.get()));
    predictions = std::move(again.predictions);
    predictions.epoch = early_stopping->state.best_epoch;
  }
  if (collapsed.stop && !stop_early) note(collapsed.stop_message);
  const bool stop_collapsed = collapsed.stop && !stop_early;
  pos.finished = stop_early || stop_collapsed;
  return notes;
}

// last.ckpt and the run's files at the end of an epoch; returns whether the run is over
// (stopped early or all epochs done).
bool Trainer::Impl::save_epoch(const RunLoop& loop, int64_t epoch) {
  const int shown_epoch = int(epoch + 1);
  save(loop.last_path);
  last_good = loop.last_path + " (end of epoch " + std::to_string(shown_epoch) + ")";
  const bool done_all = pos.finished || epoch + 1 == target_epochs;
  write_files(pos.finished ? "stopped early after epoch " + std::to_string(shown_epoch)
              : done_all   ? "completed " + std::to_string(shown_epoch) + " epochs"
                           : "in progress: epoch " + std::to_string(shown_epoch) + " of " + std::to_string(target_epochs));
  return done_all;
}

// Interrupted at an epoch's end: last.ckpt is already written.
TrainResult Trainer::Impl::interrupted_after_epoch(const RunLoop& loop, int64_t epoch, TrainResult result) {
  result.status = TrainStatus::interrupted;
  result.epochs_done = int(history.epochs.size());
  result.message = "Interrupted after epoch " + std::to_string(epoch + 1) + "/" + std::to_string(target_epochs) +
                   "; saved " + loop.last_path + ".\nResume with: " + resume_command();
  say(result.message);
  return result;
}

void Trainer::Impl::finish(TrainResult& result) {
  result.epochs_done = int(history.epochs.size());
  std::string summary = (result.status == TrainStatus::early_stopped ? "Stopped early after " : "Finished ") +
                        std::to_string(result.epochs_done) + " epochs in " + format_duration(seconds_since(started)) + ".";
  if (best->state.best_epoch > 0) {
    summary += " Best " + best->monitor().quantity + " " + fmt4(best->state.best) + " at epoch " +
               std::to_string(best->state.best_epoch) + " (best.ckpt).";
  }
  say(summary + "\nRun directory: " + run_dir + " (report.html, history.csv, best.ckpt, last.ckpt)");
}

}  // namespace fer::training
