// Launcher environment -> Placement (engine/distributed/communicator.h). No MPI here: this file
// is built in every configuration, so a build without MPI can still say "you launched N ranks".
#include <cerrno>
#include <cstdlib>
#include <string>

#include "engine/distributed/communicator.h"
#include "engine/error.h"

namespace fer::distributed {

namespace {

// The variable's value as a non-negative int; -1 when unset. UserError when set but not a number.
int read_int(const std::function<const char*(const char*)>& getenv, const char* name) {
  const char* v = getenv(name);
  if (!v || !*v) return -1;
  char* end = nullptr;
  errno = 0;
  const long x = std::strtol(v, &end, 10);
  if (errno || *end || x < 0 || x > 1 << 24) {
    throw UserError(std::string("environment variable ") + name + "=" + v + ": expected a non-negative integer");
  }
  return int(x);
}

}  // namespace

Placement placement_from_environment(const std::function<const char*(const char*)>& getenv) {
  struct Scheme {
    const char* launcher;
    const char* rank;
    const char* size;
    const char* size_fallback;
    const char* local;
  };
  // Open MPI's own variables first: under srun + Open MPI both sets exist and agree.
  static const Scheme schemes[] = {
      {"Open MPI", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", nullptr, "OMPI_COMM_WORLD_LOCAL_RANK"},
      {"PMI", "PMI_RANK", "PMI_SIZE", nullptr, "MPI_LOCALRANKID"},
      // SLURM_NTASKS alone is also set inside an sbatch script that srun has not started yet;
      // SLURM_PROCID is only set for a task srun started.
      {"Slurm", "SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "SLURM_NTASKS", "SLURM_LOCALID"},
  };
  for (const Scheme& s : schemes) {
    const int rank = read_int(getenv, s.rank);
    int size = read_int(getenv, s.size);
    const char* size_name = s.size;
    if (size < 0 && s.size_fallback) {
      size = read_int(getenv, s.size_fallback);
      size_name = s.size_fallback;
    }
    if (rank < 0 || size < 0) continue;
    if (size < 1 || rank >= size) {
      throw UserError(std::string(s.rank) + "=" + std::to_string(rank) + " is not below " + size_name + "=" +
                      std::to_string(size));
    }
    Placement p;
    p.rank = rank;
    p.size = size;
    const int local = read_int(getenv, s.local);
    p.local_rank = local < 0 ? 0 : local;
    p.launcher = s.launcher;
    return p;
  }
  return Placement{};
}

Placement placement_from_environment() {
  return placement_from_environment([](const char* name) { return static_cast<const char*>(std::getenv(name)); });
}

bool mpi_built() {
#if FER_HAVE_MPI
  return true;
#else
  return false;
#endif
}

bool nccl_built() {
#if FER_HAVE_NCCL
  return true;
#else
  return false;
#endif
}

#if !FER_HAVE_MPI
std::shared_ptr<Communicator> connect(const std::string& mode) {
  if (mode == "off") return nullptr;
  if (mode != "auto") throw UserError("--distributed must be auto or off, not '" + mode + "'");
  const Placement p = placement_from_environment();
  if (p.size > 1) {
    throw UserError(p.launcher + " started " + std::to_string(p.size) +
                    " processes, but this fer_gpu was built without MPI: install libopenmpi-dev and rebuild "
                    "(cmake -DFER_MPI=ON), or pass --distributed off to train one model per process");
  }
  return nullptr;
}
#endif

#if !FER_HAVE_NCCL
std::shared_ptr<Communicator> make_nccl(std::shared_ptr<Communicator>, void*) {
  throw DeviceError("GPU ranks need NCCL, and this fer_gpu was built without it (CUDA toolkit with nccl.h, and MPI)");
}
#endif

}  // namespace fer::distributed
