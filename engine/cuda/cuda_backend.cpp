// CudaBackend: cuDNN convolutions, cuBLAS dense layers, kernels/cuda for everything else, all on
// one compute stream. See cuda_backend.h for the contract and the padding scheme.
#include "engine/cuda/cuda_backend.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/cuda/conv_algo_choice.h"
#include "engine/cuda/check.h"
#include "engine/cuda/cuda_timer.h"
#include "engine/error.h"
#include "kernels/common/augment.h"
#include "kernels/cuda/activation.cuh"
#include "kernels/cuda/augment.cuh"
#include "kernels/cuda/launch_util.cuh"
#include "kernels/cuda/batch_norm.cuh"
#include "kernels/cuda/bias.cuh"
#include "kernels/cuda/conv_pad.cuh"
#include "kernels/cuda/dropout.cuh"
#include "kernels/cuda/fill.cuh"
#include "kernels/cuda/gather.cuh"
#include "kernels/cuda/optimizers.cuh"
#include "kernels/cuda/pooling.cuh"
#include "kernels/cuda/softmax_xent.cuh"

namespace fer {

namespace kc = kernels::cuda;

// ------------------------------------------------------------------------------------------------
// Shape descriptions and the padding plan (plain host code).

std::string describe(const ConvShape& s) {
  return "conv2d x[" + std::to_string(s.n) + "," + std::to_string(s.h) + "," + std::to_string(s.w) +
         "," + std::to_string(s.c) + "] w[" + std::to_string(s.k) + "," + std::to_string(s.kh) +
         "," + std::to_string(s.kw) + "," + std::to_string(s.c) + "] stride " +
         std::to_string(s.stride_h) + "x" + std::to_string(s.stride_w) + " pad_top " +
         std::to_string(s.pad_top) + " pad_left " + std::to_string(s.pad_left) + " -> y[" +
         std::to_string(s.n) + "," + std::to_string(s.oh) + "," + std::to_string(s.ow) + "," +
         std::to_string(s.k) + "]";
}

std::string describe(const DenseShape& s) {
  return "dense x[" + std::to_string(s.n) + "," + std::to_string(s.in) + "] w[" +
         std::to_string(s.in) + "," + std::to_string(s.out) + "]";
}

std::string describe(const PoolShape& s) {
  return "pool2d x[" + std::to_string(s.n) + "," + std::to_string(s.h) + "," + std::to_string(s.w) +
         "," + std::to_string(s.c) + "] window " + std::to_string(s.ph) + "x" +
         std::to_string(s.pw) + " stride " + std::to_string(s.stride_h) + "x" +
         std::to_string(s.stride_w) + " -> y[" + std::to_string(s.n) + "," + std::to_string(s.oh) +
         "," + std::to_string(s.ow) + "," + std::to_string(s.c) + "]";
}

std::string describe(const BatchNormShape& s) {
  return "batchnorm rows " + std::to_string(s.rows) + " channels " + std::to_string(s.channels);
}

namespace {

// Rows cuDNN produces from `in` rows with symmetric padding `pad`, or -1 when it would refuse.
int cudnn_output_size(int in, int pad, int kernel, int stride) {
  const int span = in + 2 * pad - kernel;
  return span < 0 ? -1 : span / stride + 1;
}

}  // namespace

ConvPadding plan_conv_padding(const ConvShape& s) {
  if (s.n <= 0 || s.h <= 0 || s.w <= 0 || s.c <= 0 || s.k <= 0 || s.kh <= 0 || s.kw <= 0 ||
      s.stride_h <= 0 || s.stride_w <= 0 || s.pad_top < 0 || s.pad_left < 0 || s.oh <= 0 ||
      s.ow <= 0) {
    throw std::invalid_argument("impossible convolution shape: " + describe(s));
  }
  ConvPadding p;
  const bool direct = cudnn_output_size(s.h, s.pad_top, s.kh, s.stride_h) == s.oh &&
                      cudnn_output_size(s.w, s.pad_left, s.kw, s.stride_w) == s.ow;
  if (direct) {
    p.padded_copy = false;
    p.pad_h = s.pad_top;
    p.pad_w = s.pad_left;
    p.in_h = s.h;
    p.in_w = s.w;
  } else {
    p.padded_copy = true;
    p.pad_h = 0;
    p.pad_w = 0;
    p.in_h = (s.oh - 1) * s.stride_h + s.kh;
    p.in_w = (s.ow - 1) * s.stride_w + s.kw;
  }
  return p;
}

// ------------------------------------------------------------------------------------------------
// Implementation state.

namespace {

constexpr size_t kAlign = 256;
constexpr size_t kCublasWorkspaceBytes = size_t(32) << 20;
// Algorithms needing more scratch than this are passed over (FFT variants can ask for GiBs).
constexpr size_t kMaxConvWorkspaceBytes = size_t(512) << 20;

size_t align_up(size_t v) { return (v + kAlign - 1) / kAlign * kAlign; }

const char* fwd_algo_name(cudnnConvolutionFwdAlgo_t a) {
  switch (a) {
    case CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM: return "IMPLICIT_GEMM";
    case CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM: return "IMPLICIT_PRECOMP_GEMM";
    case CUDNN_CONVOLUTION_FWD_ALGO_GEMM: return "GEMM";
    case CUDNN_CONVOLUTION_FWD_ALGO_DIRECT: return "DIRECT";
    case CUDNN_CONVOLUTION_FWD_ALGO_FFT: return "FFT";
    case CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING: return "FFT_TILING";
    case CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD: return "WINOGRAD";
    case CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED: return "WINOGRAD_NONFUSED";
    default: return "?";
  }
}

const char* bwd_data_algo_name(cudnnConvolutionBwdDataAlgo_t a) {
  switch (a) {
    case CUDNN_CONVOLUTION_BWD_DATA_ALGO_0: return "ALGO_0";
    case CUDNN_CONVOLUTION_BWD_DATA_ALGO_1: return "ALGO_1";
    case CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT: return "FFT";
    case CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING: return "FFT_TILING";
    case CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD: return "WINOGRAD";
    case CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED: return "WINOGRAD_NONFUSED";
    default: return "?";
  }
}

const char* bwd_filter_algo_name(cudnnConvolutionBwdFilterAlgo_t a) {
  switch (a) {
    case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0: return "ALGO_0";
    case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1: return "ALGO_1";
    case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT: return "FFT";
    case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3: return "ALGO_3";
    case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD_NONFUSED: return "WINOGRAD_NONFUSED";
    case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT_TILING: return "FFT_TILING";
    default: return "?";
  }
}

const char* math_name(cudnnMathType_t m) {
  switch (m) {
    case CUDNN_DEFAULT_MATH: return "default";
    case CUDNN_TENSOR_OP_MATH: return "tensor_op";
    case CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION: return "tensor_op_conv";
    case CUDNN_FMA_MATH: return "fma";
    default: return "?";
  }
}

using ConvKey = std::array<int, 13>;

ConvKey conv_key(const ConvShape& s) {
  return {s.n, s.h, s.w, s.c, s.k, s.kh, s.kw, s.stride_h, s.stride_w, s.pad_top, s.pad_left, s.oh,
          s.ow};
}

// Everything cuDNN needs for one convolution shape. Each pass has its own convolution descriptor
// because the math type goes with the chosen algorithm.
struct ConvPlan {
  ConvShape shape;
  ConvPadding pad;
  cudnnTensorDescriptor_t x_desc = nullptr;  // x, or xp when pad.padded_copy
  cudnnTensorDescriptor_t y_desc = nullptr;
  cudnnFilterDescriptor_t w_desc = nullptr;
  cudnnConvolutionDescriptor_t fwd_desc = nullptr, bwd_data_desc = nullptr,
                               bwd_filter_desc = nullptr;
  cudnnConvolutionFwdAlgo_t fwd_algo = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
  cudnnConvolutionBwdDataAlgo_t bwd_data_algo = CUDNN_CONVOLUTION_BWD_DATA_ALGO_1;
  cudnnConvolutionBwdFilterAlgo_t bwd_filter_algo = CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1;
  cudnnMathType_t fwd_math = CUDNN_FMA_MATH, bwd_data_math = CUDNN_FMA_MATH,
                  bwd_filter_math = CUDNN_FMA_MATH;
  size_t fwd_ws = 0, bwd_data_ws = 0, bwd_filter_ws = 0;
  size_t pad_bytes = 0;  // leading part of the workspace holding xp (0 without a padded copy)
  size_t total_ws = 0;   // pad_bytes + the largest cuDNN workspace

