#pragma once
// Error checking for the CUDA backend. Every CUDA runtime, cuDNN and cuBLAS call goes through one
// of the FER_*_CHECK macros; a failure throws DeviceError naming the call, its status, the op/layer
// being run (OpContextScope, set by the executor around each node) and the op's shapes (the
// macro's second argument, a std::string expression evaluated only on failure).
// The macros need the CUDA headers and exist only when FER_HAVE_CUDA is set.
#include <string>

#include "engine/error.h"
#include "engine/op_context.h"

namespace fer {

namespace cuda_check {

// Builds the message and throws DeviceError.
[[noreturn]] inline void fail(const char* api, const char* call, const std::string& status,
                              const char* file, int line, const std::string& detail) {
  std::string msg = std::string(api) + " error: " + status;
  if (const char* op = OpContextScope::current()) msg += "\n  op:    " + std::string(op);
  if (!detail.empty()) msg += "\n  shape: " + detail;
  msg += "\n  call:  " + std::string(call);
  msg += "\n  at:    " + std::string(file) + ":" + std::to_string(line);
  throw DeviceError(msg);
}

}  // namespace cuda_check
}  // namespace fer

#if FER_HAVE_CUDA
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

namespace fer::cuda_check {

inline bool ok(cudaError_t s) { return s == cudaSuccess; }
inline bool ok(cudnnStatus_t s) { return s == CUDNN_STATUS_SUCCESS; }
inline bool ok(cublasStatus_t s) { return s == CUBLAS_STATUS_SUCCESS; }

inline std::string status_text(cudaError_t s) {
  std::string t = std::string(cudaGetErrorName(s)) + " (" + cudaGetErrorString(s) + ")";
  // Errors from an earlier asynchronous kernel surface at a later call; say so.
  if (s == cudaErrorIllegalAddress || s == cudaErrorLaunchFailure ||
      s == cudaErrorMisalignedAddress || s == cudaErrorIllegalInstruction) {
    t += " [may come from an earlier asynchronous kernel: rerun with FER_CUDA_SYNC_CHECK=1 or "
         "under compute-sanitizer to find it]";
  }
  return t;
}

inline std::string status_text(cudnnStatus_t s) {
  std::string t = cudnnGetErrorString(s);
  char detail[512] = {0};
  cudnnGetLastErrorString(detail, sizeof(detail));
  if (detail[0]) t += std::string(" (") + detail + ")";
  return t;
}

inline std::string status_text(cublasStatus_t s) {
  return std::string(cublasGetStatusName(s)) + " (" + cublasGetStatusString(s) + ")";
}

}  // namespace fer::cuda_check

// FER_CHECK_CALL(api, call, detail): api is a label ("CUDA", "cuDNN", "cuBLAS").
#define FER_CHECK_CALL(api, call, detail)                                                     \
  do {                                                                                        \
    const auto fer_check_status_ = (call);                                                    \
    if (!::fer::cuda_check::ok(fer_check_status_)) {                                          \
      ::fer::cuda_check::fail(api, #call, ::fer::cuda_check::status_text(fer_check_status_), \
                              __FILE__, __LINE__, (detail));                                  \
    }                                                                                         \
  } while (0)

#define FER_CUDA_CHECK(call, detail) FER_CHECK_CALL("CUDA", call, detail)
#define FER_CUDNN_CHECK(call, detail) FER_CHECK_CALL("cuDNN", call, detail)
#define FER_CUBLAS_CHECK(call, detail) FER_CHECK_CALL("cuBLAS", call, detail)

#endif  // FER_HAVE_CUDA
