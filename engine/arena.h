#pragma once
// One device allocation per (model, batch size): every activation, gradient and workspace is a
// fixed offset into it, reserved while planning and resolved once the block exists. Nothing is
// allocated in the step loop, so a step can be captured as a CUDA graph.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "engine/backend.h"

namespace fer {

class Arena {
 public:
  struct Slot {
    size_t offset = 0;
    size_t bytes = 0;
  };

  explicit Arena(Backend& backend) : backend_(backend) {}
  ~Arena();
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  // Reserve bytes (aligned to 256, cuDNN's and vector loads' liking); only before allocate().
  Slot reserve(size_t bytes);
  template <typename T>
  Slot reserve_array(int64_t count) {
    return reserve(size_t(count) * sizeof(T));
  }
  // Make the block (zero-filled) and fix every slot's address.
  void allocate();
  bool allocated() const { return base_ != nullptr; }
  size_t total_bytes() const { return total_; }

  template <typename T = float>
  T* at(const Slot& slot) const {
    return slot.bytes == 0 ? nullptr : reinterpret_cast<T*>(static_cast<char*>(base_) + slot.offset);
  }

 private:
  Backend& backend_;
  void* base_ = nullptr;
  size_t total_ = 0;
};

}  // namespace fer