  ConvPlan() = default;
  ConvPlan(const ConvPlan&) = delete;
  ConvPlan& operator=(const ConvPlan&) = delete;
  ~ConvPlan() {
    if (x_desc) cudnnDestroyTensorDescriptor(x_desc);
    if (y_desc) cudnnDestroyTensorDescriptor(y_desc);
    if (w_desc) cudnnDestroyFilterDescriptor(w_desc);
    if (fwd_desc) cudnnDestroyConvolutionDescriptor(fwd_desc);
    if (bwd_data_desc) cudnnDestroyConvolutionDescriptor(bwd_data_desc);
    if (bwd_filter_desc) cudnnDestroyConvolutionDescriptor(bwd_filter_desc);
  }

  std::string algorithms() const {
    return std::string(pad.padded_copy ? "padded-copy " : "direct ") + "fwd=" +
           fwd_algo_name(fwd_algo) + "/" + math_name(fwd_math) + "(" + std::to_string(fwd_ws) +
           "B) bwd_data=" + bwd_data_algo_name(bwd_data_algo) + "/" + math_name(bwd_data_math) +
           "(" + std::to_string(bwd_data_ws) + "B) bwd_filter=" +
           bwd_filter_algo_name(bwd_filter_algo) + "/" + math_name(bwd_filter_math) + "(" +
           std::to_string(bwd_filter_ws) + "B) workspace=" + std::to_string(total_ws) + "B";
  }
};

// Makes `device` current on the calling thread for the scope of a backend call (cheap when it
// already is).
void ensure_device(int device) {
  int current = -1;
  FER_CUDA_CHECK(cudaGetDevice(&current), "");
  if (current != device) FER_CUDA_CHECK(cudaSetDevice(device), "device " + std::to_string(device));
}

}  // namespace

struct CudaBackend::Impl {
  int device = 0;
  BackendOptions options;
  bool tf32 = false;
  bool sync_check = false;  // FER_CUDA_SYNC_CHECK=1: wait after every op to pin down async faults
  cudaDeviceProp prop{};
  cudaStream_t stream = nullptr;
  cudnnHandle_t cudnn = nullptr;
  cublasHandle_t cublas = nullptr;
  void* cublas_workspace = nullptr;
  // Partial sums of the two-stage per-channel reductions (bias gradients, BN statistics): one
  // fixed buffer, so no op allocates; ops on the one stream use it one after another.
  double* reduce_scratch = nullptr;
  std::mutex plans_mutex;
  std::map<ConvKey, std::unique_ptr<ConvPlan>> plans;
  // The largest workspace conv2d_workspace_bytes has reported: what the executor provides.
  size_t max_reported_ws = 0;

