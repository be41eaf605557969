// Augmentation: the Keras transform math (kernels/common/augment.h) and the CPU kernel, against
// (1) values produced by keras_preprocessing 1.1.2 + scipy 1.17.1 (ImageDataGenerator.apply_transform
// with explicit parameters), (2) an independent double-precision reimplementation of Keras'
// matrix composition and scipy's order-1 'nearest' interpolation written here, and (3) exact
// identity/flip cases.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/common/augment.h"
#include "kernels/cpu/augment.h"

namespace fer {
namespace {

using kernels::AugmentConfig;
using kernels::augment_draw;

constexpr double kPi = 3.14159265358979323846;

AugmentDraw draw(double shear_deg, double zx, double zy, bool flip) {
  AugmentDraw d;
  d.shear_rad = float(shear_deg * kPi / 180.0);
  d.zoom_x = float(zx);
  d.zoom_y = float(zy);
  d.flip = flip ? 1 : 0;
  return d;
}

// Independent reference: Keras builds T = offset(o) * shear * zoom * offset(-o) as 3x3 matrices
// with o = size/2 + 0.5; scipy.ndimage.affine_transform(order=1, mode='nearest') maps output
// (i, j) to input T[:2,:2] (i, j) + T[:2, 2] and interpolates linearly with edge replication;
// flip_axis reverses columns afterwards. Returns 0..255 values (before rescale).
std::vector<double> keras_reference(const std::vector<uint8_t>& img, int h, int w, const AugmentDraw& d) {
  using M = std::array<std::array<double, 3>, 3>;
  auto mul = [](const M& a, const M& b) {
    M c{};
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j)
        for (int k = 0; k < 3; ++k) c[i][j] += a[i][k] * b[k][j];
    return c;
  };
  const double s = double(d.shear_rad);
  const M shear{{{1, -std::sin(s), 0}, {0, std::cos(s), 0}, {0, 0, 1}}};
  const M zoom{{{double(d.zoom_x), 0, 0}, {0, double(d.zoom_y), 0}, {0, 0, 1}}};
  const double ox = h / 2.0 + 0.5, oy = w / 2.0 + 0.5;
  const M offset{{{1, 0, ox}, {0, 1, oy}, {0, 0, 1}}};
  const M reset{{{1, 0, -ox}, {0, 1, -oy}, {0, 0, 1}}};
  const M t = mul(mul(offset, mul(shear, zoom)), reset);
  auto px = [&](int r, int c) {
    r = std::min(std::max(r, 0), h - 1);
    c = std::min(std::max(c, 0), w - 1);
    return double(img[size_t(r * w + c)]);
  };
  std::vector<double> warped(size_t(h * w));
  for (int i = 0; i < h; ++i) {
    for (int j = 0; j < w; ++j) {
      const double y = t[0][0] * i + t[0][1] * j + t[0][2];
      const double x = t[1][0] * i + t[1][1] * j + t[1][2];
      const int y0 = int(std::floor(y)), x0 = int(std::floor(x));
      const double fy = y - y0, fx = x - x0;
      warped[size_t(i * w + j)] = (1 - fy) * ((1 - fx) * px(y0, x0) + fx * px(y0, x0 + 1)) +
                                  fy * ((1 - fx) * px(y0 + 1, x0) + fx * px(y0 + 1, x0 + 1));
    }
  }
  if (!d.flip) return warped;
  std::vector<double> flipped(warped.size());
  for (int i = 0; i < h; ++i)
    for (int j = 0; j < w; ++j) flipped[size_t(i * w + j)] = warped[size_t(i * w + (w - 1 - j))];
  return flipped;
}

std::vector<uint8_t> pattern(int h, int w, uint32_t seed) {
  std::vector<uint8_t> img(size_t(h * w));
  uint32_t x = seed * 2654435761u + 1;
  for (auto& v : img) {
    x = x * 1664525u + 1013904223u;
    v = uint8_t(x >> 24);
  }
  return img;
}

std::vector<float> cpu_warp(const std::vector<uint8_t>& img, int h, int w, const AugmentDraw& d) {
  std::vector<float> out(img.size());
  kernels::cpu::images_to_float(1, h, w, img.data(), &d, out.data());
  return out;
}

TEST(Augment, MatchesKerasPreprocessingGoldenValues) {
  // keras_preprocessing 1.1.2: ImageDataGenerator().apply_transform(x[6, 8, 1], params) on
  // x[r][c] = (37r + 11c + 13((r c) mod 7)) mod 256, float32.
  const int h = 6, w = 8;
  std::vector<uint8_t> img(size_t(h * w));
  for (int r = 0; r < h; ++r)
    for (int c = 0; c < w; ++c) img[size_t(r * w + c)] = uint8_t((r * 37 + c * 11 + ((r * c) % 7) * 13) % 256);
  const AugmentDraw draws[4] = {draw(15.0, 0.8, 1.25, false), draw(-0.2, 1.1, 0.9, true),
                                draw(35.0, 1.6, 0.55, false), draw(0.0, 1.0, 1.0, true)};
  const float golden[4][48] = {
    // {'shear': 15.0, 'zx': 0.8, 'zy': 1.25, 'flip_horizontal': False}
    {
        79.766716f, 77.339699f, 101.180809f, 114.865677f, 118.394287f, 111.766647f, 88.903969f, 77.000000f,
        109.366714f, 109.790077f, 146.188217f, 172.430115f, 134.540497f, 163.665497f, 160.568222f, 102.574051f,
        138.966721f, 142.240448f, 186.428162f, 180.765869f, 172.716614f, 173.544022f, 183.003769f, 132.174042f,
        168.566711f, 158.389603f, 196.383698f, 208.300034f, 216.408661f, 183.422531f, 205.439331f, 161.774048f,
        185.000000f, 135.666595f, 143.307770f, 229.970322f, 211.563019f, 84.123833f, 227.874878f, 191.374054f,
        185.000000f, 135.666595f, 121.037109f, 235.666656f, 90.573380f, 41.001457f, 195.343582f, 220.974045f},
    // {'shear': -0.2, 'zx': 1.1, 'zy': 0.9, 'flip_horizontal': True}
    {
        74.249847f, 64.349907f, 54.449970f, 44.550030f, 34.650089f, 24.750151f, 14.850211f, 4.950272f,
        117.069412f, 149.670059f, 130.621643f, 111.646736f, 92.745338f, 73.917458f, 55.163090f, 36.482231f,
        159.703339f, 196.246124f, 164.613663f, 133.054718f, 166.951645f, 146.792648f, 115.168365f, 83.617584f,
        196.828140f, 220.501007f, 180.328506f, 213.561218f, 177.467545f, 198.232849f, 175.173630f, 130.752930f,
        219.142334f, 208.099228f, 34.758804f, 200.692841f, 240.087845f, 200.584167f, 196.837021f, 173.756668f,
        9.750206f, 23.250124f, 36.750042f, 50.249958f, 203.998520f, 242.249802f, 89.354622f, 103.995560f},
    // {'shear': 35.0, 'zx': 1.6, 'zy': 0.55, 'flip_horizontal': False}
    {
        27.198586f, 32.154457f, 37.110325f, 42.066196f, 47.022064f, 51.977936f, 56.933804f, 61.889675f,
        90.783325f, 77.464989f, 60.451313f, 42.066196f, 47.022064f, 51.977936f, 56.933804f, 61.889675f,
        179.067139f, 180.317795f, 159.605667f, 135.494370f, 139.998627f, 144.723785f, 122.299835f, 96.180557f,
        215.899780f, 227.837357f, 211.579361f, 213.238571f, 199.122879f, 175.420135f, 177.517746f, 189.477051f,
        238.911026f, 232.153015f, 163.740128f, 114.459129f, 110.919312f, 72.631248f, 86.335510f, 188.578659f,
        238.911026f, 232.153015f, 163.740128f, 82.644081f, 46.879002f, 40.120998f, 33.362995f, 26.604990f},
    // {'shear': 0.0, 'zx': 1.0, 'zy': 1.0, 'flip_horizontal': True}
    {
        77.000000f, 66.000000f, 55.000000f, 44.000000f, 33.000000f, 22.000000f, 11.000000f, 0.000000f,
        114.000000f, 181.000000f, 157.000000f, 133.000000f, 109.000000f, 85.000000f, 61.000000f, 37.000000f,
        151.000000f, 205.000000f, 168.000000f, 131.000000f, 185.000000f, 148.000000f, 111.000000f, 74.000000f,
        188.000000f, 229.000000f, 179.000000f, 220.000000f, 170.000000f, 211.000000f, 161.000000f, 111.000000f,
        225.000000f, 253.000000f, 25.000000f, 218.000000f, 246.000000f, 183.000000f, 211.000000f, 148.000000f,
        6.000000f, 21.000000f, 36.000000f, 51.000000f, 231.000000f, 246.000000f, 5.000000f, 185.000000f},
  };
  for (int k = 0; k < 4; ++k) {
    SCOPED_TRACE(k);
    const std::vector<float> out = cpu_warp(img, h, w, draws[k]);
    for (int i = 0; i < h * w; ++i) {
      // Keras works in float32 pixel units, we in float32 after /255: allow float rounding.
      EXPECT_NEAR(out[size_t(i)] * 255.0, golden[k][i], 2e-3) << "pixel " << i;
    }
  }
}

TEST(Augment, MatchesIndependentReferenceOnRandomDraws) {
  const AugmentConfig cfg = AugmentConfig::original_project();
  AugmentConfig strong;
  strong.shear_range_deg = 45.0f;  // large shears and zooms reach far outside the image
  strong.zoom_range = 0.6f;
  strong.horizontal_flip = true;
  for (const auto& [h, w] : std::vector<std::pair<int, int>>{{48, 48}, {7, 11}, {13, 5}}) {
    const auto img = pattern(h, w, uint32_t(h * 100 + w));
    for (const AugmentConfig& c : {cfg, strong}) {
      for (uint64_t idx = 0; idx < 50; ++idx) {
        const AugmentDraw d = augment_draw(99, 3, idx, c);
        const std::vector<float> out = cpu_warp(img, h, w, d);
        const std::vector<double> ref = keras_reference(img, h, w, d);
        double worst = 0;
        for (size_t i = 0; i < out.size(); ++i) worst = std::max(worst, std::abs(double(out[i]) - ref[i] / 255.0));
        ASSERT_LT(worst, 2e-5) << h << "x" << w << " draw " << idx;
      }
    }
  }
}

TEST(Augment, IdentityIsExact) {
  const auto img = pattern(48, 48, 1);
  const std::vector<float> out = cpu_warp(img, 48, 48, AugmentDraw{});
  for (size_t i = 0; i < img.size(); ++i) ASSERT_EQ(out[i], float(img[i]) * (1.0f / 255.0f));
  std::vector<float> plain(img.size());
  kernels::cpu::images_to_float(1, 48, 48, img.data(), nullptr, plain.data());
  EXPECT_EQ(out, plain);
}

TEST(Augment, FlipIsExact) {
  const auto img = pattern(48, 48, 2);
  AugmentDraw d;
  d.flip = 1;
  const std::vector<float> out = cpu_warp(img, 48, 48, d);
  for (int r = 0; r < 48; ++r)
    for (int c = 0; c < 48; ++c)
      ASSERT_EQ(out[size_t(r * 48 + c)], float(img[size_t(r * 48 + 47 - c)]) * (1.0f / 255.0f)) << r << "," << c;
}

TEST(Augment, BatchOfImagesUsesEachDraw) {
  const int n = 5;
  std::vector<uint8_t> imgs;
  std::vector<AugmentDraw> draws;
  for (int i = 0; i < n; ++i) {
    const auto p = pattern(48, 48, uint32_t(10 + i));
    imgs.insert(imgs.end(), p.begin(), p.end());
    draws.push_back(augment_draw(5, 0, uint64_t(i), AugmentConfig::original_project()));
  }
  std::vector<float> out(imgs.size());
  kernels::cpu::images_to_float(n, 48, 48, imgs.data(), draws.data(), out.data());
  for (int i = 0; i < n; ++i) {
    const std::vector<uint8_t> one(imgs.begin() + i * 2304, imgs.begin() + (i + 1) * 2304);
    const auto single = cpu_warp(one, 48, 48, draws[size_t(i)]);
    ASSERT_EQ(0, std::memcmp(single.data(), out.data() + i * 2304, 2304 * sizeof(float)));
  }
}

TEST(AugmentDraw, FollowsKerasDistributions) {
  const AugmentConfig cfg = AugmentConfig::original_project();
  const double max_shear = 0.2 * kPi / 180.0;
  double flips = 0, mean_zx = 0, mean_zy = 0, mean_shear = 0, cov = 0;
  const int n = 200000;
  std::vector<AugmentDraw> ds(n);
  for (int i = 0; i < n; ++i) {
    const AugmentDraw d = augment_draw(2024, 1, uint64_t(i), cfg);
    ds[size_t(i)] = d;
    ASSERT_LE(std::abs(double(d.shear_rad)), max_shear * (1 + 1e-6));
    ASSERT_GE(d.zoom_x, 0.8f);
    ASSERT_LE(d.zoom_x, 1.2f);
    ASSERT_GE(d.zoom_y, 0.8f);
    ASSERT_LE(d.zoom_y, 1.2f);
    flips += d.flip;
    mean_zx += d.zoom_x;
    mean_zy += d.zoom_y;
    mean_shear += d.shear_rad;
  }
  flips /= n;
  mean_zx /= n;
  mean_zy /= n;
  mean_shear /= n;
  for (const auto& d : ds) cov += (d.zoom_x - mean_zx) * (d.zoom_y - mean_zy);
  cov /= n;
  EXPECT_NEAR(flips, 0.5, 0.005);
  EXPECT_NEAR(mean_zx, 1.0, 0.002);
  EXPECT_NEAR(mean_zy, 1.0, 0.002);
  EXPECT_NEAR(mean_shear / max_shear, 0.0, 0.01);
  // Independent zooms: covariance ~0 against the variance (0.4^2 / 12 = 0.0133).
  EXPECT_LT(std::abs(cov), 0.0133 * 0.02);
  // Same inputs, same draw; other epochs or seeds differ.
  const AugmentDraw a = augment_draw(2024, 1, 17, cfg), b = augment_draw(2024, 1, 17, cfg);
  EXPECT_EQ(std::memcmp(&a, &b, sizeof a), 0);
  const AugmentDraw c = augment_draw(2024, 2, 17, cfg), e = augment_draw(2025, 1, 17, cfg);
  EXPECT_NE(a.zoom_x, c.zoom_x);
  EXPECT_NE(a.zoom_x, e.zoom_x);
  // A disabled config draws the identity.
  const AugmentDraw none = augment_draw(2024, 1, 17, AugmentConfig{});
  EXPECT_EQ(none.shear_rad, 0.0f);
  EXPECT_EQ(none.zoom_x, 1.0f);
  EXPECT_EQ(none.zoom_y, 1.0f);
  EXPECT_EQ(none.flip, 0);
}

}  // namespace
}  // namespace fer
