#pragma once
// Where each parameter tensor sits in the graph's flat backend buffers, against the dense order
// that checkpoints, Keras counts and host copies use. On the backend every tensor starts at a
// multiple of kParamAlignBytes (256): cuDNN and cuBLAS take weight pointers at tensor starts, and
// with dense offsets a layer whose channel counts are not multiples of 4 would hand them pointers
// aligned to 4 bytes only (slower paths, or algorithms refused). The gaps between tensors are
// zero in parameters, gradients and optimizer slots alike, and stay zero (no op writes them; an
// Adam or SGD update of a zero gradient on a zero parameter with zero moments is zero).
#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace fer {

constexpr int64_t kParamAlignBytes = 256;
constexpr int64_t kParamAlignFloats = kParamAlignBytes / int64_t(sizeof(float));

// The offset (floats) at which a tensor placed after `end` floats starts: the next multiple of
// kParamAlignFloats.
inline int64_t aligned_param_offset(int64_t end) {
  return (end + kParamAlignFloats - 1) / kParamAlignFloats * kParamAlignFloats;
}

struct ParamLayout {
  struct Run {
    int64_t dense = 0;   // floats into the dense (host/checkpoint) order
    int64_t device = 0;  // floats into the backend buffer (a multiple of kParamAlignFloats)
    int64_t size = 0;
  };
  int64_t dense_floats = 0;   // what checkpoints and Keras count
  int64_t device_floats = 0;  // the backend buffer's length, gaps included
  std::vector<Run> runs;

  // The identity layout of n floats (no gaps): for a buffer that is not the graph's.
  static ParamLayout dense_only(int64_t n) {
    ParamLayout l;
    l.dense_floats = l.device_floats = n;
    if (n > 0) l.runs.push_back({0, 0, n});
    return l;
  }

  // `slots` consecutive device-layout buffers (e.g. Adam's m then v) -> the same in dense layout.
  // Throws std::invalid_argument when the size is not slots * device_floats.
  std::vector<float> to_dense(const std::vector<float>& device, int slots = 1) const {
    check(device.size(), device_floats, slots, "to_dense");
    std::vector<float> out(size_t(dense_floats * slots));
    for (int s = 0; s < slots; ++s)
      for (const Run& r : runs)
        std::copy_n(device.begin() + s * device_floats + r.device, r.size, out.begin() + s * dense_floats + r.dense);
    return out;
  }
  // The inverse: dense layout -> device layout with zero gaps.
  std::vector<float> to_device(const std::vector<float>& dense, int slots = 1) const {
    check(dense.size(), dense_floats, slots, "to_device");
    std::vector<float> out(size_t(device_floats * slots), 0.0f);
    for (int s = 0; s < slots; ++s)
      for (const Run& r : runs)
        std::copy_n(dense.begin() + s * dense_floats + r.dense, r.size, out.begin() + s * device_floats + r.device);
    return out;
  }

 private:
  static void check(size_t got, int64_t per_slot, int slots, const char* what) {
    if (int64_t(got) != per_slot * slots) {
      throw std::invalid_argument(std::string("ParamLayout::") + what + ": expected " +
                                  std::to_string(per_slot * slots) + " floats, got " + std::to_string(got));
    }
  }
};

}  // namespace fer
