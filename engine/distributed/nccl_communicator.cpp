// The NCCL communicator (engine/distributed/communicator.h): GPU ranks, one device per rank.
// Buffers are device memory; every collective is enqueued on the backend's compute stream, so it
// runs after the backward pass that wrote the gradients and before the optimizer that reads them,
// with no host synchronisation. Host collectives (metrics, flags) go to the MPI communicator,
// which also carried the ncclUniqueId from rank 0. Built only with FER_HAVE_NCCL.
#include <cuda_runtime.h>
#include <nccl.h>

#include <cstdlib>
#include <string>

#include "engine/distributed/communicator.h"
#include "engine/error.h"

namespace fer::distributed {

namespace {

void check(ncclResult_t rc, const char* call, ncclComm_t comm = nullptr) {
  if (rc == ncclSuccess) return;
  std::string text = std::string(call) + " failed: " + ncclGetErrorString(rc);
  if (comm) {
    if (const char* last = ncclGetLastError(comm); last && *last) text += std::string(" (") + last + ")";
  }
  throw DeviceError(text);
}

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(std::shared_ptr<Communicator> mpi, void* stream)
      : mpi_(std::move(mpi)), stream_(static_cast<cudaStream_t>(stream)) {
    ncclUniqueId id{};
    if (mpi_->root()) check(ncclGetUniqueId(&id), "ncclGetUniqueId");
    mpi_->broadcast_host(&id, sizeof id, 0);
    check(ncclCommInitRank(&comm_, mpi_->size(), id, mpi_->rank()), "ncclCommInitRank");
    int v = 0;
    ncclGetVersion(&v);
    name_ = "NCCL " + std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." + std::to_string(v % 100) +
            " over " + mpi_->name();
  }
  ~NcclCommunicator() override {
    if (comm_) ncclCommDestroy(comm_);
  }

  int rank() const override { return mpi_->rank(); }
  int size() const override { return mpi_->size(); }
  int local_rank() const override { return mpi_->local_rank(); }
  std::string name() const override { return name_; }

  void all_reduce_mean(float* data, int64_t count) override {
    check(ncclAllReduce(data, data, size_t(count), ncclFloat32, ncclAvg, comm_, stream_), "ncclAllReduce(avg)", comm_);
  }
  void all_reduce_sum(float* data, int64_t count) override {
    check(ncclAllReduce(data, data, size_t(count), ncclFloat32, ncclSum, comm_, stream_), "ncclAllReduce(sum)", comm_);
  }
  void broadcast(void* data, size_t bytes, int root) override {
    check(ncclBroadcast(data, data, bytes, ncclUint8, root, comm_, stream_), "ncclBroadcast", comm_);
  }

  void all_reduce_sum_host(double* data, int count) override { mpi_->all_reduce_sum_host(data, count); }
  void all_reduce_max_host(int64_t* data, int count) override { mpi_->all_reduce_max_host(data, count); }
  void broadcast_host(void* data, size_t bytes, int root) override { mpi_->broadcast_host(data, bytes, root); }
  void gather_host(const void* send, const std::vector<size_t>& bytes_of, void* recv, int root) override {
    mpi_->gather_host(send, bytes_of, recv, root);
  }
  void barrier() override { mpi_->barrier(); }
  [[noreturn]] void abort(int status) override {
    // Kernels of a collective whose peers died would wait forever: abort the communicator first.
    if (comm_) ncclCommAbort(comm_);
    comm_ = nullptr;
    mpi_->abort(status);
    std::abort();  // not reached: MPI_Abort ends the process (keeps [[noreturn]] true for the compiler)
  }

 private:
  std::shared_ptr<Communicator> mpi_;
  cudaStream_t stream_;
  ncclComm_t comm_ = nullptr;
  std::string name_;
};

}  // namespace

std::shared_ptr<Communicator> make_nccl(std::shared_ptr<Communicator> mpi, void* cuda_stream) {
  if (!mpi) throw std::invalid_argument("make_nccl: needs the MPI communicator");
  return std::make_shared<NcclCommunicator>(std::move(mpi), cuda_stream);
}

}  // namespace fer::distributed
