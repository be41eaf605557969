// kernels/cpu conv2d against the double reference, plus central-difference gradient checks of
// the CPU op itself. Tolerances: forward/backward relative L2 error < 1e-5 (float GEMM over at
// most a few hundred taps against double); gradient checks < 1e-3 (the op is linear in x, w and
// b, so the central difference is exact up to float rounding of y, amplified by 1/(2 eps)).
// Every case runs on each implementation setting (ConvImpl): im2col + OpenBLAS; in builds with
// oneDNN, oneDNN's direct convolutions (skipped, visibly, without it); and automatic, which adds
// the one-input-channel backward kernel (conv2d_c1.h) for the c = 1 cases. A shape oneDNN does
// not take falls back to im2col inside the oneDNN run; the model shapes must not (ModelShapes).
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <algorithm>
#include <limits>
#include <memory>
#include <ostream>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/cpu/conv2d.h"
#include "kernels/cpu/conv2d_c1.h"
#include "kernels/cpu/conv2d_onednn.h"
#include "tests/ops/op_test_util.h"
#include "tests/reference/reference_ops.h"

namespace fer {
namespace {

using kernels::ConvShape;
using kernels::cpu::ConvImpl;
using testing::Padding;

// Selects a convolution implementation for one test and restores the previous one after it;
// skips the test when the build lacks it.
class ConvImplScope {
 public:
  explicit ConvImplScope(ConvImpl impl) : saved_(kernels::cpu::conv_impl()) {
    kernels::cpu::set_conv_impl(impl);
  }
  ~ConvImplScope() { kernels::cpu::set_conv_impl(saved_); }
  ConvImplScope(const ConvImplScope&) = delete;
  ConvImplScope& operator=(const ConvImplScope&) = delete;

 private:
  ConvImpl saved_;
};

#define FER_SKIP_WITHOUT(impl)                                                         \
  if ((impl) == ConvImpl::onednn && !kernels::cpu::conv_onednn_compiled()) {            \
    GTEST_SKIP() << "built without oneDNN (FER_ONEDNN=AUTO found none)";                \
  }

struct ConvCase {
  const char* name;
  ConvShape s;
  bool bias = true;
};

std::ostream& operator<<(std::ostream& os, const ConvCase& c) { return os << c.name; }

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
// Workspace bytes start as 0xff (NaN floats): the kernels must not rely on zeroed scratch.
constexpr char kGarbage = char(0xff);

std::vector<ConvCase> conv_cases() {
  using testing::conv_shape;
  return {
      {"first_layer_c1_same", conv_shape(2, 11, 9, 1, 4, 3, 3, 1, 1, Padding::same)},
      // One input channel (conv2d_c1.h under ConvImpl::automatic): filter counts around its
      // 16-wide slices, 5x5 windows, strides, no bias, and a threaded case.
      {"c1_k20_5x5_stride2_valid", conv_shape(3, 13, 12, 1, 20, 5, 5, 2, 2, Padding::valid)},
      {"c1_k16_5x5_stride12_same", conv_shape(2, 9, 10, 1, 16, 5, 5, 1, 2, Padding::same)},
      {"c1_k64_same_no_bias", conv_shape(2, 17, 16, 1, 64, 3, 3, 1, 1, Padding::same), false},
      {"c1_k80_same", conv_shape(2, 9, 8, 1, 80, 3, 3, 1, 1, Padding::same)},  // 4 + 1 slices
      {"c1_k48_5x5_valid", conv_shape(2, 9, 11, 1, 48, 5, 5, 1, 1, Padding::valid)},
      {"c1_threaded_k32_valid", conv_shape(5, 30, 29, 1, 32, 3, 3, 1, 1, Padding::valid)},
      {"k5x5_same_odd", conv_shape(3, 8, 7, 3, 5, 5, 5, 1, 1, Padding::same)},
      {"stride2_same_odd", conv_shape(2, 9, 7, 4, 6, 3, 3, 2, 2, Padding::same)},
      {"stride2_same_even_k4", conv_shape(2, 8, 10, 3, 5, 4, 4, 2, 2, Padding::same)},
      // pad_top 2, pad_left 1 (and stride 1x2): top and left padding must not be confused.
      {"same_kernel5x3_stride12", conv_shape(2, 7, 8, 2, 3, 5, 3, 1, 2, Padding::same)},
      {"valid_nonsquare_kernel_stride21", conv_shape(2, 7, 8, 3, 4, 3, 2, 2, 1, Padding::valid)},
      {"batch1_valid", conv_shape(1, 6, 5, 2, 3, 3, 3, 1, 1, Padding::valid)},
      {"pointwise_1x1", conv_shape(2, 5, 6, 7, 3, 1, 1, 1, 1, Padding::valid)},
      {"pointwise_1x1_stride2", conv_shape(2, 5, 6, 7, 3, 1, 1, 2, 2, Padding::same)},
      {"kernel_larger_than_image_same", conv_shape(2, 3, 2, 2, 3, 5, 5, 1, 1, Padding::same)},
      {"no_bias", conv_shape(2, 6, 6, 3, 4, 3, 3, 1, 1, Padding::same), false},
      // 48x48x64 with 3x3 taps: 5.3 MB of im2col per image, many blocks (dw accumulates across
      // blocks, dx folds across block boundaries).
      // Big enough to run threaded (>= 2 Mflop): odd batch split over threads, stride 2, padding.
      {"threaded_stride2_odd_batch", conv_shape(3, 17, 15, 32, 32, 3, 3, 2, 2, Padding::same)},
      // Odd batch of 5: with 4+ threads (OMP_NUM_THREADS) one thread gets no image.
      {"threaded_batch5", conv_shape(5, 12, 10, 16, 16, 3, 3, 1, 1, Padding::same)},
      {"many_blocks_48x48x64", conv_shape(4, 48, 48, 64, 8, 3, 3, 1, 1, Padding::same)},
      // 4608 taps: 32-pixel blocks, so a stride-2 "same" case with odd sizes spans several.
      {"many_blocks_stride2_c512", conv_shape(3, 9, 7, 512, 4, 3, 3, 2, 2, Padding::same)},
  };
}

class CpuConv2d : public ::testing::TestWithParam<std::tuple<ConvCase, ConvImpl>> {
 protected:
  void SetUp() override {
    FER_SKIP_WITHOUT(impl());
    scope_ = std::make_unique<ConvImplScope>(impl());
    // Which path the case really takes (oneDNN may decline a shape): in the XML report.
    RecordProperty("forward_impl", kernels::cpu::conv_forward_impl_for(param().s));
    RecordProperty("backward_impl", kernels::cpu::conv_backward_impl_for(param().s));
  }
  void TearDown() override { scope_.reset(); }
  const ConvCase& param() const { return std::get<0>(GetParam()); }
  ConvImpl impl() const { return std::get<1>(GetParam()); }

