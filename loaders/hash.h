#pragma once
// A fast non-cryptographic 64-bit checksum (four multiply-rotate lanes over 32-byte blocks and a
// final avalanche) for the cache's integrity check and the folder fingerprint. Not for security:
// it detects truncation, bit rot and edits, not tampering.
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace fer::loaders {

inline uint64_t hash_rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

inline uint64_t hash_avalanche(uint64_t x) {
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ULL;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBULL;
  x ^= x >> 31;
  return x;
}

inline uint64_t hash_bytes(const void* data, size_t n, uint64_t seed = 0) {
  constexpr uint64_t k1 = 0x9E3779B185EBCA87ULL, k2 = 0xC2B2AE3D27D4EB4FULL;
  const unsigned char* p = static_cast<const unsigned char*>(data);
  uint64_t lane[4] = {seed + k1, seed ^ k2, seed + 0x165667B19E3779F9ULL, seed - k1};
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    for (int l = 0; l < 4; ++l) {
      uint64_t w;
      std::memcpy(&w, p + i + 8 * l, 8);
      lane[l] = hash_rotl(lane[l] + w * k2, 31) * k1;
    }
  }
  uint64_t h = hash_rotl(lane[0], 1) + hash_rotl(lane[1], 7) + hash_rotl(lane[2], 12) +
               hash_rotl(lane[3], 18) + uint64_t(n);
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    h = hash_rotl(h ^ (w * k2), 27) * k1 + 0x85EBCA77C2B2AE63ULL;
  }
  for (; i < n; ++i) h = hash_rotl(h ^ (uint64_t(p[i]) * k1), 11) * k2;
  return hash_avalanche(h);
}

// Incremental variant for small pieces (strings, sizes) combined in order.
class Hasher {
 public:
  void add(const void* data, size_t n) { state_ = hash_bytes(data, n, state_ ^ 0x5851F42D4C957F2DULL); }
  template <typename T>
  void add_value(const T& v) {
    add(&v, sizeof v);
  }
  uint64_t digest() const { return hash_avalanche(state_ + 1); }

 private:
  uint64_t state_ = 0;
};

}  // namespace fer::loaders
