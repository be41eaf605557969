#include "kernels/cpu/dense_bf16.h"

#include <array>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <unordered_map>

#include "kernels/cpu/bf16.h"
#include "kernels/cpu/dense.h"
#include "kernels/cpu/parallel.h"

#ifdef FER_HAVE_ONEDNN
#include <dnnl.hpp>

#include "kernels/cpu/onednn_common.h"
#endif

namespace fer::kernels::cpu::dense_bf16 {
namespace {

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};
using Buffer = std::unique_ptr<char, FreeDeleter>;
constexpr size_t kAlign = 64;
size_t aligned(size_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }
Buffer allocate(size_t bytes) {
  void* p = std::aligned_alloc(kAlign, aligned(bytes == 0 ? 1 : bytes));
  if (!p) throw std::bad_alloc();
  return Buffer(static_cast<char*>(p));
}

DenseShape as_f32(const DenseShape& s) {
  DenseShape f = s;
  f.math = MathType::f32;
  return f;
}

std::string describe(const DenseShape& s) {
  return "dense n=" + std::to_string(s.n) + " in=" + std::to_string(s.in) + " out=" +
         std::to_string(s.out) + " bf16";
}

#ifdef FER_HAVE_ONEDNN
using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

using onednn_common::cpu_engine;
using onednn_common::cpu_stream;
using onednn_common::is_reference;
memory wrap(const memory::desc& md, const void* p) {
  return memory(md, cpu_engine(), const_cast<void*>(p));
}

// One product C[m, n] (FP32, row-major, user buffer) = A[m, k] B[k, n] with bf16 operands in the
// layouts the primitive chose, converted from FP32 user descriptors by two reorders.
struct Product {
  dnnl::matmul::primitive_desc pd;
  dnnl::matmul prim;
  memory::desc a_user, b_user, a_op, b_op, c_md, bias_md;
  dnnl::reorder a_to_op, b_to_op;
  Buffer a_buf, b_buf, scratch;
  bool ok = false;
};

// a_user / b_user: the FP32 operands as they lie in memory (a transposed view is a "ba" tag).
void plan_product(Product& p, const memory::desc& a_user, const memory::desc& b_user,
                  const memory::dims& c_dims, bool bias) {
  dnnl::engine& eng = cpu_engine();
  p.a_user = a_user;
  p.b_user = b_user;
  p.c_md = memory::desc(c_dims, dt::f32, tag::ab);
  const memory::desc a_any(a_user.dims(), dt::bf16, tag::any);
  const memory::desc b_any(b_user.dims(), dt::bf16, tag::any);
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  try {
    if (bias) {
      p.bias_md = memory::desc({1, c_dims[1]}, dt::f32, tag::ab);
      p.pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(a_any, b_any, p.bias_md, p.c_md), attr, eng);
    } else {
      p.pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(a_any, b_any, p.c_md), attr, eng);
    }
  } catch (const dnnl::error&) {
    return;
  }
  if (is_reference(p.pd.impl_info_str()) || p.pd.dst_desc() != p.c_md) return;
  p.a_op = p.pd.src_desc();
  p.b_op = p.pd.weights_desc();
  p.prim = dnnl::matmul(p.pd);
  p.a_to_op = dnnl::reorder(dnnl::reorder::primitive_desc(eng, p.a_user, eng, p.a_op));
  p.b_to_op = dnnl::reorder(dnnl::reorder::primitive_desc(eng, p.b_user, eng, p.b_op));
  p.a_buf = allocate(p.a_op.get_size());
  p.b_buf = allocate(p.b_op.get_size());
  p.scratch = allocate(p.pd.scratchpad_desc().get_size());
  p.ok = true;
}

void run_product(const Product& p, const float* a, const float* b, const float* bias, float* c) {
  dnnl::stream& st = cpu_stream();
  memory a_from = wrap(p.a_user, a), a_to = wrap(p.a_op, p.a_buf.get());
  p.a_to_op.execute(st, a_from, a_to);
  memory b_from = wrap(p.b_user, b), b_to = wrap(p.b_op, p.b_buf.get());
  p.b_to_op.execute(st, b_from, b_to);
  std::unordered_map<int, memory> args = {{DNNL_ARG_SRC, a_to},
                                          {DNNL_ARG_WEIGHTS, b_to},
                                          {DNNL_ARG_DST, wrap(p.c_md, c)}};
  if (bias) args.emplace(DNNL_ARG_BIAS, wrap(p.bias_md, bias));
  const auto scratch_md = p.pd.scratchpad_desc();
  if (scratch_md.get_size()) args.emplace(DNNL_ARG_SCRATCHPAD, wrap(scratch_md, p.scratch.get()));
  p.prim.execute(st, args);
  st.wait();
}
#endif

