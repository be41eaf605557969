#pragma once
#include <cstdint>

#include "kernels/common/augment.h"

namespace fer::kernels::cpu {

// uint8 images [n, h, w, 1] -> float [n, h, w, 1] in [0, 1]; with draws (one per image), each
// image is warped by its Keras-style affine transform first (bilinear, fill mode nearest).
void images_to_float(int n, int h, int w, const uint8_t* src, const AugmentDraw* draws, float* dst);

}  // namespace fer::kernels::cpu