  ~Impl() {
    // Best effort, never throws: finish pending work, then release in reverse order.
    if (stream) cudaStreamSynchronize(stream);
    plans.clear();
    if (cublas) cublasDestroy(cublas);
    if (cublas_workspace) cudaFree(cublas_workspace);
    if (reduce_scratch) cudaFree(reduce_scratch);
    if (cudnn) cudnnDestroy(cudnn);
    if (stream) cudaStreamDestroy(stream);
  }

  // After an op: in sync-check mode, wait and attribute any asynchronous failure to this op.
  template <class Detail>
  void after_op(const char* op, Detail&& detail) {
    if (!sync_check) return;
    FER_CUDA_CHECK(cudaStreamSynchronize(stream), std::string(op) + ": " + detail());
  }

  // The plan of a shape, built on first use. `reported`: asked by conv2d_workspace_bytes (the
  // caller will provide what the plan needs); otherwise the shape was never planned (a batch size
  // the executor did not announce) and its algorithms must fit the workspace already provided.
  ConvPlan& plan_for(const ConvShape& s, bool reported);
  std::unique_ptr<ConvPlan> build_plan(const ConvShape& s, size_t cudnn_ws_cap);
  void choose_forward(ConvPlan& p, size_t cap);
  void choose_backward_data(ConvPlan& p, size_t cap);
  void choose_backward_filter(ConvPlan& p, size_t cap);
};

// ------------------------------------------------------------------------------------------------
// Convolution plans and algorithm selection.

ConvPlan& CudaBackend::Impl::plan_for(const ConvShape& s, bool reported) {
  const ConvKey key = conv_key(s);
  std::lock_guard<std::mutex> lock(plans_mutex);
  auto it = plans.find(key);
  if (it == plans.end()) {
    size_t cap = kMaxConvWorkspaceBytes;
    if (!reported) {
      const ConvPadding pad = plan_conv_padding(s);
      const size_t pad_bytes =
          pad.padded_copy ? align_up(size_t(s.n) * size_t(pad.in_h) * size_t(pad.in_w) *
                                     size_t(s.c) * sizeof(float))
                          : 0;
      if (pad_bytes > max_reported_ws) {
        throw DeviceError("conv2d shape never planned and its padded copy (" +
                          std::to_string(pad_bytes) + " bytes) exceeds the largest workspace " +
                          "planned (" + std::to_string(max_reported_ws) +
                          " bytes): ask conv2d_workspace_bytes for every batch size while " +
                          "planning; " + describe(s));
      }
      cap = std::min(cap, max_reported_ws - pad_bytes);
    }
    it = plans.emplace(key, build_plan(s, cap)).first;
  }
  return *it->second;
}

std::unique_ptr<ConvPlan> CudaBackend::Impl::build_plan(const ConvShape& s, size_t cudnn_ws_cap) {
  auto p = std::make_unique<ConvPlan>();
  p->shape = s;
  p->pad = plan_conv_padding(s);
  const std::string what = describe(s);
  FER_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->x_desc), what);
  FER_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->y_desc), what);
  FER_CUDNN_CHECK(cudnnCreateFilterDescriptor(&p->w_desc), what);
  FER_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&p->fwd_desc), what);
  FER_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&p->bwd_data_desc), what);
  FER_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&p->bwd_filter_desc), what);

  // cudnnSetTensor4dDescriptor takes dimensions in (n, c, h, w) order whatever the layout.
  FER_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->x_desc, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, s.n,
                                             s.c, p->pad.in_h, p->pad.in_w),
                  what);
  FER_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->y_desc, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, s.n,
                                             s.k, s.oh, s.ow),
                  what);
  // NHWC filter format = KRSC = our OHWI weights.
  FER_CUDNN_CHECK(cudnnSetFilter4dDescriptor(p->w_desc, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NHWC, s.k,
                                             s.c, s.kh, s.kw),
                  what);
  const cudnnMathType_t search_math = tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
  for (cudnnConvolutionDescriptor_t d : {p->fwd_desc, p->bwd_data_desc, p->bwd_filter_desc}) {
    // Cross-correlation: TensorFlow's convolution (no kernel flip).
    FER_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(d, p->pad.pad_h, p->pad.pad_w, s.stride_h,
                                                    s.stride_w, 1, 1, CUDNN_CROSS_CORRELATION,
                                                    CUDNN_DATA_FLOAT),
                    what);
    FER_CUDNN_CHECK(cudnnSetConvolutionMathType(d, search_math), what);
  }
  int on = 0, ok = 0, oh = 0, ow = 0;
  FER_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(p->fwd_desc, p->x_desc, p->w_desc, &on,
                                                        &ok, &oh, &ow),
                  what);
  if (on != s.n || ok != s.k || oh != s.oh || ow != s.ow) {
    throw DeviceError("internal error: cuDNN computes output [" + std::to_string(on) + "," +
                      std::to_string(oh) + "," + std::to_string(ow) + "," + std::to_string(ok) +
                      "] for " + what + " (padding plan " +
                      (p->pad.padded_copy ? "padded copy" : "direct") + ")");
  }

  choose_forward(*p, cudnn_ws_cap);
  choose_backward_data(*p, cudnn_ws_cap);
  choose_backward_filter(*p, cudnn_ws_cap);

  if (p->pad.padded_copy) {
    p->pad_bytes = align_up(size_t(s.n) * size_t(p->pad.in_h) * size_t(p->pad.in_w) *
                            size_t(s.c) * sizeof(float));
  }
  p->total_ws =
      p->pad_bytes + align_up(std::max({p->fwd_ws, p->bwd_data_ws, p->bwd_filter_ws}));
  return p;
}

