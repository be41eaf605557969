// libFuzzer target: the run-config TOML reader (models/run_config.h parse_run_config, toml++
// underneath) and, for configs it accepts, building the model graph from them. A bad config must
// end in fer::UserError naming the key or line.
#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/error.h"
#include "models/run_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 64 * 1024) return 0;  // configs are a few KB; longer inputs only slow the search
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const fer::models::RunConfig config = fer::models::parse_run_config(text, "fuzz.toml");
    (void)fer::models::build_graph(config);
  } catch (const fer::UserError&) {
  }
  return 0;
}
