#pragma once
// NVTX ranges in the domain "fer_gpu" (step, fwd/<layer>, bwd/<layer>, optim/adam, loader/h2d) so an
// Nsight Systems timeline reads like the model summary. No-ops in builds without NVTX.
#include <string>

namespace fer {

class NvtxRange {
 public:
  explicit NvtxRange(const char* name);
  explicit NvtxRange(const std::string& name) : NvtxRange(name.c_str()) {}
  ~NvtxRange();
  NvtxRange(const NvtxRange&) = delete;
  NvtxRange& operator=(const NvtxRange&) = delete;

 private:
  bool active_ = false;
};

}  // namespace fer
