// The GPU convolution: CudaBackend::conv2d_* through cuDNN (NHWC activations, OHWI = cuDNN's
// NHWC/KRSC filters). See cuda_backend.h for the contract and the padding scheme, conv_cudnn.h for
// the plan, conv_algo_choice.h for the order algorithms are tried in.
#include "engine/cuda/conv_cudnn.h"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/cuda/backend_impl.h"
#include "engine/cuda/conv_algo_choice.h"
#include "engine/error.h"
#include "kernels/cuda/bias.cuh"
#include "kernels/cuda/cast.cuh"
#include "kernels/cuda/launch_util.cuh"
#include "kernels/cuda/conv_pad.cuh"

namespace fer {

namespace kc = kernels::cuda;
using cuda_detail::ensure_device;

// ------------------------------------------------------------------------------------------------
// The three passes as cuDNN spells them: one traits class per pass, so that planning is written
// once (ConvPlanCache::choose) for all three.

namespace {

// Algorithms needing more scratch than this are passed over (FFT variants can ask for GiBs).
constexpr size_t kMaxConvWorkspaceBytes = size_t(512) << 20;

template <ConvPass P>
struct CudnnPass;

template <>
struct CudnnPass<ConvPass::forward> {
  using Perf = cudnnConvolutionFwdAlgoPerf_t;
  using Algo = cudnnConvolutionFwdAlgo_t;
  static constexpr const char* label = "forward";
  static constexpr const char* tag = "fwd";
  static const char* name(int a) {
    switch (Algo(a)) {
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
  // Deterministic mode's preference, best first: the implicit-GEMM family (no extra workspace to
  // speak of, every shape), then the transform-based ones. Fixed here so every process agrees.
  static const std::vector<int>& preference() {
    static const std::vector<int> v = {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM,
                                       CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
                                       CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED,
                                       CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING,
                                       CUDNN_CONVOLUTION_FWD_ALGO_GEMM};
    return v;
  }
  static cudnnStatus_t max_count(cudnnHandle_t h, int* n) {
    return cudnnGetConvolutionForwardAlgorithmMaxCount(h, n);
  }
  static cudnnStatus_t find(cudnnHandle_t h, const ConvPlan& p, cudnnConvolutionDescriptor_t d,
                            int n, int* r, Perf* out) {
    return cudnnFindConvolutionForwardAlgorithm(h, p.x_desc, p.w_desc, d, p.y_desc, n, r, out);
  }
  static cudnnStatus_t heuristic(cudnnHandle_t h, const ConvPlan& p,
                                 cudnnConvolutionDescriptor_t d, int n, int* r, Perf* out) {
    return cudnnGetConvolutionForwardAlgorithm_v7(h, p.x_desc, p.w_desc, d, p.y_desc, n, r, out);
  }
  static cudnnStatus_t workspace(cudnnHandle_t h, const ConvPlan& p,
                                 cudnnConvolutionDescriptor_t d, Algo a, size_t* ws) {
    return cudnnGetConvolutionForwardWorkspaceSize(h, p.x_desc, p.w_desc, d, p.y_desc, a, ws);
  }
};

template <>
struct CudnnPass<ConvPass::backward_data> {
  using Perf = cudnnConvolutionBwdDataAlgoPerf_t;
  using Algo = cudnnConvolutionBwdDataAlgo_t;
  static constexpr const char* label = "backward-data";
  static constexpr const char* tag = "bwd_data";
  static const char* name(int a) {
    switch (Algo(a)) {
      case CUDNN_CONVOLUTION_BWD_DATA_ALGO_0: return "ALGO_0";
      case CUDNN_CONVOLUTION_BWD_DATA_ALGO_1: return "ALGO_1";
      case CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT: return "FFT";
      case CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING: return "FFT_TILING";
      case CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD: return "WINOGRAD";
      case CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED: return "WINOGRAD_NONFUSED";
      default: return "?";
    }
  }
  static const std::vector<int>& preference() {
    static const std::vector<int> v = {CUDNN_CONVOLUTION_BWD_DATA_ALGO_1,
                                       CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED,
                                       CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING};
    return v;
  }
  static cudnnStatus_t max_count(cudnnHandle_t h, int* n) {
    return cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h, n);
  }
  static cudnnStatus_t find(cudnnHandle_t h, const ConvPlan& p, cudnnConvolutionDescriptor_t d,
                            int n, int* r, Perf* out) {
    return cudnnFindConvolutionBackwardDataAlgorithm(h, p.w_desc, p.y_desc, d, p.x_desc, n, r, out);
  }
  static cudnnStatus_t heuristic(cudnnHandle_t h, const ConvPlan& p,
                                 cudnnConvolutionDescriptor_t d, int n, int* r, Perf* out) {
    return cudnnGetConvolutionBackwardDataAlgorithm_v7(h, p.w_desc, p.y_desc, d, p.x_desc, n, r,
                                                       out);
  }
  static cudnnStatus_t workspace(cudnnHandle_t h, const ConvPlan& p,
                                 cudnnConvolutionDescriptor_t d, Algo a, size_t* ws) {
    return cudnnGetConvolutionBackwardDataWorkspaceSize(h, p.w_desc, p.y_desc, d, p.x_desc, a, ws);
  }
};

template <>
struct CudnnPass<ConvPass::backward_filter> {
  using Perf = cudnnConvolutionBwdFilterAlgoPerf_t;
  using Algo = cudnnConvolutionBwdFilterAlgo_t;
  static constexpr const char* label = "backward-filter";
  static constexpr const char* tag = "bwd_filter";
  static const char* name(int a) {
    switch (Algo(a)) {
      case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0: return "ALGO_0";
      case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1: return "ALGO_1";
      case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT: return "FFT";
      case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3: return "ALGO_3";
      case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD_NONFUSED: return "WINOGRAD_NONFUSED";
      case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT_TILING: return "FFT_TILING";
      default: return "?";
    }
  }
  static const std::vector<int>& preference() {
    static const std::vector<int> v = {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1,
                                       CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD_NONFUSED,
                                       CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT_TILING};
    return v;
  }
  static cudnnStatus_t max_count(cudnnHandle_t h, int* n) {
    return cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(h, n);
  }
  static cudnnStatus_t find(cudnnHandle_t h, const ConvPlan& p, cudnnConvolutionDescriptor_t d,
                            int n, int* r, Perf* out) {
    return cudnnFindConvolutionBackwardFilterAlgorithm(h, p.x_desc, p.y_desc, d, p.w_desc, n, r,
                                                       out);
  }
  static cudnnStatus_t heuristic(cudnnHandle_t h, const ConvPlan& p,
                                 cudnnConvolutionDescriptor_t d, int n, int* r, Perf* out) {
    return cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, p.x_desc, p.y_desc, d, p.w_desc, n, r,
                                                         out);
  }
  static cudnnStatus_t workspace(cudnnHandle_t h, const ConvPlan& p,
                                 cudnnConvolutionDescriptor_t d, Algo a, size_t* ws) {
    return cudnnGetConvolutionBackwardFilterWorkspaceSize(h, p.x_desc, p.y_desc, d, p.w_desc, a,
                                                          ws);
  }
};

const char* math_name(cudnnMathType_t m) {
  switch (m) {
    case CUDNN_DEFAULT_MATH: return "default";
    case CUDNN_TENSOR_OP_MATH: return "tensor_op";
    case CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION: return "tensor_op_conv";
    case CUDNN_FMA_MATH: return "fma";
    default: return "?";
  }
}

template <ConvPass P>
std::string describe_pass(const ConvPlan& plan) {
  const ConvPassPlan& p = plan.pass(P);
  return std::string(CudnnPass<P>::tag) + "=" + CudnnPass<P>::name(p.algo) + "/" +
         math_name(p.math) + "(" + std::to_string(p.workspace) + "B)";
}

std::array<int, 14> conv_key(const ConvShape& s) {
  return {s.n,        s.h,        s.w,       s.c,        s.k,  s.kh, s.kw, s.stride_h,
          s.stride_w, s.pad_top, s.pad_left, s.oh, s.ow, int(s.math)};
}

bool is_bf16(const ConvShape& s) { return s.math == kernels::MathType::bf16; }

}  // namespace

cudnnDataType_t cudnn_data_type(const ConvShape& s) {
  return is_bf16(s) ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
}

ConvPlan::~ConvPlan() {
  if (x_desc) cudnnDestroyTensorDescriptor(x_desc);
  if (y_desc) cudnnDestroyTensorDescriptor(y_desc);
  if (w_desc) cudnnDestroyFilterDescriptor(w_desc);
  for (ConvPassPlan& p : passes) {
    if (p.desc) cudnnDestroyConvolutionDescriptor(p.desc);
  }
}

std::string ConvPlan::algorithms() const {
  return std::string(pad.padded_copy ? "padded-copy " : "direct ") +
         describe_pass<ConvPass::forward>(*this) + " " +
         describe_pass<ConvPass::backward_data>(*this) + " " +
         describe_pass<ConvPass::backward_filter>(*this) +
         " workspace=" + std::to_string(total_ws) + "B";
}

// ------------------------------------------------------------------------------------------------
// Plans and algorithm selection.

const ConvPlan& ConvPlanCache::plan(const ConvShape& s, bool reported) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = plans_.find(conv_key(s));
  if (it == plans_.end()) {
    size_t cap = kMaxConvWorkspaceBytes;
    if (!reported) {
      // The padded copy and the bf16 operand copies come before cuDNN's part.
      const size_t fixed_bytes = plan_conv_workspace(s, plan_conv_padding(s)).cudnn;
      if (fixed_bytes > max_reported_ws_) {
        throw DeviceError("conv2d shape never planned and its padded/bf16 copies (" +
                          std::to_string(fixed_bytes) + " bytes) exceed the largest workspace " +
                          "planned (" + std::to_string(max_reported_ws_) +
                          " bytes): ask conv2d_workspace_bytes for every batch size while " +
                          "planning; " + describe(s));
      }
      cap = std::min(cap, max_reported_ws_ - fixed_bytes);
    }
    it = plans_.emplace(conv_key(s), build(s, cap)).first;
  }
  return *it->second;
}

