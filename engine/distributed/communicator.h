#pragma once
// Data parallelism between processes: the communicator the trainer calls ("average this flat
// gradient buffer", "am I rank 0"), on existing libraries only (no hand-written collective):
//   * MPI (Open MPI) between CPU ranks, and for every host-side exchange (metrics, stop flags,
//     predictions, the NCCL unique id);
//   * NCCL between GPU ranks, one GPU per rank, for buffers in device memory, ordered on the
//     backend's compute stream. Rank 0 makes the ncclUniqueId and broadcasts it over MPI.
//
//   std::shared_ptr<Communicator> comm = connect("auto");   // null: a single process
//   if (comm) { comm->all_reduce_mean(grads, n); if (comm->root()) write_checkpoint(...); }
//
// Both are optional at build time (FER_MPI=AUTO|ON|OFF; NCCL when CUDA and nccl.h are found); a
// single process needs neither: connect() only initialises MPI when a launcher (mpirun, srun)
// started more than one process.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace fer::distributed {

// Where a launcher placed this process, read from its environment (before MPI_Init).
struct Placement {
  int rank = 0;
  int size = 1;
  int local_rank = 0;    // index among the ranks on this node (picks the GPU)
  std::string launcher;  // "Open MPI", "PMI", "Slurm"; empty when no launcher was seen
};

// Reads the launchers' variables: OMPI_COMM_WORLD_{RANK,SIZE,LOCAL_RANK} (Open MPI's mpirun),
// PMI_{RANK,SIZE} with MPI_LOCALRANKID (MPICH/Intel MPI's hydra), SLURM_{PROCID,STEP_NUM_TASKS
// (else NTASKS),LOCALID} (srun). getenv is injectable for tests. A malformed value (not a number,
// rank outside 0..size-1) is a UserError naming the variable.
Placement placement_from_environment(const std::function<const char*(const char*)>& getenv);
Placement placement_from_environment();

// A peer rank failed before training started and has printed why; this rank exits quietly with
// the same status (2: a user error, 1: anything else).
class PeerFailed : public std::runtime_error {
 public:
  PeerFailed(int failed_rank, int status)
      : std::runtime_error("rank " + std::to_string(failed_rank) + " failed"), rank(failed_rank), exit_status(status) {}
  int rank;
  int exit_status;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual int local_rank() const = 0;
  virtual std::string name() const = 0;  // "MPI (Open MPI 4.1.4)", "NCCL 2.28.9 over MPI"
  bool root() const { return rank() == 0; }

  // ---- data collectives: host memory for MPI, device memory (ordered on the stream given at
  // creation, asynchronous) for NCCL ----
  // data[i] = (sum over ranks of data[i]) / size, count floats. MPI: MPI_Allreduce(MPI_SUM) then a
  // multiply by 1/size (exact for a power-of-two size); NCCL: ncclAllReduce(ncclAvg).
  virtual void all_reduce_mean(float* data, int64_t count) = 0;
  // data[i] = sum over ranks of data[i], count floats.
  virtual void all_reduce_sum(float* data, int64_t count) = 0;
  // all_reduce_mean in pieces, to overlap the gradient all-reduce with the backward pass (as
  // PyTorch DDP's buckets): start_all_reduce_mean starts it (data untouched by the caller until
  // finish_all_reduces, which completes every started one); progress() lets started ones advance
  // (MPI moves a non-blocking collective only inside MPI calls). Every rank starts the same pieces
  // in the same order. MPI: MPI_Iallreduce(MPI_SUM), then the same 1/size multiply as
  // all_reduce_mean. Default (NCCL, test doubles): all_reduce_mean at once.
  virtual void start_all_reduce_mean(float* data, int64_t count) { all_reduce_mean(data, count); }
  virtual void progress() {}
  virtual void finish_all_reduces() {}
  // bytes of root's data copied to every rank.
  virtual void broadcast(void* data, size_t bytes, int root) = 0;

  // ---- host collectives (control and metrics; always over MPI, blocking) ----
  virtual void all_reduce_sum_host(double* data, int count) = 0;
  virtual void all_reduce_max_host(int64_t* data, int count) = 0;
  virtual void broadcast_host(void* data, size_t bytes, int root) = 0;
  // Concatenates every rank's `send` (bytes_of[r] bytes from rank r, in rank order) into `recv`
  // on root (recv: sum of bytes_of; ignored elsewhere). MPI_Gatherv.
  virtual void gather_host(const void* send, const std::vector<size_t>& bytes_of, void* recv, int root) = 0;
  virtual void barrier() = 0;
  // Stops every rank of the job now (MPI_Abort: the launcher kills the others) with `status`.
  [[noreturn]] virtual void abort(int status) = 0;
};

// Whether this build has MPI / NCCL.
bool mpi_built();
bool nccl_built();

// mode "auto": when the launcher's environment says more than one process, initialises MPI
// (MPI_Init_thread, MPI_THREAD_FUNNELED: only the training thread calls MPI) and returns the
// MPI communicator of MPI_COMM_WORLD (finalised when the last reference goes); otherwise null.
// mode "off": null (each process trains alone). UserError: another mode; several processes but a
// build without MPI (rebuild with -DFER_MPI=ON after installing libopenmpi-dev); MPI seeing
// another size than the launcher (srun with an Open MPI that lacks PMIx: srun --mpi=pmix).
std::shared_ptr<Communicator> connect(const std::string& mode);

// A NCCL communicator over the same ranks, for device buffers on `cuda_stream` (a cudaStream_t;
// the current CUDA device must be this rank's). Host collectives go to `mpi`. Collective: every
// rank calls it. DeviceError when this build has no NCCL or ncclCommInitRank fails.
std::shared_ptr<Communicator> make_nccl(std::shared_ptr<Communicator> mpi, void* cuda_stream);

}  // namespace fer::distributed
