// CudaBackend: construction, the device description, memory, copies and timers, all on one
// compute stream. The ops live by family beside it (backend_impl.h lists the files): convolutions
// in conv_cudnn.cpp, dense layers in dense_cublas.cpp, single-kernel ops in kernel_ops.cpp.
#include "engine/cuda/cuda_backend.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "engine/cuda/backend_impl.h"
#include "engine/cuda/conv_cudnn.h"
#include "engine/cuda/cuda_timer.h"
#include "engine/error.h"
#include "kernels/cuda/fill.cuh"
#include "kernels/cuda/launch_util.cuh"

namespace fer {

namespace kc = kernels::cuda;
using cuda_detail::ensure_device;
using cuda_detail::kAlign;

namespace {

constexpr size_t kCublasWorkspaceBytes = size_t(32) << 20;

}  // namespace

// ------------------------------------------------------------------------------------------------
// Construction.

CudaBackend::Impl::Impl() = default;

CudaBackend::Impl::~Impl() {
  // Best effort, never throws: finish pending work, then release in reverse order.
  if (stream) cudaStreamSynchronize(stream);
  convs.reset();
  if (cublas) cublasDestroy(cublas);
  if (cublas_workspace) cudaFree(cublas_workspace);
  if (reduce_scratch) cudaFree(reduce_scratch);
  if (dense_bf16) cudaFree(dense_bf16);
  if (cudnn) cudnnDestroy(cudnn);
  if (stream) cudaStreamDestroy(stream);
}

CudaBackend::CudaBackend(int device_ordinal, const BackendOptions& options)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.device = device_ordinal;
  m.options = options;
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    cudaGetLastError();
    throw DeviceError(std::string("no usable CUDA device: cudaGetDeviceCount: ") +
                      cudaGetErrorString(err));
  }
  if (device_ordinal < 0 || device_ordinal >= count) {
    throw DeviceError("CUDA device " + std::to_string(device_ordinal) + " does not exist (" +
                      std::to_string(count) + " device(s) present)");
  }
  const std::string dev = "device " + std::to_string(device_ordinal);
  FER_CUDA_CHECK(cudaSetDevice(device_ordinal), dev);
  FER_CUDA_CHECK(cudaGetDeviceProperties(&m.prop, device_ordinal), dev);
  m.tf32 = options.allow_tf32 && m.prop.major >= 8;
  if (const char* env = std::getenv("FER_CUDA_SYNC_CHECK")) m.sync_check = std::strcmp(env, "0") != 0;

  FER_CUDA_CHECK(cudaStreamCreateWithFlags(&m.stream, cudaStreamNonBlocking), dev);
  FER_CUDNN_CHECK(cudnnCreate(&m.cudnn), dev);
  FER_CUDNN_CHECK(cudnnSetStream(m.cudnn, m.stream), dev);
  FER_CUBLAS_CHECK(cublasCreate(&m.cublas), dev);
  FER_CUBLAS_CHECK(cublasSetStream(m.cublas, m.stream), dev);
  FER_CUBLAS_CHECK(cublasSetPointerMode(m.cublas, CUBLAS_POINTER_MODE_HOST), dev);
  FER_CUBLAS_CHECK(
      cublasSetMathMode(m.cublas, m.tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH), dev);
  // A fixed cuBLAS workspace: no allocation inside a step (and graph capture friendly).
  m.cublas_workspace = allocate(kCublasWorkspaceBytes);
  m.reduce_scratch = static_cast<double*>(allocate(kc::kReduceScratchBytes));
  FER_CUBLAS_CHECK(cublasSetWorkspace(m.cublas, m.cublas_workspace, kCublasWorkspaceBytes), dev);
  m.convs = std::make_unique<ConvPlanCache>(m.cudnn, m.tf32, options.deterministic);
}

CudaBackend::~CudaBackend() = default;

std::string CudaBackend::description() const {
  const Impl& m = *impl_;
  int driver = 0, runtime = 0;
  cudaDriverGetVersion(&driver);
  cudaRuntimeGetVersion(&runtime);
  const size_t cudnn_version = cudnnGetVersion();
  auto version = [](int v) { return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10); };
  return "cuda:" + std::to_string(m.device) + " " + m.prop.name + " (sm_" +
         std::to_string(m.prop.major) + std::to_string(m.prop.minor) + ", " +
         std::to_string(m.prop.multiProcessorCount) + " SMs, " +
         std::to_string(m.prop.totalGlobalMem >> 20) + " MiB; driver " + version(driver) +
         ", runtime " + version(runtime) + ", cuDNN " + std::to_string(cudnn_version / 10000) +
         "." + std::to_string(cudnn_version / 100 % 100) + "." +
         std::to_string(cudnn_version % 100) + "; TF32 " + (m.tf32 ? "on" : "off") +
         (m.options.deterministic ? ", deterministic" : "") + ")";
}