// Each chooser walks candidates in the order conv_algo_try_order gives (engine/cuda/
// conv_algo_choice.h): by default the measured cudnnFind* results (fastest first), then cuDNN's
// heuristic list as a fallback; in deterministic mode the heuristic list alone (no timing enters)
// in a fixed preference order. A candidate is taken when cuDNN confirms it for the descriptor's
// final math type by answering its workspace size within the cap.

namespace {

template <typename Perf>
struct ChosenAlgorithm {
  decltype(Perf::algo) algo;
  cudnnMathType_t math;
  size_t workspace;
};

// The one selection rule for all three passes. find/heuristic(count, &returned, out) fill
// candidate lists; workspace_of(algo, &bytes) asks cuDNN for the workspace under the math type
// already set on desc; preference ranks algorithm ids for deterministic mode.
template <typename Perf, typename Find, typename Heuristic, typename WorkspaceOf>
ChosenAlgorithm<Perf> choose_algorithm(const char* pass, const std::string& what, int max_count,
                                       cudnnConvolutionDescriptor_t desc, size_t cap, bool tf32,
                                       bool deterministic, const std::vector<int>& preference,
                                       Find find, Heuristic heuristic, WorkspaceOf workspace_of) {
  max_count = std::max(max_count, 1);
  std::vector<Perf> candidates, buf(static_cast<size_t>(max_count));
  int returned = 0;
  if (!deterministic && find(max_count, &returned, buf.data()) == CUDNN_STATUS_SUCCESS) {
    candidates.insert(candidates.end(), buf.begin(), buf.begin() + returned);
  }
  cudaGetLastError();  // a failed search may leave a (non-sticky) error behind
  returned = 0;
  if (heuristic(max_count, &returned, buf.data()) == CUDNN_STATUS_SUCCESS) {
    candidates.insert(candidates.end(), buf.begin(), buf.begin() + returned);
  }
  std::vector<ConvAlgoCandidate> plain;
  for (const Perf& c : candidates) {
    plain.push_back({int(c.algo), c.status == CUDNN_STATUS_SUCCESS, c.determinism == CUDNN_DETERMINISTIC,
                     int(c.mathType), c.memory, c.time});
  }
  for (size_t i : conv_algo_try_order(plain, cap, deterministic, int(CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION),
                                      preference)) {
    const Perf& c = candidates[i];
    const cudnnMathType_t math = tf32 ? c.mathType : CUDNN_FMA_MATH;
    if (cudnnSetConvolutionMathType(desc, math) != CUDNN_STATUS_SUCCESS) continue;
    size_t ws = 0;
    if (workspace_of(c.algo, &ws) != CUDNN_STATUS_SUCCESS || ws > cap) continue;
    return {c.algo, math, std::max(ws, c.memory)};
  }
  throw DeviceError(std::string("cuDNN has no usable ") + pass + " algorithm for " + what + " (" +
                    std::to_string(candidates.size()) + " candidates, workspace cap " +
                    std::to_string(cap) + " bytes" + (deterministic ? ", deterministic only)" : ")"));
}

// Deterministic mode's preference, best first: the implicit-GEMM family (no extra workspace to
// speak of, every shape), then the transform-based ones. Fixed here so every process agrees.
const std::vector<int> kFwdPreference = {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM,
                                         CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
                                         CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED,
                                         CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING,
                                         CUDNN_CONVOLUTION_FWD_ALGO_GEMM};
const std::vector<int> kBwdDataPreference = {CUDNN_CONVOLUTION_BWD_DATA_ALGO_1,
                                             CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED,
                                             CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING};
const std::vector<int> kBwdFilterPreference = {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1,
                                               CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD_NONFUSED,
                                               CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT_TILING};

}  // namespace

void CudaBackend::Impl::choose_forward(ConvPlan& p, size_t cap) {
  const std::string what = describe(p.shape);
  int max_count = 0;
  FER_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(cudnn, &max_count), what);
  const auto c = choose_algorithm<cudnnConvolutionFwdAlgoPerf_t>(
      "forward", what, max_count, p.fwd_desc, cap, tf32, options.deterministic, kFwdPreference,
      [&](int n, int* r, cudnnConvolutionFwdAlgoPerf_t* out) {
        return cudnnFindConvolutionForwardAlgorithm(cudnn, p.x_desc, p.w_desc, p.fwd_desc, p.y_desc, n, r, out);
      },
      [&](int n, int* r, cudnnConvolutionFwdAlgoPerf_t* out) {
        return cudnnGetConvolutionForwardAlgorithm_v7(cudnn, p.x_desc, p.w_desc, p.fwd_desc, p.y_desc, n, r, out);
      },
      [&](cudnnConvolutionFwdAlgo_t algo, size_t* ws) {
        return cudnnGetConvolutionForwardWorkspaceSize(cudnn, p.x_desc, p.w_desc, p.fwd_desc, p.y_desc, algo, ws);
      });
  p.fwd_algo = c.algo;
  p.fwd_math = c.math;
  p.fwd_ws = c.workspace;
}

