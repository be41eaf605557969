// The MPI communicator (engine/distributed/communicator.h): MPI_COMM_WORLD of the job mpirun or
// srun started. Built only with FER_HAVE_MPI.
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "engine/distributed/communicator.h"
#include "engine/error.h"

namespace fer::distributed {

namespace {

// MPI's default handler (MPI_ERRORS_ARE_FATAL) already aborts the whole job on a failed call; a
// code returned anyway (a handler changed by a library) is still reported, never ignored.
void check(int rc, const char* call) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  throw DeviceError(std::string(call) + " failed: " + std::string(text, size_t(len)));
}

// MPI counts are int: longer buffers go in pieces of at most 2^30 elements.
constexpr int64_t kChunk = int64_t(1) << 30;

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator() {
    int initialized = 0;
    check(MPI_Initialized(&initialized), "MPI_Initialized");
    if (!initialized) {
      int provided = 0;
      // FUNNELED: only the thread that trains calls MPI (the loader threads never do).
      check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
      owns_ = true;
    }
    check(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), "MPI_Comm_rank");
    check(MPI_Comm_size(MPI_COMM_WORLD, &size_), "MPI_Comm_size");
    MPI_Comm node;
    check(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node),
          "MPI_Comm_split_type");
    check(MPI_Comm_rank(node, &local_rank_), "MPI_Comm_rank(node)");
    MPI_Comm_free(&node);
    char version[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(version, &len);
    std::string v(version, size_t(len));
    if (const size_t cut = v.find_first_of(",\n"); cut != std::string::npos) v.resize(cut);
    name_ = "MPI (" + v + ")";
  }
  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (owns_ && !finalized) MPI_Finalize();
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return local_rank_; }
  std::string name() const override { return name_; }

  void all_reduce_sum(float* data, int64_t count) override {
    for (int64_t i = 0; i < count; i += kChunk) {
      const int n = int(std::min(kChunk, count - i));
      check(MPI_Allreduce(MPI_IN_PLACE, data + i, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
    }
  }
  void all_reduce_mean(float* data, int64_t count) override {
    all_reduce_sum(data, count);
    const float scale = 1.0f / float(size_);
    for (int64_t i = 0; i < count; ++i) data[i] *= scale;
  }
  void start_all_reduce_mean(float* data, int64_t count) override {
    for (int64_t i = 0; i < count; i += kChunk) {
      const int n = int(std::min(kChunk, count - i));
      MPI_Request request;
      check(MPI_Iallreduce(MPI_IN_PLACE, data + i, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &request),
            "MPI_Iallreduce");
      requests_.push_back(request);
    }
    started_.push_back({data, count});
  }
  void progress() override {
    if (requests_.empty()) return;
    int done = 0;
    check(MPI_Testall(int(requests_.size()), requests_.data(), &done, MPI_STATUSES_IGNORE), "MPI_Testall");
  }
  void finish_all_reduces() override {
    if (!requests_.empty()) {
      check(MPI_Waitall(int(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE), "MPI_Waitall");
    }
    const float scale = 1.0f / float(size_);
    for (const auto& [data, count] : started_) {
      for (int64_t i = 0; i < count; ++i) data[i] *= scale;
    }
    requests_.clear();
    started_.clear();
  }
  void broadcast(void* data, size_t bytes, int root) override { broadcast_host(data, bytes, root); }

  void all_reduce_sum_host(double* data, int count) override {
    check(MPI_Allreduce(MPI_IN_PLACE, data, count, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
  }
  void all_reduce_max_host(int64_t* data, int count) override {
    check(MPI_Allreduce(MPI_IN_PLACE, data, count, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD), "MPI_Allreduce");
  }
  void broadcast_host(void* data, size_t bytes, int root) override {
    auto* p = static_cast<char*>(data);
    for (size_t i = 0; i < bytes; i += size_t(kChunk)) {
      const int n = int(std::min<size_t>(size_t(kChunk), bytes - i));
      check(MPI_Bcast(p + i, n, MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast");
    }
  }
  void gather_host(const void* send, const std::vector<size_t>& bytes_of, void* recv, int root) override {
    if (int(bytes_of.size()) != size_) throw std::invalid_argument("gather_host: one byte count per rank");
    std::vector<int> counts(bytes_of.size()), displs(bytes_of.size());
    size_t at = 0;
    for (size_t r = 0; r < bytes_of.size(); ++r) {
      if (bytes_of[r] > size_t(INT_MAX) || at > size_t(INT_MAX)) {
        throw std::invalid_argument("gather_host: more than 2 GiB");
      }
      counts[r] = int(bytes_of[r]);
      displs[r] = int(at);
      at += bytes_of[r];
    }
    check(MPI_Gatherv(send, counts[size_t(rank_)], MPI_BYTE, recv, counts.data(), displs.data(), MPI_BYTE, root,
                      MPI_COMM_WORLD),
          "MPI_Gatherv");
  }
  void barrier() override { check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier"); }
  [[noreturn]] void abort(int status) override {
    std::fflush(stdout);
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, status);
    std::_Exit(status);  // MPI_Abort does not return; should it, this process still stops
  }

 private:
  int rank_ = 0, size_ = 1, local_rank_ = 0;
  bool owns_ = false;
  std::string name_;
  std::vector<MPI_Request> requests_;                    // started, not finished
  std::vector<std::pair<float*, int64_t>> started_;      // their buffers, scaled when finished
};

}  // namespace

std::shared_ptr<Communicator> connect(const std::string& mode) {
  if (mode == "off") return nullptr;
  if (mode != "auto") throw UserError("--distributed must be auto or off, not '" + mode + "'");
  const Placement p = placement_from_environment();
  if (p.size <= 1) return nullptr;
  auto comm = std::make_shared<MpiCommunicator>();
  if (comm->size() != p.size) {
    throw UserError(p.launcher + " started " + std::to_string(p.size) + " processes but MPI sees " +
                    std::to_string(comm->size()) +
                    " (under srun, Open MPI needs PMIx: srun --mpi=pmix; or start the job with mpirun)");
  }
  return comm;
}

}  // namespace fer::distributed
