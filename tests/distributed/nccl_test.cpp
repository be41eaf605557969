// The NCCL communicator on real GPUs (ctest label gpu). One process: a NCCL communicator of one
// rank (bootstrapped over a one-rank host communicator) runs every call the trainer makes on a
// device buffer. Under `mpirun -np 2` on a machine with two GPUs (ctest distributed_nccl_np2):
// the mean of two ranks' buffers. Without a device, or without two, the tests skip visibly.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "engine/distributed/communicator.h"

namespace {

using fer::distributed::Communicator;

std::shared_ptr<Communicator> g_mpi;

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

// A host communicator of one rank: every host collective is the identity.
class OneRank final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  int local_rank() const override { return 0; }
  std::string name() const override { return "one rank"; }
  void all_reduce_mean(float*, int64_t) override {}
  void all_reduce_sum(float*, int64_t) override {}
  void broadcast(void*, size_t, int) override {}
  void all_reduce_sum_host(double*, int) override {}
  void all_reduce_max_host(int64_t*, int) override {}
  void broadcast_host(void*, size_t, int) override {}
  void gather_host(const void* send, const std::vector<size_t>& bytes, void* recv, int) override {
    std::memcpy(recv, send, bytes[0]);
  }
  void barrier() override {}
  [[noreturn]] void abort(int status) override { std::exit(status); }
};

#define CUDA_OK(call) ASSERT_EQ((call), cudaSuccess) << #call

std::vector<float> run_all_reduce_mean(Communicator& comm, cudaStream_t stream, std::vector<float> host) {
  float* d = nullptr;
  EXPECT_EQ(cudaMalloc(&d, host.size() * sizeof(float)), cudaSuccess);
  cudaMemcpy(d, host.data(), host.size() * sizeof(float), cudaMemcpyHostToDevice);
  comm.all_reduce_mean(d, int64_t(host.size()));
  cudaStreamSynchronize(stream);
  cudaMemcpy(host.data(), d, host.size() * sizeof(float), cudaMemcpyDeviceToHost);
  cudaFree(d);
  return host;
}

TEST(Nccl, OneRankRunsTheTrainersCollectives) {
  if (device_count() < 1) GTEST_SKIP() << "no CUDA device";
  CUDA_OK(cudaSetDevice(0));
  cudaStream_t stream;
  CUDA_OK(cudaStreamCreate(&stream));
  {
    auto comm = fer::distributed::make_nccl(std::make_shared<OneRank>(), stream);
    EXPECT_EQ(comm->size(), 1);
    EXPECT_NE(comm->name().find("NCCL"), std::string::npos);
    const std::vector<float> x = {1.5f, -2.0f, 3.25f, 0.0f, 7.0f};
    EXPECT_EQ(run_all_reduce_mean(*comm, stream, x), x);
    float* d = nullptr;
    CUDA_OK(cudaMalloc(&d, 4 * sizeof(float)));
    CUDA_OK(cudaMemcpy(d, x.data(), 4 * sizeof(float), cudaMemcpyHostToDevice));
    comm->broadcast(d, 4 * sizeof(float), 0);
    comm->all_reduce_sum(d, 4);
    CUDA_OK(cudaStreamSynchronize(stream));
    std::vector<float> back(4);
    CUDA_OK(cudaMemcpy(back.data(), d, 4 * sizeof(float), cudaMemcpyDeviceToHost));
    EXPECT_EQ(back, std::vector<float>(x.begin(), x.begin() + 4));
    cudaFree(d);
  }
  cudaStreamDestroy(stream);
}

TEST(Nccl, TwoRanksAverageTheirBuffers) {
  if (!g_mpi || g_mpi->size() != 2) GTEST_SKIP() << "needs 2 ranks: run under mpirun -np 2";
  if (device_count() < 2) GTEST_SKIP() << "needs 2 CUDA devices, " << device_count() << " present";
  CUDA_OK(cudaSetDevice(g_mpi->local_rank()));
  cudaStream_t stream;
  CUDA_OK(cudaStreamCreate(&stream));
  {
    auto comm = fer::distributed::make_nccl(g_mpi, stream);
    std::vector<float> x(1000);
    for (size_t i = 0; i < x.size(); ++i) x[i] = float(i) + 1000.0f * float(comm->rank());
    const std::vector<float> mean = run_all_reduce_mean(*comm, stream, x);
    for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(mean[i], float(i) + 500.0f) << i;
  }
  cudaStreamDestroy(stream);
}

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  g_mpi = fer::distributed::connect("auto");
  const int rc = RUN_ALL_TESTS();
  g_mpi.reset();
  return rc;
}
