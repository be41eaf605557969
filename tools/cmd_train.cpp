// fer_gpu train CONFIG [--data PATH] [--device cuda|cpu] [--epochs N] [--batch-size B] [--seed S]
//                      [--out DIR] [--resume DIR] [--resident auto|on|off] [--precision fp32|tf32|bf16]
//                      [--distributed auto|off] [--sync-batchnorm]
// Trains a model config; command-line values override the config's. Ctrl-C finishes the current
// step, writes last.ckpt and exits with status 130; a second Ctrl-C quits at once (checkpoints are
// written atomically, so that never leaves a torn file). A diverged run (NaN/Inf loss) exits 1.
// Started by mpirun/srun as N processes, it trains one model data-parallel (README "Data
// parallel"); an error on any rank stops every rank: before step 0 with the failing rank's message
// alone, later through MPI_Abort after that rank's message.
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "engine/distributed/communicator.h"
#include "engine/error.h"
#include "engine/training/trainer.h"
#include "tools/commands.h"

namespace {

std::atomic<bool> g_stop{false};
// Ranks other than 0 of a data-parallel job say nothing: the launcher delivers Ctrl-C to every
// rank, rank 0 speaks for all.
volatile std::sig_atomic_t g_quiet = 0;

extern "C" void on_interrupt(int) {
  g_stop.store(true);
  if (g_quiet) return;
  static const char msg[] =
      "\nInterrupt: finishing the current step and saving last.ckpt (press Ctrl-C again to quit at once)\n";
  const ssize_t ignored = ::write(STDERR_FILENO, msg, sizeof msg - 1);
  (void)ignored;
}

// Installs the handler for the lifetime of the object (SA_RESETHAND: the second signal gets the
// default action).
class InterruptGuard {
 public:
  InterruptGuard() {
    struct sigaction sa {};
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND;
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
  }
  ~InterruptGuard() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }

 private:
  struct sigaction old_int_ {}, old_term_ {};
};

struct TrainArgs {
  std::string config;
  std::string data, device, out, resume, resident, precision, distributed = "auto";
  int epochs = 0, batch_size = 0;
  bool sync_batchnorm = false;
  int64_t seed = -1;
};

void add_train(CLI::App& app) {
  auto* cmd = app.add_subcommand("train", "Train a model config (Keras model.fit-style output, checkpoints, report)");
  auto a = std::make_shared<TrainArgs>();
  cmd->add_option("config", a->config, "Model config (TOML), e.g. configs/model5.toml")->required();
  auto* data = cmd->add_option("--data", a->data, "FER2013 CSV or image-folder root (default: the config's [data] path)");
  auto* device = cmd->add_option("--device", a->device, "cuda or cpu (default: cuda when a GPU is present)")
                     ->check(CLI::IsMember({"cuda", "cpu"}));
  auto* epochs = cmd->add_option("--epochs", a->epochs, "Total epochs of the run (overrides [train] epochs)");
  auto* batch = cmd->add_option("--batch-size", a->batch_size, "Batch size (overrides [train] batch_size)");
  auto* seed = cmd->add_option("--seed", a->seed, "Seed of initialisation, shuffling, augmentation and dropout");
  auto* out = cmd->add_option("--out", a->out, "Run directory (default runs/<config>-<timestamp>)");
  auto* resume = cmd->add_option("--resume", a->resume, "Continue the run in DIR (or from a .ckpt file)");
  auto* resident = cmd->add_option("--resident", a->resident,
                                   "Hold the images in device memory and gather batches there: on, off, or auto "
                                   "(CUDA when they fit; overrides [data] resident)")
                       ->check(CLI::IsMember({"auto", "on", "off"}));
  auto* precision = cmd->add_option("--precision", a->precision,
                                    "Numeric mode of convolutions and dense layers: fp32, tf32 (CUDA; its default) or "
                                    "bf16 (bf16 operands, FP32 accumulation and master weights). Default: a resumed "
                                    "run's, else [train] precision, else the device's")
                        ->check(CLI::IsMember({"fp32", "tf32", "bf16"}));
  cmd->add_option("--distributed", a->distributed,
                  "auto: when mpirun or srun started several processes, train one model data-parallel on "
                  "them (MPI for CPU ranks, NCCL for GPU ranks); off: every process trains alone")
      ->check(CLI::IsMember({"auto", "off"}));
  cmd->add_flag("--sync-batchnorm", a->sync_batchnorm,
               "With several ranks: BatchNormalization statistics over the global batch (as one process "
               "computes them) instead of each rank's share (CPU ranks)");
  cmd->callback([=] {
    fer::training::TrainRequest req;
    req.config_path = a->config;
    if (*data) req.data_path = a->data;
    if (*device) req.device = a->device;
    if (*epochs) req.epochs = a->epochs;
    if (*batch) req.batch_size = a->batch_size;
    if (*seed) req.seed = a->seed;
    if (*out) req.out_dir = a->out;
    if (*resume) req.resume = a->resume;
    if (*resident) req.resident = a->resident;
    if (*precision) req.precision = a->precision;
    req.communicator = fer::distributed::connect(a->distributed);
    req.sync_batchnorm = a->sync_batchnorm;
    const std::shared_ptr<fer::distributed::Communicator> comm = req.communicator;
    if (comm && !comm->root()) g_quiet = 1;
    std::unique_ptr<fer::training::Trainer> trainer;
    try {
      trainer = std::make_unique<fer::training::Trainer>(req);
    } catch (const fer::distributed::PeerFailed& e) {
      throw fer::tools::Exit{e.exit_status};  // that rank printed why
    }
    fer::training::TrainResult result;
    try {
      InterruptGuard guard;
      result = trainer->run(&g_stop);
    } catch (const std::exception& e) {
      if (!comm || comm->size() < 2) throw;
      // The other ranks wait in a collective for this one: stop them all.
      const bool user = dynamic_cast<const fer::UserError*>(&e) != nullptr;
      std::fprintf(stderr, "error on rank %d of %d: %s\nstopping every rank\n", comm->rank(), comm->size(), e.what());
      comm->abort(user ? 2 : 1);
    }
    switch (result.status) {
      case fer::training::TrainStatus::completed:
      case fer::training::TrainStatus::early_stopped:
        return;
      case fer::training::TrainStatus::interrupted:
        throw fer::tools::Exit{130};
      case fer::training::TrainStatus::diverged:
        if (!g_quiet) std::fprintf(stderr, "error: %s\n", result.message.c_str());
        throw fer::tools::Exit{1};
    }
  });
}

}  // namespace

FER_COMMAND(add_train);
