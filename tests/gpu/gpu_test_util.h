#pragma once
// Helpers for the CUDA parity tests: skip without a device, CPU and GPU backends side by side,
// device buffers that upload/download std::vectors. Random data and error measures come from
// tests/ops/op_test_util.h.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "tests/ops/op_test_util.h"

namespace fer::gputest {

using testing::rel_l2_error;

// Relative L2 tolerances of the parity tests (DESIGN.md): FP32 and TF32 math.
constexpr double kFp32Tol = 1e-5;
constexpr double kTf32Tol = 2e-3;

#define FER_REQUIRE_CUDA_DEVICE()                                               \
  do {                                                                          \
    std::string fer_why_;                                                       \
    if (!::fer::cuda_device_available(&fer_why_)) {                             \
      GTEST_SKIP() << "no CUDA device: " << fer_why_;                           \
    }                                                                           \
  } while (0)

// A typed buffer in a backend's memory, freed with it.
template <class T>
class Buffer {
 public:
  Buffer(Backend& b, size_t n) : backend_(&b), n_(n) {
    p_ = static_cast<T*>(b.allocate(n * sizeof(T)));
  }
  Buffer(Backend& b, const std::vector<T>& host) : Buffer(b, host.size()) { upload(host); }
  ~Buffer() {
    if (p_) backend_->deallocate(p_);
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  T* get() const { return p_; }
  size_t size() const { return n_; }
  void upload(const std::vector<T>& host) {
    backend_->copy_from_host(p_, host.data(), host.size() * sizeof(T));
  }
  std::vector<T> download() const {
    std::vector<T> host(n_);
    backend_->synchronize();
    backend_->copy_to_host(host.data(), p_, n_ * sizeof(T));
    return host;
  }

 private:
  Backend* backend_;
  size_t n_;
  T* p_ = nullptr;
};

inline std::unique_ptr<Backend> make_gpu(bool tf32, bool deterministic = false) {
  BackendOptions o;
  o.allow_tf32 = tf32;
  o.deterministic = deterministic;
  return make_cuda_backend(0, o);
}

// Backends for one test: the CPU reference backend and a CUDA backend with TF32 on or off.
struct Pair {
  std::unique_ptr<Backend> cpu = make_cpu_backend();
  std::unique_ptr<Backend> gpu;
  double tol;
  explicit Pair(bool tf32 = false) : gpu(make_gpu(tf32)), tol(tf32 ? kTf32Tol : kFp32Tol) {}
};

// Expects rel_l2(gpu, cpu) < tol with a readable message.
template <class T>
void expect_close(const std::vector<T>& gpu, const std::vector<T>& cpu, double tol,
                  const std::string& what) {
  ASSERT_EQ(gpu.size(), cpu.size()) << what;
  const double err = rel_l2_error(gpu, cpu);
  EXPECT_LT(err, tol) << what << ": relative L2 error " << err << " (tolerance " << tol << ")";
}

}  // namespace fer::gputest
