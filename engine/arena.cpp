#include "engine/arena.h"

#include <stdexcept>

namespace fer {

namespace {
constexpr size_t kAlign = 256;
}

Arena::~Arena() {
  if (base_) backend_.deallocate(base_);
}

Arena::Slot Arena::reserve(size_t bytes) {
  if (base_) throw std::logic_error("Arena::reserve after allocate");
  Slot slot{total_, bytes};
  total_ += (bytes + kAlign - 1) / kAlign * kAlign;
  return slot;
}

void Arena::allocate() {
  if (base_) throw std::logic_error("Arena::allocate called twice");
  if (total_ == 0) return;
  base_ = backend_.allocate(total_);
  // Zero everything once so unused tails and never-written gradients are defined.
  backend_.fill(static_cast<float*>(base_), int64_t(total_ / sizeof(float)), 0.0f);
}

}  // namespace fer
