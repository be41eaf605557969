#pragma once
// Which op or layer this thread is running, for device error messages (engine/cuda/check.h) and
// alongside the NVTX range of the same name. Backend-agnostic: plain C++.
#include <string>

namespace fer {

// The op or layer ("fwd/conv2d_1", "optim/adam") on whose behalf this thread is calling the
// backend. Scopes nest and restore the previous name. The string is not copied: keep it alive for
// the scope (layer names owned by the graph are).
class OpContextScope {
 public:
  explicit OpContextScope(const char* name) : saved_(slot()) { slot() = name; }
  explicit OpContextScope(const std::string& name) : OpContextScope(name.c_str()) {}
  ~OpContextScope() { slot() = saved_; }
  OpContextScope(const OpContextScope&) = delete;
  OpContextScope& operator=(const OpContextScope&) = delete;

  // The innermost name on this thread, or null.
  static const char* current() { return slot(); }

 private:
  static const char*& slot() {
    static thread_local const char* name = nullptr;
    return name;
  }
  const char* saved_;
};

}  // namespace fer
