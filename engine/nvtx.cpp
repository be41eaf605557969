#include "engine/nvtx.h"

#if FER_HAVE_NVTX
#include <nvtx3/nvToolsExt.h>
#endif

namespace fer {

#if FER_HAVE_NVTX
namespace {
nvtxDomainHandle_t domain() {
  static nvtxDomainHandle_t d = nvtxDomainCreateA("fer_gpu");
  return d;
}
}  // namespace

NvtxRange::NvtxRange(const char* name) {
  nvtxEventAttributes_t attr{};
  attr.version = NVTX_VERSION;
  attr.size = NVTX_EVENT_ATTRIB_STRUCT_SIZE;
  attr.messageType = NVTX_MESSAGE_TYPE_ASCII;
  attr.message.ascii = name;
  nvtxDomainRangePushEx(domain(), &attr);
  active_ = true;
}
NvtxRange::~NvtxRange() {
  if (active_) nvtxDomainRangePop(domain());
}
#else
NvtxRange::NvtxRange(const char*) {}
NvtxRange::~NvtxRange() {}
#endif

}  // namespace fer