struct Entry {
  std::mutex mutex;
  bool native = false;
#ifdef FER_HAVE_ONEDNN
  Product fwd, dw, dx;  // y = x W (+ b), dW = x^T dy, dx = dy W^T
#endif
  // Emulation: FP32 copies of the rounded operands, allocated on first use.
  Buffer xr, wr, dyr;
  Buffer zeros;  // native forward without a bias: a zero bias of s.out floats
};

std::unique_ptr<Entry> build(const DenseShape& s) {
  auto e = std::make_unique<Entry>();
#ifdef FER_HAVE_ONEDNN
  if (s.n > 0 && s.in > 0 && s.out > 0 && cpu_bf16_support().native()) {
    const int64_t n = s.n, in = s.in, out = s.out;
    const memory::desc x_md({n, in}, dt::f32, tag::ab), xT_md({in, n}, dt::f32, tag::ba);
    const memory::desc w_md({in, out}, dt::f32, tag::ab), wT_md({out, in}, dt::f32, tag::ba);
    const memory::desc dy_md({n, out}, dt::f32, tag::ab);
    plan_product(e->fwd, x_md, w_md, {n, out}, true);
    plan_product(e->dw, xT_md, dy_md, {in, out}, false);
    plan_product(e->dx, dy_md, wT_md, {n, in}, false);
    e->native = e->fwd.ok && e->dw.ok && e->dx.ok;
  }
#endif
  return e;
}

Entry& entry(const DenseShape& s) {
  static std::mutex mutex;
  static std::map<std::array<int, 3>, std::unique_ptr<Entry>> cache;
  const std::array<int, 3> key = {s.n, s.in, s.out};
  std::lock_guard<std::mutex> lock(mutex);
  auto it = cache.find(key);
  if (it == cache.end()) it = cache.emplace(key, build(s)).first;
  return *it->second;
}

bool use_native(const Entry& e) { return e.native && bf16_native_enabled(); }

float* rounded(Buffer& buf, const float* src, int64_t n) {
  if (!buf) buf = allocate(size_t(n) * sizeof(float));
  float* dst = reinterpret_cast<float*>(buf.get());
  round_to_bf16(src, dst, n);
  return dst;
}

}  // namespace

const char* impl_for(const DenseShape& s) {
  return use_native(entry(s)) ? "onednn-bf16" : "bf16-emulated";
}

void forward(const DenseShape& s, const float* x, const float* w, const float* b, float* y) {
  if (s.n == 0 || s.out == 0 || s.in == 0) {
    dense_forward(as_f32(s), x, w, b, y);  // bias broadcast or zeros: no products
    return;
  }
  Entry& e = entry(s);
  std::lock_guard<std::mutex> lock(e.mutex);
#ifdef FER_HAVE_ONEDNN
  if (use_native(e)) {
    try {
      if (b) {
        run_product(e.fwd, x, w, b, y);
      } else {
        // The primitive has a bias argument; a layer without one passes zeros.
        if (!e.zeros) {
          e.zeros = allocate(size_t(s.out) * sizeof(float));
          std::memset(e.zeros.get(), 0, size_t(s.out) * sizeof(float));
        }
        const float* zeros = reinterpret_cast<const float*>(e.zeros.get());
        run_product(e.fwd, x, w, zeros, y);
      }
    } catch (const dnnl::error& err) {
      throw std::runtime_error(std::string("oneDNN bf16 matmul failed (") + err.what() + ") on " +
                               describe(s));
    }
    return;
  }
#endif
  const float* xr = rounded(e.xr, x, int64_t(s.n) * s.in);
  const float* wr = rounded(e.wr, w, int64_t(s.in) * s.out);
  dense_forward(as_f32(s), xr, wr, b, y);
}

void backward(const DenseShape& s, const float* x, const float* w, const float* dy, float* dx,
              float* dw, float* db) {
  if (s.n == 0 || s.out == 0 || s.in == 0) {
    dense_backward(as_f32(s), x, w, dy, dx, dw, db);
    return;
  }
  // The bias gradient sums the FP32 dy: no operand of a product, nothing to round.
  if (db) detail::column_sums(dy, s.n, s.out, db);
  Entry& e = entry(s);
  std::lock_guard<std::mutex> lock(e.mutex);
#ifdef FER_HAVE_ONEDNN
  if (use_native(e)) {
    try {
      run_product(e.dw, x, dy, nullptr, dw);
      if (dx) run_product(e.dx, dy, w, nullptr, dx);
    } catch (const dnnl::error& err) {
      throw std::runtime_error(std::string("oneDNN bf16 matmul backward failed (") + err.what() +
                               ") on " + describe(s));
    }
    return;
  }
#endif
  const float* xr = rounded(e.xr, x, int64_t(s.n) * s.in);
  const float* dyr = rounded(e.dyr, dy, int64_t(s.n) * s.out);
  const float* wr = dx ? rounded(e.wr, w, int64_t(s.in) * s.out) : w;
  dense_backward(as_f32(s), xr, wr, dyr, dx, dw, nullptr);
}

}  // namespace fer::kernels::cpu::dense_bf16