void CudaBackend::Impl::choose_backward_data(ConvPlan& p, size_t cap) {
  const std::string what = describe(p.shape);
  int max_count = 0;
  FER_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(cudnn, &max_count), what);
  const auto c = choose_algorithm<cudnnConvolutionBwdDataAlgoPerf_t>(
      "backward-data", what, max_count, p.bwd_data_desc, cap, tf32, options.deterministic, kBwdDataPreference,
      [&](int n, int* r, cudnnConvolutionBwdDataAlgoPerf_t* out) {
        return cudnnFindConvolutionBackwardDataAlgorithm(cudnn, p.w_desc, p.y_desc, p.bwd_data_desc, p.x_desc, n, r, out);
      },
      [&](int n, int* r, cudnnConvolutionBwdDataAlgoPerf_t* out) {
        return cudnnGetConvolutionBackwardDataAlgorithm_v7(cudnn, p.w_desc, p.y_desc, p.bwd_data_desc, p.x_desc, n, r, out);
      },
      [&](cudnnConvolutionBwdDataAlgo_t algo, size_t* ws) {
        return cudnnGetConvolutionBackwardDataWorkspaceSize(cudnn, p.w_desc, p.y_desc, p.bwd_data_desc, p.x_desc, algo, ws);
      });
  p.bwd_data_algo = c.algo;
  p.bwd_data_math = c.math;
  p.bwd_data_ws = c.workspace;
}

void CudaBackend::Impl::choose_backward_filter(ConvPlan& p, size_t cap) {
  const std::string what = describe(p.shape);
  int max_count = 0;
  FER_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(cudnn, &max_count), what);
  const auto c = choose_algorithm<cudnnConvolutionBwdFilterAlgoPerf_t>(
      "backward-filter", what, max_count, p.bwd_filter_desc, cap, tf32, options.deterministic, kBwdFilterPreference,
      [&](int n, int* r, cudnnConvolutionBwdFilterAlgoPerf_t* out) {
        return cudnnFindConvolutionBackwardFilterAlgorithm(cudnn, p.x_desc, p.y_desc, p.bwd_filter_desc, p.w_desc, n, r, out);
      },
      [&](int n, int* r, cudnnConvolutionBwdFilterAlgoPerf_t* out) {
        return cudnnGetConvolutionBackwardFilterAlgorithm_v7(cudnn, p.x_desc, p.y_desc, p.bwd_filter_desc, p.w_desc, n, r, out);
      },
      [&](cudnnConvolutionBwdFilterAlgo_t algo, size_t* ws) {
        return cudnnGetConvolutionBackwardFilterWorkspaceSize(cudnn, p.x_desc, p.y_desc, p.bwd_filter_desc, p.w_desc, algo, ws);
      });
  p.bwd_filter_algo = c.algo;
  p.bwd_filter_math = c.math;
  p.bwd_filter_ws = c.workspace;
}

// ------------------------------------------------------------------------------------------------
// Construction.

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

std::string CudaBackend::conv_algorithms(const ConvShape& s) {
  ensure_device(impl_->device);
  return impl_->plan_for(s, true).algorithms();
}

// ------------------------------------------------------------------------------------------------
// Memory.

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
// Convolution.

size_t CudaBackend::conv2d_workspace_bytes(const ConvShape& s) {
  ensure_device(impl_->device);
  const size_t bytes = impl_->plan_for(s, true).total_ws;
  std::lock_guard<std::mutex> lock(impl_->plans_mutex);
  impl_->max_reported_ws = std::max(impl_->max_reported_ws, bytes);
  return bytes;
}

namespace {

void require_workspace(const ConvPlan& p, const void* workspace) {
  if (p.total_ws > 0 && workspace == nullptr) {
    throw DeviceError("conv2d: null workspace, " + std::to_string(p.total_ws) +
                      " bytes needed (ask conv2d_workspace_bytes) for " + describe(p.shape));
  }
}

}  // namespace

void CudaBackend::conv2d_forward(const ConvShape& s, const float* x, const float* w,
                                 const float* b, float* y, void* workspace) {
  Impl& m = *impl_;
  ensure_device(m.device);
  const ConvPlan& p = m.plan_for(s, false);
  require_workspace(p, workspace);
  char* ws = static_cast<char*>(workspace);
  void* cudnn_ws = p.fwd_ws ? ws + p.pad_bytes : nullptr;
  const auto what = [&] { return describe(s) + " [" + p.algorithms() + "]"; };
  const float* xin = x;
  if (p.pad.padded_copy) {
    float* xp = reinterpret_cast<float*>(ws);
    FER_CUDA_CHECK(kc::pad_nhwc(s.n, s.h, s.w, s.c, s.pad_top, s.pad_left, p.pad.in_h, p.pad.in_w,
                                x, xp, m.stream),
                   what());
    xin = xp;
  }
  const float one = 1.0f, zero = 0.0f;
  FER_CUDNN_CHECK(cudnnConvolutionForward(m.cudnn, &one, p.x_desc, xin, p.w_desc, w, p.fwd_desc,
                                          p.fwd_algo, cudnn_ws, p.fwd_ws, &zero, p.y_desc, y),
                  what());
  if (b) {
    FER_CUDA_CHECK(kc::bias_add(int64_t(s.n) * s.oh * s.ow, s.k, b, y, m.stream), what());
  }
  m.after_op("conv2d_forward", what);
}