size_t ConvPlanCache::report(const ConvShape& s) {
  const size_t bytes = plan(s, true).total_ws;
  std::lock_guard<std::mutex> lock(mutex_);
  max_reported_ws_ = std::max(max_reported_ws_, bytes);
  return bytes;
}

std::unique_ptr<ConvPlan> ConvPlanCache::build(const ConvShape& s, size_t cudnn_ws_cap) {
  auto p = std::make_unique<ConvPlan>();
  p->shape = s;
  p->pad = plan_conv_padding(s);
  const std::string what = describe(s);
  FER_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->x_desc), what);
  FER_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->y_desc), what);
  FER_CUDNN_CHECK(cudnnCreateFilterDescriptor(&p->w_desc), what);
  for (ConvPassPlan& pass : p->passes) {
    FER_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&pass.desc), what);
  }

  // cudnnSetTensor4dDescriptor takes dimensions in (n, c, h, w) order whatever the layout.
  const cudnnDataType_t type = cudnn_data_type(s);
  FER_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->x_desc, CUDNN_TENSOR_NHWC, type, s.n, s.c,
                                             p->pad.in_h, p->pad.in_w),
                  what);
  FER_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->y_desc, CUDNN_TENSOR_NHWC, type, s.n, s.k, s.oh,
                                             s.ow),
                  what);
  // NHWC filter format = KRSC = our OHWI weights.
  FER_CUDNN_CHECK(cudnnSetFilter4dDescriptor(p->w_desc, type, CUDNN_TENSOR_NHWC, s.k, s.c, s.kh,
                                             s.kw),
                  what);
  const cudnnMathType_t search_math = tensor_math(s) ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
  for (ConvPassPlan& pass : p->passes) {
    // Cross-correlation: TensorFlow's convolution (no kernel flip). The compute type is FP32 in
    // both precisions: bf16 products accumulate in FP32.
    FER_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(pass.desc, p->pad.pad_h, p->pad.pad_w,
                                                    s.stride_h, s.stride_w, 1, 1,
                                                    CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT),
                    what);
    FER_CUDNN_CHECK(cudnnSetConvolutionMathType(pass.desc, search_math), what);
  }
  int on = 0, ok = 0, oh = 0, ow = 0;
  FER_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(p->pass(ConvPass::forward).desc, p->x_desc,
                                                        p->w_desc, &on, &ok, &oh, &ow),
                  what);
  if (on != s.n || ok != s.k || oh != s.oh || ow != s.ow) {
    throw DeviceError("internal error: cuDNN computes output [" + std::to_string(on) + "," +
                      std::to_string(oh) + "," + std::to_string(ow) + "," + std::to_string(ok) +
                      "] for " + what + " (padding plan " +
                      (p->pad.padded_copy ? "padded copy" : "direct") + ")");
  }

  choose<ConvPass::forward>(*p, cudnn_ws_cap);
  choose<ConvPass::backward_data>(*p, cudnn_ws_cap);
  choose<ConvPass::backward_filter>(*p, cudnn_ws_cap);

  p->layout = plan_conv_workspace(s, p->pad);
  size_t largest = 0;
  for (const ConvPassPlan& pass : p->passes) largest = std::max(largest, pass.workspace);
  p->total_ws = p->layout.total(largest);
  return p;
}