 private:
  std::unique_ptr<ConvImplScope> scope_;
};

struct ConvData {
  std::vector<float> x, w, b, dy;
};

ConvData make_data(const ConvShape& s, uint64_t seed) {
  return {testing::random_floats(size_t(s.x_size()), seed),
          testing::random_floats(size_t(s.w_size()), seed + 1, -0.5f, 0.5f),
          testing::random_floats(size_t(s.k), seed + 2),
          testing::random_floats(size_t(s.y_size()), seed + 3)};
}

TEST_P(CpuConv2d, ForwardMatchesReference) {
  const ConvCase& c = param();
  const ConvShape& s = c.s;
  const ConvData d = make_data(s, 11);
  std::vector<char> ws(kernels::cpu::conv2d_workspace_bytes(s), kGarbage);
  std::vector<float> y(size_t(s.y_size()), kNaN);  // must be fully written
  kernels::cpu::conv2d_forward(s, d.x.data(), d.w.data(), c.bias ? d.b.data() : nullptr, y.data(),
                               ws.data());

  std::vector<double> yr(y.size());
  const auto xd = testing::to_double(d.x), wd = testing::to_double(d.w),
             bd = testing::to_double(d.b);
  reference::conv2d_forward(s, xd.data(), wd.data(), c.bias ? bd.data() : nullptr, yr.data());
  EXPECT_LT(testing::rel_l2_error(y, yr), 1e-5);
}

TEST_P(CpuConv2d, BackwardMatchesReference) {
  const ConvCase& c = param();
  const ConvShape& s = c.s;
  const ConvData d = make_data(s, 21);
  std::vector<char> ws(kernels::cpu::conv2d_workspace_bytes(s), kGarbage);
  // Outputs start as NaN: they must be overwritten, not accumulated.
  std::vector<float> dx(size_t(s.x_size()), kNaN), dw(size_t(s.w_size()), kNaN),
      db(size_t(s.k), kNaN);
  kernels::cpu::conv2d_backward(s, d.x.data(), d.w.data(), d.dy.data(), dx.data(), dw.data(),
                                c.bias ? db.data() : nullptr, ws.data());

  const auto xd = testing::to_double(d.x), wd = testing::to_double(d.w),
             dyd = testing::to_double(d.dy);
  std::vector<double> dxr(dx.size()), dwr(dw.size()), dbr(db.size());
  reference::conv2d_backward(s, xd.data(), wd.data(), dyd.data(), dxr.data(), dwr.data(),
                             dbr.data());
  EXPECT_LT(testing::rel_l2_error(dx, dxr), 1e-5) << "dx";
  EXPECT_LT(testing::rel_l2_error(dw, dwr), 1e-5) << "dw";
  if (c.bias) {
    EXPECT_LT(testing::rel_l2_error(db, dbr), 1e-5) << "db";
  }

  // dx = null (first layer) gives the same dw and db.
  std::vector<float> dw2(dw.size(), kNaN), db2(db.size(), kNaN);
  kernels::cpu::conv2d_backward(s, d.x.data(), d.w.data(), d.dy.data(), nullptr, dw2.data(),
                                c.bias ? db2.data() : nullptr, ws.data());
  EXPECT_EQ(testing::max_abs_diff(dw.data(), dw2.data(), dw.size()), 0.0);
  if (c.bias) {
    EXPECT_EQ(testing::max_abs_diff(db.data(), db2.data(), db.size()), 0.0);
  }
}

TEST_P(CpuConv2d, GradientsMatchFiniteDifferences) {
  const ConvCase& c = param();
  const ConvShape& s = c.s;
  // Threaded cases: a few points (the math is covered by the small cases, threading by the
  // reference comparison), so a busy host does not stretch the suite.
  const size_t points = s.flops() >= 2000000 ? 8 : 48;
  ConvData d = make_data(s, 31);
  std::vector<char> ws(kernels::cpu::conv2d_workspace_bytes(s), kGarbage);
  const std::vector<double> r = testing::to_double(d.dy);  // loss = sum(y * r), so dy = r
  std::vector<float> y(size_t(s.y_size()));
  float* bias = c.bias ? d.b.data() : nullptr;
  auto loss = [&]() {
    kernels::cpu::conv2d_forward(s, d.x.data(), d.w.data(), bias, y.data(), ws.data());
    return testing::dot(y.data(), r.data(), y.size());
  };
  std::vector<float> dx(size_t(s.x_size())), dw(size_t(s.w_size())), db(size_t(s.k));
  kernels::cpu::conv2d_backward(s, d.x.data(), d.w.data(), d.dy.data(), dx.data(), dw.data(),
                                bias ? db.data() : nullptr, ws.data());
  const double eps = 0.05;
  const auto gx = testing::gradient_check(d.x.data(), d.x.size(), dx.data(), eps, loss, points);
  const auto gw = testing::gradient_check(d.w.data(), d.w.size(), dw.data(), eps, loss, points);
  EXPECT_LT(gx.rel_error, 1e-3) << "dx over " << gx.points << " points";
  EXPECT_LT(gw.rel_error, 1e-3) << "dw over " << gw.points << " points";
  EXPECT_GT(gx.numeric_norm, 0.0);
  EXPECT_GT(gw.numeric_norm, 0.0);
  if (bias) {
    const auto gb = testing::gradient_check(d.b.data(), d.b.size(), db.data(), eps, loss, points);
    EXPECT_LT(gb.rel_error, 1e-3) << "db";
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, CpuConv2d,
                         ::testing::Combine(::testing::ValuesIn(conv_cases()),
                                            ::testing::Values(ConvImpl::im2col, ConvImpl::onednn,
                                                              ConvImpl::automatic)),
                         [](const ::testing::TestParamInfo<CpuConv2d::ParamType>& info) {
                           return std::string(std::get<0>(info.param).name) + "_" +
                                  kernels::cpu::conv_impl_name(std::get<1>(info.param));
                         });

// The convolutions of models 4-8 at batch 128 (and a validation batch of 37) run on oneDNN's
// optimised kernels, not its reference loops and not the im2col fallback: a silent fallback would
// cost the CPU backend most of its speed.
TEST(CpuConv2dOneDnn, ModelShapesUseOptimisedKernels) {
  if (!kernels::cpu::conv_onednn_compiled()) GTEST_SKIP() << "built without oneDNN";
  ConvImplScope scope(ConvImpl::automatic);
  using testing::conv_shape;
  for (const int n : {128, 37}) {
    for (const ConvShape& s : {
             conv_shape(n, 48, 48, 1, 32, 3, 3, 1, 1, Padding::valid),     // models 4-7
             conv_shape(n, 46, 46, 32, 64, 3, 3, 1, 1, Padding::valid),
             conv_shape(n, 22, 22, 64, 128, 3, 3, 1, 1, Padding::valid),
             conv_shape(n, 10, 10, 128, 128, 3, 3, 1, 1, Padding::valid),
             conv_shape(n, 10, 10, 128, 256, 3, 3, 1, 1, Padding::valid),
             conv_shape(n, 48, 48, 1, 64, 3, 3, 1, 1, Padding::same),      // model8
             conv_shape(n, 24, 24, 64, 128, 5, 5, 1, 1, Padding::same),
             conv_shape(n, 12, 12, 128, 512, 3, 3, 1, 1, Padding::same),
             conv_shape(n, 6, 6, 512, 512, 3, 3, 1, 1, Padding::same),
         }) {
      const auto names = kernels::cpu::onednn::impl_names(s);
      EXPECT_STREQ(kernels::cpu::conv_forward_impl_for(s), "onednn") << s.h << "x" << s.c;
      // One input channel (the first layer): its own backward kernel where the build has it.
      EXPECT_STREQ(kernels::cpu::conv_backward_impl_for(s),
                   s.c == 1 && kernels::cpu::c1::supported(s) ? "c1" : "onednn")
          << s.h << "x" << s.c;
      EXPECT_EQ(std::string(names.forward).rfind("ref", 0), std::string::npos) << names.forward;
      EXPECT_EQ(std::string(names.backward_data).rfind("ref", 0), std::string::npos)
          << names.backward_data;
      EXPECT_EQ(std::string(names.backward_weights).rfind("ref", 0), std::string::npos)
          << names.backward_weights;
    }
  }
}

// ConvImpl::im2col keeps every shape on the im2col path (the A/B switch works).
TEST(CpuConv2dOneDnn, Im2colSettingBypassesOneDnn) {
  ConvImplScope scope(ConvImpl::im2col);
  const ConvShape s = testing::conv_shape(8, 12, 12, 128, 512, 3, 3, 1, 1, Padding::same);
  EXPECT_STREQ(kernels::cpu::conv_forward_impl_for(s), "im2col");
  EXPECT_STREQ(kernels::cpu::conv_backward_impl_for(s), "im2col");
}

// The workspace stays bounded whatever the batch: the executor allocates one per layer.
TEST(CpuConv2dWorkspace, BoundedForLargeBatches) {
  using testing::conv_shape;
  for (const auto& [h, c, k] :
       {std::tuple{48, 1, 64}, {48, 64, 64}, {12, 256, 512}, {6, 512, 512}}) {
    const ConvShape big = conv_shape(128, h, h, c, k, 3, 3, 1, 1, Padding::same);
    const ConvShape small = conv_shape(8, h, h, c, k, 3, 3, 1, 1, Padding::same);
    const size_t wbytes = size_t(big.w_size()) * sizeof(float);
    // im2col: about 1 MiB of unfolded pixels per thread plus a dw-sized partial per extra
    // thread, the same for every batch.
    const size_t threads = size_t(omp_get_max_threads());
    EXPECT_LE(kernels::cpu::conv2d_workspace_bytes(big),
              std::max(threads * (size_t(3) << 19) + (threads - 1) * wbytes,
                       // oneDNN: w in two blocked layouts (forward / backward-data), dw in its
                       // layout, its scratchpad (a few MiB, per-thread reduction buffers).
                       3 * wbytes + (size_t(8) << 20)))
        << h << "x" << c;
    if (!kernels::cpu::conv_onednn_compiled()) {
      EXPECT_EQ(kernels::cpu::conv2d_workspace_bytes(big),
                kernels::cpu::conv2d_workspace_bytes(small));
    }
    EXPECT_GT(kernels::cpu::conv2d_workspace_bytes(big), 0u);
  }
  // A 1x1, stride-1, unpadded convolution is a plain GEMM and needs no im2col scratch.
  if (!kernels::cpu::conv_onednn_compiled()) {
    EXPECT_EQ(kernels::cpu::conv2d_workspace_bytes(
                  conv_shape(128, 12, 12, 256, 64, 1, 1, 1, 1, Padding::valid)),
              0u);
  }
}

// The result does not depend on how the pixels fall into im2col blocks: batch 5 equals five
// batch-1 runs (whose blocks start at other pixels).
TEST(CpuConv2dWorkspace, ChunkingIsInvisible) {
  ConvImplScope scope(ConvImpl::im2col);
  using testing::conv_shape;
  const ConvShape s = conv_shape(5, 40, 40, 96, 4, 3, 3, 1, 1, Padding::same);
  ConvShape one = s;
  one.n = 1;
  ASSERT_LT(kernels::cpu::conv2d_workspace_bytes(s), size_t(40 * 40 * 9 * 96) * 4)
      << "the case must span several blocks per image";
  const ConvData d = make_data(s, 41);
  std::vector<char> ws(kernels::cpu::conv2d_workspace_bytes(s), kGarbage);
  std::vector<float> y(size_t(s.y_size())), y1(size_t(one.y_size()));
  kernels::cpu::conv2d_forward(s, d.x.data(), d.w.data(), d.b.data(), y.data(), ws.data());
  for (int i = 0; i < s.n; ++i) {
    kernels::cpu::conv2d_forward(one, d.x.data() + i * one.x_size(), d.w.data(), d.b.data(),
                                 y1.data(), ws.data());
    EXPECT_LT(testing::rel_l2_error(y1.data(), y.data() + i * one.y_size(), y1.size()), 1e-6)
        << "image " << i;
  }
}

}  // namespace
}  // namespace fer