void CudaBackend::conv2d_backward(const ConvShape& s, const float* x, const float* w,
                                  const float* dy, float* dx, float* dw, float* db,
                                  void* workspace) {
  Impl& m = *impl_;
  ensure_device(m.device);
  const ConvPlan& p = m.plan_for(s, false);
  require_workspace(p, workspace);
  char* ws = static_cast<char*>(workspace);
  const auto what = [&] { return describe(s) + " [" + p.algorithms() + "]"; };
  const float one = 1.0f, zero = 0.0f;
  float* xp = p.pad.padded_copy ? reinterpret_cast<float*>(ws) : nullptr;

  if (dw) {
    const float* xin = x;
    if (xp) {
      FER_CUDA_CHECK(kc::pad_nhwc(s.n, s.h, s.w, s.c, s.pad_top, s.pad_left, p.pad.in_h,
                                  p.pad.in_w, x, xp, m.stream),
                     what());
      xin = xp;
    }
    void* cudnn_ws = p.bwd_filter_ws ? ws + p.pad_bytes : nullptr;
    FER_CUDNN_CHECK(cudnnConvolutionBackwardFilter(m.cudnn, &one, p.x_desc, xin, p.y_desc, dy,
                                                   p.bwd_filter_desc, p.bwd_filter_algo, cudnn_ws,
                                                   p.bwd_filter_ws, &zero, p.w_desc, dw),
                    what());
  }
  if (db) {
    FER_CUDA_CHECK(kc::bias_grad(int64_t(s.n) * s.oh * s.ow, s.k, dy, db, m.reduce_scratch,
                                 kc::kReduceScratchBytes, m.stream), what());
  }
  if (dx) {
    void* cudnn_ws = p.bwd_data_ws ? ws + p.pad_bytes : nullptr;
    // With a padded copy the gradient of xp lands in the xp buffer (the filter pass above, earlier
    // on the same stream, is done with it), then is cropped into dx.
    float* target = xp ? xp : dx;
    FER_CUDNN_CHECK(cudnnConvolutionBackwardData(m.cudnn, &one, p.w_desc, w, p.y_desc, dy,
                                                 p.bwd_data_desc, p.bwd_data_algo, cudnn_ws,
                                                 p.bwd_data_ws, &zero, p.x_desc, target),
                    what());
    if (xp) {
      FER_CUDA_CHECK(kc::crop_nhwc(s.n, s.h, s.w, s.c, s.pad_top, s.pad_left, p.pad.in_h,
                                   p.pad.in_w, xp, dx, m.stream),
                     what());
    }
  }
  m.after_op("conv2d_backward", what);
}

// ------------------------------------------------------------------------------------------------
// Dense: row-major y[n,out] = x[n,in] W[in,out] + b. cuBLAS is column-major, where a row-major
// [r,c] matrix reads as its transpose [c,r] with leading dimension c; so y^T = W^T x^T is
// gemm(N, N, m=out, n=n, k=in, A=W (ld out), B=x (ld in), C=y (ld out)).

void CudaBackend::dense_forward(const DenseShape& s, const float* x, const float* w,
                                const float* b, float* y) {
  Impl& m = *impl_;
  ensure_device(m.device);
  if (s.n <= 0 || s.out <= 0) return;
  const auto what = [&] { return describe(s); };
  const float one = 1.0f, zero = 0.0f;
  FER_CUBLAS_CHECK(cublasSgemm(m.cublas, CUBLAS_OP_N, CUBLAS_OP_N, s.out, s.n, s.in, &one, w,
                               s.out, x, s.in, &zero, y, s.out),
                   what());
  if (b) FER_CUDA_CHECK(kc::bias_add(s.n, s.out, b, y, m.stream), what());
  m.after_op("dense_forward", what);
}

void CudaBackend::dense_backward(const DenseShape& s, const float* x, const float* w,
                                 const float* dy, float* dx, float* dw, float* db) {
  Impl& m = *impl_;
  ensure_device(m.device);
  const auto what = [&] { return describe(s); };
  const float one = 1.0f, zero = 0.0f;
  if (dx && s.n > 0 && s.in > 0) {
    // dx^T [in,n] = W [in,out] dy^T [out,n]: W stored as W^T (out x in, ld out) -> op T.
    FER_CUBLAS_CHECK(cublasSgemm(m.cublas, CUBLAS_OP_T, CUBLAS_OP_N, s.in, s.n, s.out, &one, w,
                                 s.out, dy, s.out, &zero, dx, s.in),
                     what());
  }
  if (dw && s.in > 0 && s.out > 0) {
    // dW^T [out,in] = dy^T [out,n] x [n,in]: x stored as x^T (in x n, ld in) -> op T.
    FER_CUBLAS_CHECK(cublasSgemm(m.cublas, CUBLAS_OP_N, CUBLAS_OP_T, s.out, s.in, s.n, &one, dy,
                                 s.out, x, s.in, &zero, dw, s.out),
                     what());
  }
  if (db) FER_CUDA_CHECK(kc::bias_grad(s.n, s.out, dy, db, m.reduce_scratch, kc::kReduceScratchBytes, m.stream), what());
  m.after_op("dense_backward", what);
}

