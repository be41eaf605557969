#include "kernels/cpu/conv2d_onednn.h"

#ifdef FER_HAVE_ONEDNN

#include <algorithm>
#include <array>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unordered_map>

#include <dnnl.hpp>

#include "kernels/cpu/onednn_common.h"

#include "kernels/cpu/bf16.h"

namespace fer::kernels::cpu::onednn {
namespace {

using dnnl::memory;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

constexpr size_t kAlign = 64;
size_t aligned(size_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

using onednn_common::cpu_engine;
using onednn_common::cpu_stream;
using onednn_common::is_reference;

std::string describe(const ConvShape& s) {
  return "conv2d n=" + std::to_string(s.n) + " in=" + std::to_string(s.h) + "x" +
         std::to_string(s.w) + "x" + std::to_string(s.c) + " k=" + std::to_string(s.k) + " " +
         std::to_string(s.kh) + "x" + std::to_string(s.kw) + " stride=" +
         std::to_string(s.stride_h) + "x" + std::to_string(s.stride_w) + " pad=" +
         std::to_string(s.pad_top) + "," + std::to_string(s.pad_left) + " out=" +
         std::to_string(s.oh) + "x" + std::to_string(s.ow) +
         (s.math == MathType::bf16 ? " bf16" : "");
}

// The three primitives of one shape, with the weight reorders they need and the workspace layout.
// Always built with a bias: a call without one passes zeros (forward) or discards db (backward)
// through a k-float slot of the workspace, so one set of primitives serves both.
// MathType::bf16: the primitives read bf16 x, w and dy (x_op_md, y_op_md, bf16 weights) and write
// FP32 y, dx, dw and db; x and dy are converted into the workspace by reorders built here, and the
// weight reorders convert as they re-layout.
struct Entry {
  memory::desc x_md, y_md, b_md, w_user_md;
  // Operand descriptors: x_md / y_md themselves in FP32, their bf16 twins in bf16.
  memory::desc x_op_md, y_op_md;
  bool convert = false;  // bf16: x and dy are converted (x_to_op, dy_to_op)
  dnnl::reorder x_to_op, dy_to_op;

  bool fwd_ok = false;
  dnnl::convolution_forward::primitive_desc fwd_pd;
  dnnl::convolution_forward fwd;
  memory::desc w_fwd_md;
  bool reorder_w_fwd = false;
  dnnl::reorder w_to_fwd;
  size_t fwd_scratch = 0;

  bool bwd_ok = false;
  dnnl::convolution_backward_data::primitive_desc bd_pd;
  dnnl::convolution_backward_data bd;
  memory::desc w_bd_md;
  bool reorder_w_bd = false;
  dnnl::reorder w_to_bd;
  dnnl::convolution_backward_weights::primitive_desc bw_pd;
  dnnl::convolution_backward_weights bw;
  memory::desc dw_bw_md;
  bool reorder_dw = false;
  dnnl::reorder dw_to_user;
  size_t bwd_scratch = 0;

  // Workspace layout (byte offsets). Forward: [bias k][w_fwd][x_op][scratch].
  // Backward: [db k][w_bd][dw][x_op][dy_op][scratch]. x_op and dy_op are empty in FP32.
  size_t bias_bytes = 0;
  size_t fwd_w_off = 0, fwd_x_off = 0, fwd_scratch_off = 0, fwd_bytes = 0;
  size_t bwd_w_off = 0, bwd_dw_off = 0, bwd_x_off = 0, bwd_dy_off = 0, bwd_scratch_off = 0,
         bwd_bytes = 0;
};

std::unique_ptr<Entry> build(const ConvShape& s) {
  auto e = std::make_unique<Entry>();
  if (s.n <= 0 || s.oh <= 0 || s.ow <= 0 || s.k <= 0 || s.c <= 0) return e;
  const bool bf16 = s.math == MathType::bf16;
  // Without bf16 instructions oneDNN 2.6 has no bf16 convolution at all (not even its reference
  // loops); conv2d.cpp then emulates (bf16.h).
  if (bf16 && !cpu_bf16_support().native()) return e;
  const dt op = bf16 ? dt::bf16 : dt::f32;
  dnnl::engine& eng = cpu_engine();
  const memory::dims x_dims = {s.n, s.c, s.h, s.w}, y_dims = {s.n, s.k, s.oh, s.ow},
                     w_dims = {s.k, s.c, s.kh, s.kw}, b_dims = {s.k};
  const memory::dims strides = {s.stride_h, s.stride_w}, pad_l = {s.pad_top, s.pad_left};
  // oneDNN wants the trailing padding that makes (in + pad_l + pad_r - kernel) / stride + 1 = out.
  const memory::dims pad_r = {int64_t(s.oh - 1) * s.stride_h + s.kh - s.h - s.pad_top,
                              int64_t(s.ow - 1) * s.stride_w + s.kw - s.w - s.pad_left};
  e->x_md = memory::desc(x_dims, dt::f32, tag::nhwc);
  e->y_md = memory::desc(y_dims, dt::f32, tag::nhwc);
  e->b_md = memory::desc(b_dims, dt::f32, tag::a);
  e->w_user_md = memory::desc(w_dims, dt::f32, tag::ohwi);
  e->x_op_md = bf16 ? memory::desc(x_dims, op, tag::nhwc) : e->x_md;
  e->y_op_md = bf16 ? memory::desc(y_dims, op, tag::nhwc) : e->y_md;
  e->convert = bf16;
  const memory::desc w_any(w_dims, op, tag::any);
  // The weight gradient stays FP32 (FP32 accumulation over the whole batch, FP32 master weights).
  const memory::desc dw_any(w_dims, dt::f32, tag::any);

  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  // Direct convolution only: no Winograd or other approximate algorithms.
  const auto alg = dnnl::algorithm::convolution_direct;
  try {
    dnnl::convolution_forward::desc fd(dnnl::prop_kind::forward_training, alg, e->x_op_md, w_any,
                                       e->b_md, e->y_md, strides, pad_l, pad_r);
    e->fwd_pd = dnnl::convolution_forward::primitive_desc(fd, attr, eng);
  } catch (const dnnl::error&) {
    return e;  // oneDNN does not take this shape (e.g. negative trailing padding): im2col does
  }
  e->bias_bytes = aligned(sizeof(float) * size_t(s.k));
  if (bf16) {
    e->x_to_op = dnnl::reorder(dnnl::reorder::primitive_desc(eng, e->x_md, eng, e->x_op_md));
    e->dy_to_op = dnnl::reorder(dnnl::reorder::primitive_desc(eng, e->y_md, eng, e->y_op_md));
  }
  const size_t x_op_bytes = bf16 ? aligned(e->x_op_md.get_size()) : 0;
  const size_t dy_op_bytes = bf16 ? aligned(e->y_op_md.get_size()) : 0;
  if (!is_reference(e->fwd_pd.impl_info_str()) && e->fwd_pd.src_desc() == e->x_op_md &&
      e->fwd_pd.dst_desc() == e->y_md) {
    e->fwd = dnnl::convolution_forward(e->fwd_pd);
    e->w_fwd_md = e->fwd_pd.weights_desc();
    e->reorder_w_fwd = e->w_fwd_md != e->w_user_md;
    if (e->reorder_w_fwd) {
      e->w_to_fwd = dnnl::reorder(dnnl::reorder::primitive_desc(eng, e->w_user_md, eng, e->w_fwd_md));
    }
    e->fwd_scratch = e->fwd_pd.scratchpad_desc().get_size();
    e->fwd_w_off = e->bias_bytes;
    e->fwd_x_off = e->fwd_w_off + (e->reorder_w_fwd ? aligned(e->w_fwd_md.get_size()) : 0);
    e->fwd_scratch_off = e->fwd_x_off + x_op_bytes;
    e->fwd_bytes = e->fwd_scratch_off + aligned(e->fwd_scratch);
    e->fwd_ok = true;
  }

  try {
    dnnl::convolution_backward_data::desc bdd(alg, e->x_md, w_any, e->y_op_md, strides, pad_l,
                                              pad_r);
    e->bd_pd = dnnl::convolution_backward_data::primitive_desc(bdd, attr, eng, e->fwd_pd);
    dnnl::convolution_backward_weights::desc bwd(alg, e->x_op_md, dw_any, e->b_md, e->y_op_md,
                                                 strides, pad_l, pad_r);
    e->bw_pd = dnnl::convolution_backward_weights::primitive_desc(bwd, attr, eng, e->fwd_pd);
  } catch (const dnnl::error&) {
    return e;
  }
  if (is_reference(e->bd_pd.impl_info_str()) || is_reference(e->bw_pd.impl_info_str()) ||
      e->bd_pd.diff_src_desc() != e->x_md || e->bd_pd.diff_dst_desc() != e->y_op_md ||
      e->bw_pd.src_desc() != e->x_op_md || e->bw_pd.diff_dst_desc() != e->y_op_md ||
      e->bw_pd.diff_bias_desc() != e->b_md) {
    return e;
  }
  e->bd = dnnl::convolution_backward_data(e->bd_pd);
  e->bw = dnnl::convolution_backward_weights(e->bw_pd);
  e->w_bd_md = e->bd_pd.weights_desc();
  e->reorder_w_bd = e->w_bd_md != e->w_user_md;
  if (e->reorder_w_bd) {
    e->w_to_bd = dnnl::reorder(dnnl::reorder::primitive_desc(eng, e->w_user_md, eng, e->w_bd_md));
  }
  e->dw_bw_md = e->bw_pd.diff_weights_desc();
  e->reorder_dw = e->dw_bw_md != e->w_user_md;
  if (e->reorder_dw) {
    e->dw_to_user = dnnl::reorder(dnnl::reorder::primitive_desc(eng, e->dw_bw_md, eng, e->w_user_md));
  }
  e->bwd_scratch = std::max(e->bd_pd.scratchpad_desc().get_size(), e->bw_pd.scratchpad_desc().get_size());
  e->bwd_w_off = e->bias_bytes;
  e->bwd_dw_off = e->bwd_w_off + (e->reorder_w_bd ? aligned(e->w_bd_md.get_size()) : 0);
  e->bwd_x_off = e->bwd_dw_off + (e->reorder_dw ? aligned(e->dw_bw_md.get_size()) : 0);
  e->bwd_dy_off = e->bwd_x_off + x_op_bytes;
  e->bwd_scratch_off = e->bwd_dy_off + dy_op_bytes;
  e->bwd_bytes = e->bwd_scratch_off + aligned(e->bwd_scratch);
  e->bwd_ok = true;
  return e;
}

using Key = std::array<int, 14>;
Key key_of(const ConvShape& s) {
  return {s.n,        s.h,         s.w,         s.c,        s.k,        s.kh,  s.kw,
          s.stride_h, s.stride_w,  s.pad_top,   s.pad_left, s.oh,       s.ow,  int(s.math)};
}

// Built once per shape and never freed or changed afterwards, so callers use an entry without
// holding the lock.
const Entry& entry(const ConvShape& s) {
  static std::mutex mutex;
  static std::map<Key, std::unique_ptr<Entry>> cache;
  const Key key = key_of(s);
  std::lock_guard<std::mutex> lock(mutex);
  auto it = cache.find(key);
  if (it == cache.end()) it = cache.emplace(key, build(s)).first;
  return *it->second;
}

char* at(void* workspace, size_t offset) { return static_cast<char*>(workspace) + offset; }

memory wrap(const memory::desc& md, const void* p) {
  return memory(md, cpu_engine(), const_cast<void*>(p));
}

}  // namespace

bool compiled() { return true; }

bool forward_supported(const ConvShape& s) { return entry(s).fwd_ok; }
bool backward_supported(const ConvShape& s) { return entry(s).bwd_ok; }

size_t workspace_bytes(const ConvShape& s) {
  const Entry& e = entry(s);
  return std::max(e.fwd_ok ? e.fwd_bytes : 0, e.bwd_ok ? e.bwd_bytes : 0);
}

ImplNames impl_names(const ConvShape& s) {
  const Entry& e = entry(s);
  ImplNames n;
  if (e.fwd_ok) n.forward = e.fwd_pd.impl_info_str();
  if (e.bwd_ok) {
    n.backward_data = e.bd_pd.impl_info_str();
    n.backward_weights = e.bw_pd.impl_info_str();
  }
  return n;
}

void forward(const ConvShape& s, const float* x, const float* w, const float* b, float* y,
             void* workspace) {
  const Entry& e = entry(s);
  if (!e.fwd_ok) throw std::logic_error("oneDNN forward called on an unsupported " + describe(s));
  try {
    dnnl::stream& st = cpu_stream();
    if (!b) {
      float* zeros = reinterpret_cast<float*>(at(workspace, 0));
      for (int i = 0; i < s.k; ++i) zeros[i] = 0.0f;
      b = zeros;
    }
    const void* w_used = w;
    if (e.reorder_w_fwd) {
      void* wb = at(workspace, e.fwd_w_off);
      memory from = wrap(e.w_user_md, w), to = wrap(e.w_fwd_md, wb);
      e.w_to_fwd.execute(st, from, to);
      w_used = wb;
    }
    const void* x_used = x;
    if (e.convert) {
      void* xb = at(workspace, e.fwd_x_off);
      memory from = wrap(e.x_md, x), to = wrap(e.x_op_md, xb);
      e.x_to_op.execute(st, from, to);
      x_used = xb;
    }
    std::unordered_map<int, memory> args = {{DNNL_ARG_SRC, wrap(e.x_op_md, x_used)},
                                            {DNNL_ARG_WEIGHTS, wrap(e.w_fwd_md, w_used)},
                                            {DNNL_ARG_BIAS, wrap(e.b_md, b)},
                                            {DNNL_ARG_DST, wrap(e.y_md, y)}};
    if (e.fwd_scratch) {
      args.emplace(DNNL_ARG_SCRATCHPAD,
                   wrap(e.fwd_pd.scratchpad_desc(), at(workspace, e.fwd_scratch_off)));
    }
    e.fwd.execute(st, args);
    st.wait();
  } catch (const dnnl::error& err) {
    throw std::runtime_error(std::string("oneDNN convolution forward failed (") + err.what() +
                             ") on " + describe(s));
  }
}

void backward(const ConvShape& s, const float* x, const float* w, const float* dy, float* dx,
              float* dw, float* db, void* workspace) {
  const Entry& e = entry(s);
  if (!e.bwd_ok) throw std::logic_error("oneDNN backward called on an unsupported " + describe(s));
  try {
    dnnl::stream& st = cpu_stream();
    if (!db) db = reinterpret_cast<float*>(at(workspace, 0));  // computed and discarded
    void* dw_blocked = e.reorder_dw ? static_cast<void*>(at(workspace, e.bwd_dw_off)) : dw;
    void* scratch = at(workspace, e.bwd_scratch_off);
    const void* x_used = x;
    const void* dy_used = dy;
    if (e.convert) {
      void* xb = at(workspace, e.bwd_x_off);
      void* dyb = at(workspace, e.bwd_dy_off);
      memory xf = wrap(e.x_md, x), xt = wrap(e.x_op_md, xb);
      e.x_to_op.execute(st, xf, xt);
      memory df = wrap(e.y_md, dy), dt_ = wrap(e.y_op_md, dyb);
      e.dy_to_op.execute(st, df, dt_);
      x_used = xb;
      dy_used = dyb;
    }
    std::unordered_map<int, memory> wargs = {{DNNL_ARG_SRC, wrap(e.x_op_md, x_used)},
                                             {DNNL_ARG_DIFF_DST, wrap(e.y_op_md, dy_used)},
                                             {DNNL_ARG_DIFF_WEIGHTS, wrap(e.dw_bw_md, dw_blocked)},
                                             {DNNL_ARG_DIFF_BIAS, wrap(e.b_md, db)}};
    const auto bw_scratch = e.bw_pd.scratchpad_desc();
    if (bw_scratch.get_size()) wargs.emplace(DNNL_ARG_SCRATCHPAD, wrap(bw_scratch, scratch));
    e.bw.execute(st, wargs);
    if (e.reorder_dw) {
      memory from = wrap(e.dw_bw_md, dw_blocked), to = wrap(e.w_user_md, dw);
      e.dw_to_user.execute(st, from, to);
    }

    if (dx) {
      const void* w_used = w;
      if (e.reorder_w_bd) {
        void* wb = at(workspace, e.bwd_w_off);
        memory from = wrap(e.w_user_md, w), to = wrap(e.w_bd_md, wb);
        e.w_to_bd.execute(st, from, to);
        w_used = wb;
      }
      std::unordered_map<int, memory> dargs = {{DNNL_ARG_DIFF_DST, wrap(e.y_op_md, dy_used)},
                                               {DNNL_ARG_WEIGHTS, wrap(e.w_bd_md, w_used)},
                                               {DNNL_ARG_DIFF_SRC, wrap(e.x_md, dx)}};
      const auto bd_scratch = e.bd_pd.scratchpad_desc();
      if (bd_scratch.get_size()) dargs.emplace(DNNL_ARG_SCRATCHPAD, wrap(bd_scratch, scratch));
      e.bd.execute(st, dargs);
    }
    st.wait();
  } catch (const dnnl::error& err) {
    throw std::runtime_error(std::string("oneDNN convolution backward failed (") + err.what() +
                             ") on " + describe(s));
  }
}

}  // namespace fer::kernels::cpu::onednn

#else  // no oneDNN in this build: every shape goes to the im2col path

#include <stdexcept>

namespace fer::kernels::cpu::onednn {

bool compiled() { return false; }
bool forward_supported(const ConvShape&) { return false; }
bool backward_supported(const ConvShape&) { return false; }
size_t workspace_bytes(const ConvShape&) { return 0; }
ImplNames impl_names(const ConvShape&) { return {}; }
void forward(const ConvShape&, const float*, const float*, const float*, float*, void*) {
  throw std::logic_error("fer_gpu was built without oneDNN");
}
void backward(const ConvShape&, const float*, const float*, const float*, float*, float*, float*,
              void*) {
  throw std::logic_error("fer_gpu was built without oneDNN");
}

}  // namespace fer::kernels::cpu::onednn

#endif
