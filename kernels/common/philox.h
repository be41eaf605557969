#pragma once
// Philox4x32-10 counter-based generator (Salmon et al., SC'11). The same (key, counter) gives the
// same numbers on the host and on the device, so dropout masks and augmentation draws need not
// be stored or copied: any kernel can recompute them.
#include <cstdint>

#include "kernels/common/host_device.h"

namespace fer::kernels {

struct Philox4 {
  uint32_t v[4];
};

FER_HD uint32_t philox_mulhilo(uint32_t a, uint32_t b, uint32_t* hi) {
  const uint64_t p = uint64_t(a) * uint64_t(b);
  *hi = uint32_t(p >> 32);
  return uint32_t(p);
}

// counter: 128 bits as (c0, c1, c2, c3); key: 64 bits.
FER_HD Philox4 philox4x32(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint64_t key) {
  uint32_t k0 = uint32_t(key), k1 = uint32_t(key >> 32);
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, hi1;
    const uint32_t lo0 = philox_mulhilo(0xD2511F53u, c0, &hi0);
    const uint32_t lo1 = philox_mulhilo(0xCD9E8D57u, c2, &hi1);
    const uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return Philox4{{c0, c1, c2, c3}};
}

// Uniform float in [0, 1) from the top 24 bits.
FER_HD float philox_uniform(uint32_t bits) { return float(bits >> 8) * (1.0f / 16777216.0f); }

// The i-th uniform of stream (key, stream_id): element i uses word i%4 of counter (i/4, stream_id).
FER_HD float philox_uniform_at(uint64_t key, uint64_t stream_id, uint64_t i) {
  const Philox4 r = philox4x32(uint32_t(i >> 2), uint32_t(i >> 34), uint32_t(stream_id),
                               uint32_t(stream_id >> 32), key);
  return philox_uniform(r.v[i & 3]);
}

// Stream families. Every random number of a run is drawn under key = the run's seed, so each family
// owns a disjoint set of counters, told apart by the counter's last word (c3):
//   dropout                (i/4, i>>34, stream, stream>>32) with stream = dropout_stream_id(step,
//                          layer): c3 = step >> 20, i.e. 0 for the first 2^20 steps;
//   initial weights        the same form with stream = init_stream_id(param): c3 = kInitStreamTag;
//   augmentation draws     c3 = kAugmentStreamTag (kernels/common/augment.h);
//   epoch permutations     c3 = kPermutationStreamTag (loaders/batch_stream.h).
// Before the tag, initial weights used stream 0x1000 + param, which is dropout's stream of step 1
// at layer = param: one dropout mask repeated the draws of an initial kernel (models 4, 7, 8).
constexpr uint32_t kInitStreamTag = 0x494E4954u;  // "INIT"
// Dropout stream ids are step * kDropoutLayerStride + layer, so a graph has fewer layers than this.
constexpr uint64_t kDropoutLayerStride = 4096;

// Stream of the param-th tensor of Graph::all_params() (counted over all tensors, trainable or not).
FER_HD uint64_t init_stream_id(uint64_t param) { return (uint64_t(kInitStreamTag) << 32) | uint32_t(param); }
// Stream of the dropout mask of layer `layer` at training step `step` (forward and backward alike).
FER_HD uint64_t dropout_stream_id(uint64_t step, uint64_t layer) { return step * kDropoutLayerStride + layer; }

// Dropout keeps element i when its uniform is >= rate; kept values are scaled by 1/(1-rate).
FER_HD bool dropout_keep(uint64_t seed, uint64_t stream_id, uint64_t i, float rate) {
  return philox_uniform_at(seed, stream_id, i) >= rate;
}

}  // namespace fer::kernels