// ------------------------------------------------------------------------------------------------
// Activations.

namespace {

int64_t softmax_rows(int64_t n, int cols) {
  if (cols <= 0 || n % cols != 0) {
    throw std::invalid_argument("softmax activation: n=" + std::to_string(n) +
                                " is not a multiple of a positive cols=" + std::to_string(cols));
  }
  return n / cols;
}

}  // namespace

void CudaBackend::activation_forward(Act act, int64_t n, int cols, const float* x, float* y) {
  Impl& m = *impl_;
  ensure_device(m.device);
  const auto what = [&] {
    return "activation " + std::to_string(int(act)) + " n=" + std::to_string(n) +
           " cols=" + std::to_string(cols);
  };
  switch (act) {
    case Act::linear:
      if (x != y && n > 0) {
        FER_CUDA_CHECK(cudaMemcpyAsync(y, x, size_t(n) * sizeof(float), cudaMemcpyDeviceToDevice,
                                       m.stream),
                       what());
      }
      break;
    case Act::relu:
      FER_CUDA_CHECK(kc::relu_forward(n, x, y, m.stream), what());
      break;
    case Act::softmax:
      FER_CUDA_CHECK(kc::softmax_forward(softmax_rows(n, cols), cols, x, y, m.stream), what());
      break;
    default:
      throw std::invalid_argument("activation_forward: unknown activation " +
                                  std::to_string(int(act)));
  }
  m.after_op("activation_forward", what);
}

void CudaBackend::activation_backward(Act act, int64_t n, int cols, const float* y,
                                      const float* dy, float* dx) {
  Impl& m = *impl_;
  ensure_device(m.device);
  const auto what = [&] {
    return "activation " + std::to_string(int(act)) + " n=" + std::to_string(n) +
           " cols=" + std::to_string(cols);
  };
  switch (act) {
    case Act::linear:
      if (dy != dx && n > 0) {
        FER_CUDA_CHECK(cudaMemcpyAsync(dx, dy, size_t(n) * sizeof(float),
                                       cudaMemcpyDeviceToDevice, m.stream),
                       what());
      }
      break;
    case Act::relu:
      FER_CUDA_CHECK(kc::relu_backward(n, y, dy, dx, m.stream), what());
      break;
    case Act::softmax:
      FER_CUDA_CHECK(kc::softmax_backward(softmax_rows(n, cols), cols, y, dy, dx, m.stream),
                     what());
      break;
    default:
      throw std::invalid_argument("activation_backward: unknown activation " +
                                  std::to_string(int(act)));
  }
  m.after_op("activation_backward", what);
}

// ------------------------------------------------------------------------------------------------
// Batch normalisation, pooling, dropout.

void CudaBackend::batchnorm_forward_train(const BatchNormShape& s, const float* x,
                                          const float* gamma, const float* beta, float* y,
                                          float* save_mean, float* save_invstd,
                                          float* moving_mean, float* moving_var, float momentum,
                                          float epsilon) {
  Impl& m = *impl_;
  ensure_device(m.device);
  const auto what = [&] { return describe(s); };
  FER_CUDA_CHECK(kc::batchnorm_forward_train(s.rows, s.channels, x, gamma, beta, y, save_mean,
                                             save_invstd, moving_mean, moving_var, momentum,
                                             epsilon, m.reduce_scratch, kc::kReduceScratchBytes,
                                             m.stream),
                 what());
  m.after_op("batchnorm_forward_train", what);
}

void CudaBackend::batchnorm_forward_infer(const BatchNormShape& s, const float* x,
                                          const float* gamma, const float* beta,
                                          const float* moving_mean, const float* moving_var,
                                          float* y, float epsilon) {
  Impl& m = *impl_;
  ensure_device(m.device);
  const auto what = [&] { return describe(s); };
  FER_CUDA_CHECK(kc::batchnorm_forward_infer(s.rows, s.channels, x, gamma, beta, moving_mean,
                                             moving_var, y, epsilon, m.stream),
                 what());
  m.after_op("batchnorm_forward_infer", what);
}

void CudaBackend::batchnorm_backward(const BatchNormShape& s, const float* x, const float* gamma,
                                     const float* dy, const float* save_mean,
                                     const float* save_invstd, float* dx, float* dgamma,
                                     float* dbeta) {
  Impl& m = *impl_;
  ensure_device(m.device);
  const auto what = [&] { return describe(s); };
  if (!dgamma || !dbeta) {
    throw std::invalid_argument("batchnorm_backward needs dgamma and dbeta buffers: " + what());
  }
  FER_CUDA_CHECK(kc::batchnorm_backward(s.rows, s.channels, x, gamma, dy, save_mean, save_invstd,
                                        dx, dgamma, dbeta, m.reduce_scratch,
                                        kc::kReduceScratchBytes, m.stream),
                 what());
  m.after_op("batchnorm_backward", what);
}

void CudaBackend::pool2d_forward(const PoolShape& s, PoolMode mode, const float* x, float* y) {
  Impl& m = *impl_;
  ensure_device(m.device);
  const auto what = [&] { return describe(s) + (mode == PoolMode::max ? " max" : " average"); };
  FER_CUDA_CHECK(kc::pool2d_forward(s, mode, x, y, m.stream), what());
  m.after_op("pool2d_forward", what);
}

