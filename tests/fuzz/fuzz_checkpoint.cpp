// libFuzzer target: the checkpoint reader (engine/training/checkpoint.h parse_checkpoint), with and
// without weights_only. A bad file must end in fer::UserError.
//
// A checkpoint carries checksums of its header and payload, so nearly every mutation would stop
// at "checksum does not match" and the section parser behind it would never be reached. Half of
// the inputs (last header byte odd: left as they are) exercise the checks themselves; the other
// half are re-sealed first: payload size and both checksums recomputed as the writer does. The
// checksum below is a copy of checkpoint.cpp's private one; LLVMFuzzerInitialize checks that the
// copy still re-seals a real serialize_checkpoint() output to the same bytes, and aborts if not.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "engine/error.h"
#include "engine/training/checkpoint.h"

namespace {

uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

// Copy of engine/training/checkpoint.cpp checksum().
uint64_t checksum(const void* data, size_t n) {
  constexpr uint64_t k1 = 0x9E3779B185EBCA87ULL, k2 = 0xC2B2AE3D27D4EB4FULL, k3 = 0x165667B19E3779F9ULL;
  const unsigned char* p = static_cast<const unsigned char*>(data);
  uint64_t lane[4] = {k1 + k2, k2, 0, 0 - k1};
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    for (int l = 0; l < 4; ++l) {
      uint64_t w;
      std::memcpy(&w, p + i + 8 * l, 8);
      lane[l] = rotl(lane[l] + w * k2, 31) * k1;
    }
  }
  uint64_t h = rotl(lane[0], 1) + rotl(lane[1], 7) + rotl(lane[2], 12) + rotl(lane[3], 18) + k3 + uint64_t(n);
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    h = rotl(h ^ (rotl(w * k2, 31) * k1), 27) * k1 + 0x85EBCA77C2B2AE63ULL;
  }
  for (; i < n; ++i) h = rotl(h ^ (uint64_t(p[i]) * k3), 11) * k1;
  h ^= h >> 33;
  h *= 0xFF51AFD7ED558CCDULL;
  h ^= h >> 33;
  h *= 0xC4CEB9FE1A85EC53ULL;
  h ^= h >> 33;
  return h;
}

// Header (checkpoint.h): magic[8] version u32 header u32 payload_size u64 payload_sum u64 arch u64
// header_sum u64, little-endian.
void seal(std::string& b) {
  const size_t head = fer::training::kCheckpointHeaderBytes;
  const uint64_t payload_size = b.size() - head;
  const uint64_t payload_sum = checksum(b.data() + head, size_t(payload_size));
  std::memcpy(b.data() + 16, &payload_size, 8);
  std::memcpy(b.data() + 24, &payload_sum, 8);
  const uint64_t header_sum = checksum(b.data(), 40);
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
    std::fprintf(stderr, "fuzz_checkpoint: the checksum copy no longer matches checkpoint.cpp; update it\n");
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
