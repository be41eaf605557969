#pragma once
// Keras ImageDataGenerator's random affine transform, one draw per image. The draw comes from the
// seeded Philox stream (augment_draw below): on the host by the batch stream's loader thread, or
// on the backend by Backend::augment_draws for batches gathered from a resident data set (the
// same bits either way); the warp runs in kernels/cpu/augment.cpp and kernels/cuda/augment.cu
// from the single definition of the math in this file, so both backends compute the same
// coordinates and the same bilinear weights.
//
// What is reproduced (keras_preprocessing 1.1.x, ImageDataGenerator with shear_range,
// zoom_range and horizontal_flip, everything else at its default):
//   * get_random_transform: shear ~ U(-shear_range, shear_range) in DEGREES; zx, zy drawn
//     independently from U(1 - zoom_range, 1 + zoom_range); flip when U(0, 1) < 0.5.
//   * apply_affine_transform: shear matrix [[1, -sin s, 0], [0, cos s, 0], [0, 0, 1]] (s in
//     radians), times zoom matrix diag(zx, zy, 1); transform_matrix_offset_center moves the
//     origin to the image centre o; scipy.ndimage.affine_transform(order=1, mode='nearest') maps
//     each OUTPUT pixel (row, col) to the INPUT coordinate
//         in_row = zx * (row - o_r) - sin(s) * zy * (col - o_c) + o_r
//         in_col =                     cos(s) * zy * (col - o_c) + o_c
//     and samples it bilinearly, clamping indices to the border (edge replication).
//     Note Keras' "zx" scales the ROW axis and "zy" the COLUMN axis; AugmentDraw keeps Keras'
//     names and meaning (zoom_x multiplies rows).
//   * The horizontal flip is applied AFTER the warp (flip_axis on the column axis).
//   * rescale=1/255 is applied after the transform: value * (1.0f / 255.0f).
//
// Centre convention: keras_preprocessing 1.0.x-1.1.2 (what Keras 2.1-2.4, and so the original
// FER2013 project, used) puts the centre at o = size / 2 + 0.5 (24.5 for 48 pixels), half a pixel
// past the geometric centre (size - 1) / 2 = 23.5 of pixel-centred coordinates. The later
// tf.keras/keras.src.preprocessing copy changed it to size / 2 - 0.5. We follow the + 0.5 of the
// version the original project trained with, because the goal is to reproduce its input
// distribution; kAugmentCentreOffset is the one place to change it. With a pure flip or an
// identity draw the output is bit-exact (flip) or equal (identity) to the input either way.
#include <cmath>
#include <cstdint>

#include "kernels/common/host_device.h"
#include "kernels/common/philox.h"