void CudaBackend::pool2d_backward(const PoolShape& s, PoolMode mode, const float* x,
                                  const float* y, const float* dy, float* dx) {
  Impl& m = *impl_;
  ensure_device(m.device);
  const auto what = [&] { return describe(s) + (mode == PoolMode::max ? " max" : " average"); };
  FER_CUDA_CHECK(kc::pool2d_backward(s, mode, x, y, dy, dx, m.stream), what());
  m.after_op("pool2d_backward", what);
}

void CudaBackend::dropout_forward(int64_t n, float rate, uint64_t seed, uint64_t stream_id,
                                  const float* x, float* y) {
  Impl& m = *impl_;
  ensure_device(m.device);
  const auto what = [&] { return "dropout n=" + std::to_string(n) + " rate=" + std::to_string(rate); };
  FER_CUDA_CHECK(kc::dropout_apply(n, rate, seed, stream_id, x, y, m.stream), what());
  m.after_op("dropout_forward", what);
}

void CudaBackend::dropout_backward(int64_t n, float rate, uint64_t seed, uint64_t stream_id,
                                   const float* dy, float* dx) {
  Impl& m = *impl_;
  ensure_device(m.device);
  const auto what = [&] { return "dropout n=" + std::to_string(n) + " rate=" + std::to_string(rate); };
  FER_CUDA_CHECK(kc::dropout_apply(n, rate, seed, stream_id, dy, dx, m.stream), what());
  m.after_op("dropout_backward", what);
}

// ------------------------------------------------------------------------------------------------
// Loss, optimizers, input.

void CudaBackend::softmax_cross_entropy(int rows, int classes, const float* logits,
                                        const int32_t* labels, float* dlogits, float grad_scale,
                                        double* metrics) {
  Impl& m = *impl_;
  ensure_device(m.device);
  const auto what = [&] {
    return "softmax_cross_entropy rows=" + std::to_string(rows) +
           " classes=" + std::to_string(classes);
  };
  FER_CUDA_CHECK(kc::softmax_cross_entropy(rows, classes, logits, labels, dlogits, grad_scale,
                                           metrics, m.stream),
                 what());
  m.after_op("softmax_cross_entropy", what);
}

void CudaBackend::adam_update(int64_t n, float* params, const float* grads, float* mom, float* v,
                              const AdamParams& p) {
  Impl& m = *impl_;
  ensure_device(m.device);
  const auto what = [&] { return "adam n=" + std::to_string(n) + " step=" + std::to_string(p.step); };
  FER_CUDA_CHECK(kc::adam_update(n, params, grads, mom, v, p, m.stream), what());
  m.after_op("adam_update", what);
}

void CudaBackend::sgd_update(int64_t n, float* params, const float* grads, float* velocity,
                             const SgdParams& p) {
  Impl& m = *impl_;
  ensure_device(m.device);
  const auto what = [&] { return "sgd n=" + std::to_string(n); };
  FER_CUDA_CHECK(kc::sgd_update(n, params, grads, velocity, p, m.stream), what());
  m.after_op("sgd_update", what);
}

void CudaBackend::images_to_float(int n, int h, int w, const uint8_t* src,
                                  const AugmentDraw* draws, float* dst) {
  Impl& m = *impl_;
  ensure_device(m.device);
  const auto what = [&] {
    return "images_to_float n=" + std::to_string(n) + " " + std::to_string(h) + "x" +
           std::to_string(w);
  };
  try {
    kc::images_to_float(n, h, w, src, draws, dst, m.stream);
  } catch (const std::exception& e) {
    cuda_check::fail("CUDA", "kernels::cuda::images_to_float", e.what(), __FILE__, __LINE__,
                     what());
  }
  m.after_op("images_to_float", what);
}

void CudaBackend::gather_rows(int n, const int32_t* indices, const uint8_t* images,
                              const int32_t* labels, int64_t row_bytes, uint8_t* dst_images,
                              int32_t* dst_labels) {
  Impl& m = *impl_;
  ensure_device(m.device);
  const auto what = [&] {
    return "gather_rows n=" + std::to_string(n) + " row_bytes=" + std::to_string(row_bytes);
  };
  FER_CUDA_CHECK(kc::gather_rows(n, indices, images, labels, row_bytes, dst_images, dst_labels,
                                 m.stream),
                 what());
  m.after_op("gather_rows", what);
}

void CudaBackend::augment_draws(int n, const int32_t* indices, const int64_t* keys, uint64_t seed,
                                uint64_t epoch, const kernels::AugmentConfig& cfg,
                                AugmentDraw* dst) {
  Impl& m = *impl_;
  ensure_device(m.device);
  const auto what = [&] {
    return "augment_draws n=" + std::to_string(n) + " epoch=" + std::to_string(epoch);
  };
  FER_CUDA_CHECK(kc::augment_draws(n, indices, keys, seed, epoch, cfg, dst, m.stream), what());
  m.after_op("augment_draws", what);
}

// ------------------------------------------------------------------------------------------------

std::unique_ptr<Backend> make_cuda_backend(int device_ordinal, const BackendOptions& options) {
  return std::make_unique<CudaBackend>(device_ordinal, options);
}

}  // namespace fer
