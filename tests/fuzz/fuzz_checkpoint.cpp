// libFuzzer target: the checkpoint reader (engine/training/checkpoint.h parse_checkpoint), with and
// without weights_only. A bad file must end in fer::UserError.
//
// A checkpoint carries checksums of its header and payload, so nearly every mutation would stop
// at "checksum does not match" and the section parser behind it would never be reached. Half of
// the inputs (last header byte odd: left as they are) exercise the checks themselves; the other
// half are re-sealed first: payload size and both checksums recomputed with the writer's own
// checkpoint_checksum(); LLVMFuzzerInitialize checks that re-sealing a real serialize_checkpoint()
// output gives the same bytes (the header layout assumed here), and aborts if not.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "engine/error.h"
#include "engine/training/checkpoint.h"

namespace {


// Header (checkpoint.h): magic[8] version u32 header u32 payload_size u64 payload_sum u64 arch u64
// header_sum u64, little-endian.
void seal(std::string& b) {
  const size_t head = fer::training::kCheckpointHeaderBytes;
  const uint64_t payload_size = b.size() - head;
  const uint64_t payload_sum = fer::training::checkpoint_checksum(b.data() + head, size_t(payload_size));
  std::memcpy(b.data() + 16, &payload_size, 8);
  std::memcpy(b.data() + 24, &payload_sum, 8);
  const uint64_t header_sum = fer::training::checkpoint_checksum(b.data(), 40);
  std::memcpy(b.data() + 40, &header_sum, 8);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fer::training::Checkpoint c;
  c.model_name = "model4";
  c.class_names = {"angry", "happy"};
  c.config_text = "[model]\nname = \"model4\"\n";
  c.params = {1.0f, 2.0f, 3.0f};
  const std::string real = fer::training::serialize_checkpoint(c);
  std::string resealed = real;
  std::memset(resealed.data() + 16, 0, 16);  // payload size and checksum
  std::memset(resealed.data() + 40, 0, 8);   // header checksum
  seal(resealed);
  if (resealed != real) {
    std::fprintf(stderr, "fuzz_checkpoint: re-sealing no longer reproduces serialize_checkpoint(); update seal()\n");
    std::abort();
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  const bool as_is = size < fer::training::kCheckpointHeaderBytes || (data[47] & 1);
  if (!as_is) seal(bytes);
  for (const bool weights_only : {false, true}) {
    try {
      (void)fer::training::parse_checkpoint(bytes, "fuzz.ckpt", weights_only);
    } catch (const fer::UserError&) {
    }
  }
  return 0;
}