// The one selection rule for all three passes. Candidates are walked in the order
// conv_algo_try_order gives (engine/cuda/conv_algo_choice.h): by default the measured cudnnFind*
// results (fastest first), then cuDNN's heuristic list as a fallback; in deterministic mode the
// heuristic list alone (no timing enters) in a fixed preference order. A candidate is taken when
// cuDNN confirms it for the descriptor's final math type by answering its workspace size within
// the cap.
template <ConvPass P>
void ConvPlanCache::choose(ConvPlan& p, size_t cap) {
  using Pass = CudnnPass<P>;
  using Perf = typename Pass::Perf;
  const std::string what = describe(p.shape);
  ConvPassPlan& out = p.pass(P);
  int max_count = 0;
  FER_CUDNN_CHECK(Pass::max_count(cudnn_, &max_count), what);
  max_count = std::max(max_count, 1);

  std::vector<Perf> candidates, buf(static_cast<size_t>(max_count));
  int returned = 0;
  if (!deterministic_ &&
      Pass::find(cudnn_, p, out.desc, max_count, &returned, buf.data()) == CUDNN_STATUS_SUCCESS) {
    candidates.insert(candidates.end(), buf.begin(), buf.begin() + returned);
  }
  cudaGetLastError();  // a failed search may leave a (non-sticky) error behind
  returned = 0;
  if (Pass::heuristic(cudnn_, p, out.desc, max_count, &returned, buf.data()) ==
      CUDNN_STATUS_SUCCESS) {
    candidates.insert(candidates.end(), buf.begin(), buf.begin() + returned);
  }
  std::vector<ConvAlgoCandidate> plain;
  for (const Perf& c : candidates) {
    plain.push_back({int(c.algo), c.status == CUDNN_STATUS_SUCCESS,
                     c.determinism == CUDNN_DETERMINISTIC, int(c.mathType), c.memory, c.time});
  }
  for (size_t i : conv_algo_try_order(plain, cap, deterministic_,
                                      int(CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION),
                                      Pass::preference())) {
    const Perf& c = candidates[i];
    const cudnnMathType_t math = tensor_math(p.shape) ? c.mathType : CUDNN_FMA_MATH;
    if (cudnnSetConvolutionMathType(out.desc, math) != CUDNN_STATUS_SUCCESS) continue;
    size_t ws = 0;
    if (Pass::workspace(cudnn_, p, out.desc, c.algo, &ws) != CUDNN_STATUS_SUCCESS || ws > cap) {
      continue;
    }
    out.algo = int(c.algo);
    out.math = math;
    out.workspace = std::max(ws, c.memory);
    return;
  }
  throw DeviceError(std::string("cuDNN has no usable ") + Pass::label + " algorithm for " + what +
                    " (" + std::to_string(candidates.size()) + " candidates, workspace cap " +
                    std::to_string(cap) + " bytes" +
                    (deterministic_ ? ", deterministic only)" : ")"));
}