bool CudaBackend::tf32_enabled() const { return impl_->tf32; }
const BackendOptions& CudaBackend::options() const { return impl_->options; }
void* CudaBackend::native_stream() { return impl_->stream; }

// ------------------------------------------------------------------------------------------------
// Timers, memory, copies.

void* CudaBackend::timer_create() { return cuda_timer::create(); }
void CudaBackend::timer_record(void* timer) { cuda_timer::record(timer, native_stream()); }
float CudaBackend::timer_elapsed_ms(void* a, void* b) { return cuda_timer::elapsed_ms(a, b); }
void CudaBackend::timer_destroy(void* timer) { cuda_timer::destroy(timer); }

bool CudaBackend::memory_info(size_t* free_bytes, size_t* total_bytes) {
  ensure_device(impl_->device);
  const bool ok = cudaMemGetInfo(free_bytes, total_bytes) == cudaSuccess;
  cudaGetLastError();
  return ok;
}

void* CudaBackend::allocate(size_t bytes) {
  ensure_device(impl_->device);
  const size_t asked = std::max(bytes, kAlign);
  void* p = nullptr;
  const cudaError_t err = cudaMalloc(&p, asked);
  if (err == cudaSuccess) return p;
  cudaGetLastError();  // out of memory is not sticky; clear it
  size_t free_bytes = 0, total_bytes = 0;
  const bool known = cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess;
  cudaGetLastError();
  auto mib = [](size_t b) { return std::to_string((b + (size_t(1) << 19)) >> 20) + " MiB"; };
  std::string msg = "cudaMalloc of " + std::to_string(asked) + " bytes (" + mib(asked) +
                    ") failed on cuda:" + std::to_string(impl_->device) + ": " +
                    cudaGetErrorName(err);
  if (known) msg += "; " + mib(free_bytes) + " free of " + mib(total_bytes);
  if (const char* op = OpContextScope::current()) msg += "; while " + std::string(op);
  if (err == cudaErrorMemoryAllocation) msg += " (try a smaller batch size)";
  throw DeviceError(msg);
}

void CudaBackend::deallocate(void* p) {
  if (!p) return;
  ensure_device(impl_->device);
  FER_CUDA_CHECK(cudaFree(p), "");
}

void CudaBackend::copy_from_host(void* dst, const void* src, size_t bytes) {
  if (!bytes) return;
  ensure_device(impl_->device);
  FER_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, impl_->stream),
                 std::to_string(bytes) + " bytes host -> device");
  impl_->after_op("copy_from_host", [&] { return std::to_string(bytes) + " bytes"; });
}

void CudaBackend::copy_to_host(void* dst, const void* src, size_t bytes) {
  if (!bytes) return;
  ensure_device(impl_->device);
  FER_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, impl_->stream),
                 std::to_string(bytes) + " bytes device -> host");
  FER_CUDA_CHECK(cudaStreamSynchronize(impl_->stream),
                 "waiting for " + std::to_string(bytes) + " bytes device -> host");
}

void CudaBackend::copy(void* dst, const void* src, size_t bytes) {
  if (!bytes || dst == src) return;
  ensure_device(impl_->device);
  FER_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, impl_->stream),
                 std::to_string(bytes) + " bytes device -> device");
  impl_->after_op("copy", [&] { return std::to_string(bytes) + " bytes"; });
}

void CudaBackend::fill(float* p, int64_t n, float value) {
  ensure_device(impl_->device);
  FER_CUDA_CHECK(kc::fill(p, n, value, impl_->stream), "fill n=" + std::to_string(n));
  impl_->after_op("fill", [&] { return "n=" + std::to_string(n); });
}

void CudaBackend::synchronize() {
  ensure_device(impl_->device);
  FER_CUDA_CHECK(cudaStreamSynchronize(impl_->stream), "synchronize");
}

// ------------------------------------------------------------------------------------------------

std::unique_ptr<Backend> make_cuda_backend(int device_ordinal, const BackendOptions& options) {
  return std::make_unique<CudaBackend>(device_ordinal, options);
}

}  // namespace fer
