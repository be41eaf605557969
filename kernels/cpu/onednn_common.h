#pragma once
// The one oneDNN CPU engine and per-thread stream every oneDNN path shares (convolutions in
// conv2d_onednn.cpp, bf16 dense layers in dense_bf16.cpp): primitives and memories of one engine
// may be mixed freely, so there is exactly one. Only included where FER_HAVE_ONEDNN is defined.
#include <dnnl.hpp>

#include <string>

namespace fer::kernels::cpu::onednn_common {

// The process-wide CPU engine (device index 0); created on first use.
inline dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// One in-order stream per host thread (oneDNN streams are not shared between threads).
inline dnnl::stream& cpu_stream() {
  thread_local dnnl::stream stream(cpu_engine());
  return stream;
}

// True when oneDNN picked its slow reference implementation ("ref:..."), or gave no name.
inline bool is_reference(const char* impl) { return impl == nullptr || std::string(impl).rfind("ref", 0) == 0; }

}  // namespace fer::kernels::cpu::onednn_common