// ------------------------------------------------------------------------------------------------
// CudaBackend's convolution ops.

std::string CudaBackend::conv_algorithms(const ConvShape& s) {
  ensure_device(impl_->device);
  return impl_->convs->plan(s, true).algorithms();
}

size_t CudaBackend::conv2d_workspace_bytes(const ConvShape& s) {
  ensure_device(impl_->device);
  return impl_->convs->report(s);
}

namespace {

void require_workspace(const ConvPlan& p, const void* workspace) {
  if (p.total_ws > 0 && workspace == nullptr) {
    throw DeviceError("conv2d: null workspace, " + std::to_string(p.total_ws) +
                      " bytes needed (ask conv2d_workspace_bytes) for " + describe(p.shape));
  }
}

}  // namespace

// One convolution call's view of its workspace: the FP32 padded copy, the bf16 operand copies and
// cuDNN's scratch (conv_plan.h), and the casts between FP32 buffers and the bf16 copies.
struct ConvCall {
  const ConvPlan& p;
  char* ws;
  cudaStream_t stream;

  float* xp() const { return p.pad.padded_copy ? reinterpret_cast<float*>(ws + p.layout.xp) : nullptr; }
  uint16_t* x_bf16() const { return reinterpret_cast<uint16_t*>(ws + p.layout.x_bf16); }
  uint16_t* w_bf16() const { return reinterpret_cast<uint16_t*>(ws + p.layout.w_bf16); }
  uint16_t* y_bf16() const { return reinterpret_cast<uint16_t*>(ws + p.layout.y_bf16); }
  void* cudnn_ws(ConvPass pass) const {
    return p.pass(pass).workspace ? ws + p.layout.cudnn : nullptr;
  }
  int64_t in_elems() const { return int64_t(p.shape.n) * p.pad.in_h * p.pad.in_w * p.shape.c; }