namespace fer {

// One image's transform parameters (16 bytes; an array of these travels with each batch).
struct AugmentDraw {
  float shear_rad = 0.0f;  // Keras draws shear in degrees from [-shear_range, shear_range]
  float zoom_x = 1.0f;     // Keras' zx: scales the row axis; independent draws from [1-z, 1+z]
  float zoom_y = 1.0f;     // Keras' zy: scales the column axis
  int32_t flip = 0;        // horizontal flip after the warp
};

namespace kernels {

// o = size / 2 + kAugmentCentreOffset (keras_preprocessing 1.x; see the note above).
constexpr float kAugmentCentreOffset = 0.5f;

// ImageDataGenerator(shear_range=..., zoom_range=..., horizontal_flip=...) settings.
struct AugmentConfig {
  float shear_range_deg = 0.0f;  // shear angle range in degrees (Keras' unit)
  float zoom_range = 0.0f;       // zoom factors from [1 - zoom_range, 1 + zoom_range]
  bool horizontal_flip = false;
  // The original FER2013 project: shear_range=0.2, zoom_range=0.2, horizontal_flip=True.
  static AugmentConfig original_project() { return AugmentConfig{0.2f, 0.2f, true}; }
  bool enabled() const { return shear_range_deg != 0.0f || zoom_range != 0.0f || horizontal_flip; }
};

// Philox counter tag of augmentation draws (word 3 of the counter; keeps them apart from the
// permutation and dropout streams that share the seed).
constexpr uint32_t kAugmentStreamTag = 0x41554731u;  // "AUG1"

// low + span * u, rounded once (an explicit fused multiply-add). Written as a*b + c the compiler
// may or may not contract it into an FMA depending on the target and flags (nvcc does by default,
// g++ does under -march=native, not without it), which would make a draw computed on the device,
// in kernels/cpu (built with -march=native) and in loaders/ differ in the last bit. fma() is
// correctly rounded everywhere, so every build computes the same draw.
FER_HD double augment_uniform(double low, double span, float u) { return fma(span, double(u), low); }

// The draw for dataset row `index` in epoch `epoch`: counter (index lo, index hi, epoch, tag),
// key `seed`; the four words give shear, zx, zy and flip, in Keras' order. A pure function of
// (seed, epoch, index, config): batch size, shuffling, timing and where it is computed (host
// loader thread, CPU kernel, GPU kernel) do not change it, bit for bit.
FER_HD AugmentDraw augment_draw(uint64_t seed, uint64_t epoch, uint64_t index,
                                const AugmentConfig& cfg) {
  const Philox4 r =
      philox4x32(uint32_t(index), uint32_t(index >> 32), uint32_t(epoch), kAugmentStreamTag, seed);
  AugmentDraw d;
  const float u_shear = philox_uniform(r.v[0]);
  const float u_zx = philox_uniform(r.v[1]);
  const float u_zy = philox_uniform(r.v[2]);
  const float u_flip = philox_uniform(r.v[3]);
  // numpy.random.uniform(low, high) = low + (high - low) * u
  const double s = cfg.shear_range_deg;
  const double shear_deg = augment_uniform(-s, 2.0 * s, u_shear);
  d.shear_rad = float(shear_deg * (3.14159265358979323846 / 180.0));  // np.deg2rad
  const double z = cfg.zoom_range;
  d.zoom_x = float(augment_uniform(1.0 - z, 2.0 * z, u_zx));
  d.zoom_y = float(augment_uniform(1.0 - z, 2.0 * z, u_zy));
  d.flip = (cfg.horizontal_flip && u_flip < 0.5f) ? 1 : 0;
  return d;
}

// Output -> input coordinate map of one draw for an h x w image:
//   in_row = a_rr * (row - o_r) + a_rc * (col' - o_c) + o_r
//   in_col = a_cr * (row - o_r) + a_cc * (col' - o_c) + o_c
// where col' = (flip ? w - 1 - col : col) applies the post-warp flip.
struct AugmentMap {
  float a_rr, a_rc, a_cr, a_cc;
  float o_r, o_c;
  int32_t flip;
};

// The matrix is formed in double (as numpy does) and rounded once to float, so host and device
// get the same coefficients.
FER_HD AugmentMap augment_map(const AugmentDraw& d, int h, int w) {
  const double s = double(d.shear_rad);
  const double zx = double(d.zoom_x), zy = double(d.zoom_y);
  AugmentMap m;
  // [[1, -sin s], [0, cos s]] @ [[zx, 0], [0, zy]]
  m.a_rr = float(zx);
  m.a_rc = float(-sin(s) * zy);
  m.a_cr = 0.0f;
  m.a_cc = float(cos(s) * zy);
  m.o_r = float(h) * 0.5f + kAugmentCentreOffset;
  m.o_c = float(w) * 0.5f + kAugmentCentreOffset;
  m.flip = d.flip;
  return m;
}

FER_HD int augment_clamp(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

// scipy.ndimage order-1 (bilinear) sample of a uint8 h x w image at (r, c) with mode='nearest':
// the two neighbours along each axis are clamped to [0, size-1]. Returns 0..255 as float.
FER_HD float sample_bilinear_nearest(const uint8_t* img, int h, int w, float r, float c) {
  // Coordinates far outside only ever read the border; bound them before the int conversion.
  r = r < -2.0f ? -2.0f : (r > float(h) + 1.0f ? float(h) + 1.0f : r);
  c = c < -2.0f ? -2.0f : (c > float(w) + 1.0f ? float(w) + 1.0f : c);
  const float rf = floorf(r), cf = floorf(c);
  const float tr = r - rf, tc = c - cf;
  const int r0 = int(rf), c0 = int(cf);
  const int ra = augment_clamp(r0, 0, h - 1), rb = augment_clamp(r0 + 1, 0, h - 1);
  const int ca = augment_clamp(c0, 0, w - 1), cb = augment_clamp(c0 + 1, 0, w - 1);
  const float v00 = float(img[ra * w + ca]), v01 = float(img[ra * w + cb]);
  const float v10 = float(img[rb * w + ca]), v11 = float(img[rb * w + cb]);
  const float top = (1.0f - tc) * v00 + tc * v01;
  const float bottom = (1.0f - tc) * v10 + tc * v11;
  return (1.0f - tr) * top + tr * bottom;
}

// The warped value (0..255, before rescaling) of output pixel (row, col).
FER_HD float augment_pixel(const uint8_t* img, int h, int w, const AugmentMap& m, int row, int col) {
  const int src_col = m.flip ? (w - 1 - col) : col;
  const float dr = float(row) - m.o_r;
  const float dc = float(src_col) - m.o_c;
  const float in_r = m.a_rr * dr + m.a_rc * dc + m.o_r;
  const float in_c = m.a_cr * dr + m.a_cc * dc + m.o_c;
  return sample_bilinear_nearest(img, h, w, in_r, in_c);
}

// Keras' rescale=1./255 as float32 multiplication.
constexpr float kPixelScale = 1.0f / 255.0f;

}  // namespace kernels
}  // namespace fer
