#pragma once
#include <cstdint>

#include "kernels/common/augment.h"

namespace fer::kernels::cpu {

// uint8 images [n, h, w, 1] -> float [n, h, w, 1] in [0, 1]; with draws (one per image), each
// image is warped by its Keras-style affine transform first (bilinear, fill mode nearest).
void images_to_float(int n, int h, int w, const uint8_t* src, const AugmentDraw* draws, float* dst);

// The draws of a gathered batch: dst[i] = augment_draw(seed, epoch, key, cfg) with
// key = keys[indices[i]] (keys: the data-set row of each resident row), or indices[i] when keys is
// null. The same bits as the batch stream's host draws for the same rows.
void augment_draws(int n, const int32_t* indices, const int64_t* keys, uint64_t seed,
                   uint64_t epoch, const AugmentConfig& cfg, AugmentDraw* dst);

}  // namespace fer::kernels::cpu