  // The x operand cuDNN reads: x itself, its padded copy, or (bf16) a bf16 copy of either.
  template <class What>
  const void* x_operand(const float* x, const What& what) const {
    const ConvShape& s = p.shape;
    const float* xin = x;
    if (float* pad = xp()) {
      FER_CUDA_CHECK(kc::pad_nhwc(s.n, s.h, s.w, s.c, s.pad_top, s.pad_left, p.pad.in_h,
                                  p.pad.in_w, x, pad, stream),
                     what());
      xin = pad;
    }
    if (s.math != kernels::MathType::bf16) return xin;
    FER_CUDA_CHECK(kc::float_to_bf16(in_elems(), xin, x_bf16(), stream), what());
    return x_bf16();
  }
  // w, or (bf16) its bf16 copy.
  template <class What>
  const void* w_operand(const float* w, const What& what) const {
    if (p.shape.math != kernels::MathType::bf16) return w;
    FER_CUDA_CHECK(kc::float_to_bf16(p.shape.w_size(), w, w_bf16(), stream), what());
    return w_bf16();
  }
  // dy, or (bf16) its bf16 copy.
  template <class What>
  const void* dy_operand(const float* dy, const What& what) const {
    if (p.shape.math != kernels::MathType::bf16) return dy;
    FER_CUDA_CHECK(kc::float_to_bf16(p.shape.y_size(), dy, y_bf16(), stream), what());
    return y_bf16();
  }
  // Where cuDNN writes a result that belongs in the FP32 buffer `out` of `n` elements: out itself,
  // or (bf16) the bf16 part `bf16` of the workspace, widened into out by widen().
  void* result(float* out, uint16_t* bf16) const {
    return p.shape.math == kernels::MathType::bf16 ? static_cast<void*>(bf16) : out;
  }
  template <class What>
  void widen(int64_t n, const uint16_t* bf16, float* out, const What& what) const {
    if (p.shape.math != kernels::MathType::bf16) return;
    FER_CUDA_CHECK(kc::bf16_to_float(n, bf16, out, stream), what());
  }
};

