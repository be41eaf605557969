// Host-only parts of the CUDA backend's bf16 path, run in every build (CPU-only ones included):
//  - the float <-> bf16 rounding the GPU cast kernels use (kernels/common/bf16_bits.h; the very
//    functions the kernels call) against the CPU backend's rounding (kernels/cpu/bf16.h), bit for
//    bit, so both backends feed their bf16 ops the same operands;
//  - the workspace layout of a convolution call (engine/cuda/conv_plan.h): FP32 plans keep the
//    layout they had before bf16 ([padded copy][cuDNN]), bf16 plans add their operand copies,
//    each sized for its tensor, aligned, in order and disjoint.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <stdexcept>

#include "engine/cuda/conv_plan.h"
#include "kernels/common/bf16_bits.h"
#include "kernels/cpu/bf16.h"
#include "tests/ops/op_test_util.h"

namespace fer {
namespace {

using kernels::bf16_bits_from_float;
using kernels::float_from_bf16_bits;
using kernels::MathType;

uint32_t bits(float f) { return kernels::float_bits(f); }
float from_bits(uint32_t u) { return kernels::float_from_bits(u); }

TEST(CudaBf16Bits, RoundsToNearestEvenLikeTheCpuOnSpecialValues) {
  const float inf = std::numeric_limits<float>::infinity();
  const float cases[] = {
      0.0f, -0.0f, 1.0f, -1.0f, inf, -inf, std::numeric_limits<float>::max(),
      std::numeric_limits<float>::lowest(), std::numeric_limits<float>::min(),
      std::numeric_limits<float>::denorm_min(), 276.9f,
      from_bits(0x3f808000u),  // 1 + 2^-8: a tie between 1 and 1 + 2^-7, rounds to even (1)
      from_bits(0x3f818000u),  // 1 + 3*2^-8: a tie, rounds to even (1 + 2^-6)
      from_bits(0x3f808001u),  // just above the tie: rounds up
      from_bits(0x7f7fffffu),  // largest float: rounds past the largest bf16 to infinity
      from_bits(0x7fc00000u), from_bits(0xffc00001u), from_bits(0x7f800001u),  // NaNs
  };
  for (float f : cases) {
    EXPECT_EQ(bf16_bits_from_float(f), kernels::cpu::float_to_bf16(f)) << std::hex << bits(f);
  }
  EXPECT_EQ(bf16_bits_from_float(from_bits(0x3f808000u)), 0x3f80u);
  EXPECT_EQ(bf16_bits_from_float(from_bits(0x3f818000u)), 0x3f82u);
  EXPECT_EQ(bf16_bits_from_float(from_bits(0x3f808001u)), 0x3f81u);
  EXPECT_EQ(bf16_bits_from_float(from_bits(0x7f7fffffu)), 0x7f80u);
  // A signalling NaN becomes a quiet NaN, never infinity.
  const uint16_t nan = bf16_bits_from_float(from_bits(0x7f800001u));
  EXPECT_TRUE(std::isnan(float_from_bf16_bits(nan))) << std::hex << nan;
}

TEST(CudaBf16Bits, AgreesWithTheCpuOnAMillionRandomBitPatterns) {
  std::mt19937 rng(20261130);
  int mismatches = 0;
  for (int i = 0; i < (1 << 20); ++i) {
    const float f = from_bits(uint32_t(rng()));
    if (bf16_bits_from_float(f) != kernels::cpu::float_to_bf16(f) && ++mismatches <= 5) {
      ADD_FAILURE() << "0x" << std::hex << bits(f) << ": gpu 0x" << bf16_bits_from_float(f)
                    << " cpu 0x" << kernels::cpu::float_to_bf16(f);
    }
  }
  EXPECT_EQ(mismatches, 0);
}

TEST(CudaBf16Bits, EveryBf16RoundTripsExactlyAndTheErrorIsWithinHalfAnUlp) {
  for (uint32_t h = 0; h < 0x10000u; ++h) {
    const float f = float_from_bf16_bits(uint16_t(h));
    EXPECT_EQ(bits(f), h << 16);
    if (std::isnan(f)) {
      ASSERT_EQ(bf16_bits_from_float(f), uint16_t(h | 0x40u)) << std::hex << h;  // quieted
    } else {
      ASSERT_EQ(bf16_bits_from_float(f), uint16_t(h)) << std::hex << h;
    }
  }
  // |round(x) - x| <= 2^-8 |x| for normal x (bf16 has 8 significand bits).
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-1e4f, 1e4f);
  for (int i = 0; i < 100000; ++i) {
    const float x = dist(rng);
    const float r = float_from_bf16_bits(bf16_bits_from_float(x));
    ASSERT_LE(std::fabs(double(r) - double(x)), std::ldexp(std::fabs(double(x)), -8)) << x;
  }
}

// ------------------------------------------------------------------------------------------------

size_t align256(size_t v) { return (v + 255) / 256 * 256; }

TEST(ConvWorkspaceLayout, Fp32PlansAreThePaddedCopyThenCudnn) {
  using testing::conv_shape;
  using testing::Padding;
  // Direct: no padded copy, cuDNN's part at 0.
  const ConvShape direct = conv_shape(8, 24, 24, 64, 128, 3, 3, 1, 1, Padding::same);
  const ConvPadding dp = plan_conv_padding(direct);
  ASSERT_FALSE(dp.padded_copy);
  const ConvWorkspace dw = plan_conv_workspace(direct, dp);
  EXPECT_EQ(dw.xp_bytes, 0u);
  EXPECT_EQ(dw.x_bf16_bytes + dw.w_bf16_bytes + dw.y_bf16_bytes, 0u);
  EXPECT_EQ(dw.cudnn, 0u);
  EXPECT_EQ(dw.total(1000), 1024u);
  EXPECT_EQ(dw.total(0), 0u);
  // Padded copy (stride 2 on an even input): xp of (oh-1)*2+3 rows, 4-byte floats, then cuDNN.
  const ConvShape padded = conv_shape(2, 8, 8, 4, 5, 3, 3, 2, 2, Padding::same);
  const ConvPadding pp = plan_conv_padding(padded);
  ASSERT_TRUE(pp.padded_copy);
  const ConvWorkspace pw = plan_conv_workspace(padded, pp);
  EXPECT_EQ(pw.xp, 0u);
  EXPECT_EQ(pw.xp_bytes, size_t(2) * pp.in_h * pp.in_w * 4 * sizeof(float));
  EXPECT_EQ(pw.cudnn, align256(pw.xp_bytes));
  EXPECT_EQ(pw.total(300), align256(pw.xp_bytes) + 512);
}

TEST(ConvWorkspaceLayout, Bf16PlansAddDisjointAlignedOperandCopies) {
  using testing::conv_shape;
  using testing::Padding;
  for (const ConvShape base : {conv_shape(8, 24, 24, 64, 128, 3, 3, 1, 1, Padding::same),
                               conv_shape(2, 8, 8, 4, 5, 3, 3, 2, 2, Padding::same),
                               conv_shape(1, 5, 5, 2, 3, 5, 5, 1, 1, Padding::valid),
                               conv_shape(3, 7, 9, 3, 4, 2, 2, 1, 1, Padding::same)}) {
    ConvShape s = base;
    s.math = MathType::bf16;
    const ConvPadding pad = plan_conv_padding(s);
    const ConvWorkspace ws = plan_conv_workspace(s, pad);
    const ConvWorkspace ws32 = plan_conv_workspace(base, pad);
    SCOPED_TRACE(describe(s));
    // The FP32 padded copy is the same in both precisions.
    EXPECT_EQ(ws.xp, 0u);
    EXPECT_EQ(ws.xp_bytes, ws32.xp_bytes);
    // Sizes: bf16 (2 bytes) copies of x as cuDNN reads it (xp's size with a padded copy), w, y.
    EXPECT_EQ(ws.x_bf16_bytes, size_t(s.n) * pad.in_h * pad.in_w * s.c * 2);
    EXPECT_EQ(ws.w_bf16_bytes, size_t(s.w_size()) * 2);
    EXPECT_EQ(ws.y_bf16_bytes, size_t(s.y_size()) * 2);
    // In order, aligned, disjoint, cuDNN's part last.
    const size_t offsets[] = {ws.xp, ws.x_bf16, ws.w_bf16, ws.y_bf16, ws.cudnn};
    const size_t sizes[] = {ws.xp_bytes, ws.x_bf16_bytes, ws.w_bf16_bytes, ws.y_bf16_bytes};
    for (int i = 0; i < 4; ++i) {
      EXPECT_EQ(offsets[i] % 256, 0u);
      EXPECT_GE(offsets[i + 1], offsets[i] + sizes[i]) << "part " << i << " overlaps the next";
      EXPECT_EQ(offsets[i + 1], offsets[i] + align256(sizes[i]));
    }
    EXPECT_EQ(ws.total(4096), ws.cudnn + 4096);
  }
}

TEST(ConvWorkspaceLayout, RefusesAnImpossibleShape) {
  ConvShape s;  // all zero
  ConvPadding pad;
  EXPECT_THROW(plan_conv_workspace(s, pad), std::invalid_argument);
  EXPECT_THROW(plan_conv_padding(s), std::invalid_argument);
}

}  // namespace
}  // namespace fer