// bf16 (MathType::bf16): cuDNN reads bf16 copies of x, w and dy made here, accumulates in FP32 and
// writes bf16 results (the legacy API has no bf16-in, FP32-out convolution), which are widened
// into the FP32 outputs, so y, dx and dw carry one more rounding to bf16 (relative <= 2^-8) than
// the CPU backend's. The bias and its gradient stay FP32 (from the FP32 dy).
void CudaBackend::conv2d_forward(const ConvShape& s, const float* x, const float* w,
                                 const float* b, float* y, void* workspace) {
  Impl& m = *impl_;
  ensure_device(m.device);
  const ConvPlan& p = m.convs->plan(s, false);
  require_workspace(p, workspace);
  const ConvCall call{p, static_cast<char*>(workspace), m.stream};
  const ConvPassPlan& fwd = p.pass(ConvPass::forward);
  const auto what = [&] { return describe(s) + " [" + p.algorithms() + "]"; };
  const void* xin = call.x_operand(x, what);
  const void* win = call.w_operand(w, what);
  void* yout = call.result(y, call.y_bf16());
  const float one = 1.0f, zero = 0.0f;
  FER_CUDNN_CHECK(cudnnConvolutionForward(m.cudnn, &one, p.x_desc, xin, p.w_desc, win, fwd.desc,
                                          cudnnConvolutionFwdAlgo_t(fwd.algo),
                                          call.cudnn_ws(ConvPass::forward), fwd.workspace, &zero,
                                          p.y_desc, yout),
                  what());
  call.widen(s.y_size(), call.y_bf16(), y, what);
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
  const ConvPlan& p = m.convs->plan(s, false);
  require_workspace(p, workspace);
  const ConvCall call{p, static_cast<char*>(workspace), m.stream};
  const auto what = [&] { return describe(s) + " [" + p.algorithms() + "]"; };
  const float one = 1.0f, zero = 0.0f;
  const void* dyin = (dw || dx) ? call.dy_operand(dy, what) : nullptr;

  if (dw) {
    const ConvPassPlan& bf = p.pass(ConvPass::backward_filter);
    const void* xin = call.x_operand(x, what);
    // bf16: the weight gradient lands in the bf16 w part (w's copy is made after, for dx).
    void* dwout = call.result(dw, call.w_bf16());
    FER_CUDNN_CHECK(cudnnConvolutionBackwardFilter(m.cudnn, &one, p.x_desc, xin, p.y_desc, dyin,
                                                   bf.desc, cudnnConvolutionBwdFilterAlgo_t(bf.algo),
                                                   call.cudnn_ws(ConvPass::backward_filter),
                                                   bf.workspace, &zero, p.w_desc, dwout),
                    what());
    call.widen(s.w_size(), call.w_bf16(), dw, what);
  }
  if (db) {
    FER_CUDA_CHECK(kc::bias_grad(int64_t(s.n) * s.oh * s.ow, s.k, dy, db, m.reduce_scratch,
                                 kc::kReduceScratchBytes, m.stream), what());
  }
  if (dx) {
    const ConvPassPlan& bd = p.pass(ConvPass::backward_data);
    const void* win = call.w_operand(w, what);
    // With a padded copy the gradient of xp lands in the xp buffer (the filter pass above, earlier
    // on the same stream, is done with it), then is cropped into dx. bf16: cuDNN writes it into
    // the bf16 x part, widened into xp (or dx).
    float* xp = call.xp();
    float* target = xp ? xp : dx;
    void* dxout = call.result(target, call.x_bf16());
    FER_CUDNN_CHECK(cudnnConvolutionBackwardData(m.cudnn, &one, p.w_desc, win, p.y_desc, dyin,
                                                 bd.desc, cudnnConvolutionBwdDataAlgo_t(bd.algo),
                                                 call.cudnn_ws(ConvPass::backward_data),
                                                 bd.workspace, &zero, p.x_desc, dxout),
                    what());
    call.widen(call.in_elems(), call.x_bf16(), target, what);
    if (xp) {
      FER_CUDA_CHECK(kc::crop_nhwc(s.n, s.h, s.w, s.c, s.pad_top, s.pad_left, p.pad.in_h,
                                   p.pad.in_w, xp, dx, m.stream),
                     what());
    }
  }
  m.after_op("conv2d_backward", what);
}

}  // namespace fer
