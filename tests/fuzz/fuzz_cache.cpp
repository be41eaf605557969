// libFuzzer target: the binary cache reader (loaders/cache.h read_cache). A bad cache must come
// back as missing/stale/corrupt with a reason, never throw or crash.
//
// The cache header carries the source key and two hashes; left alone, nearly every mutation stops
// at "bad header". So the key passed in is always the one the header names, and half of the
// inputs (byte 191 odd: left as they are) exercise the hash checks while the other half are
// re-sealed: payload hash (when the payload length fits the header) and header hash recomputed
// with loaders/hash.h, as write_cache does. LLVMFuzzerInitialize checks the re-sealing against a
// real write_cache() output. read_cache reads a path, so each input goes to a per-process file.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "loaders/cache.h"
#include "loaders/hash.h"
#include "tests/common/temp_files.h"

namespace {

using fer::loaders::CacheKey;
using fer::loaders::CacheRead;
using fer::loaders::RawData;

// Header layout (cache.cpp CacheHeader, 192 bytes, little-endian): magic[8] version endian
// header_bytes format (u32 each) source_size u64 mtime i64 fingerprint u64 rows u64 height width
// labeled reserved (u32 each) layout[96] payload_bytes payload_hash header_hash (u64 each).
constexpr size_t kHeader = 192;
template <class T>
T at(const std::string& b, size_t off) {
  T v;
  std::memcpy(&v, b.data() + off, sizeof v);
  return v;
}

void seal(std::string& b) {
  const uint64_t rows = at<uint64_t>(b, 48);
  const uint64_t img = uint64_t(at<uint32_t>(b, 56)) * at<uint32_t>(b, 60);
  const uint64_t payload = b.size() - kHeader;
  if (rows < (1ULL << 32) && img < (1ULL << 24) && rows * (img + 2) == payload) {
    const char* p = b.data() + kHeader;
    uint64_t h = fer::loaders::hash_bytes(p, rows, 1);  // fer ids
    h = fer::loaders::hash_bytes(p + rows, rows, h);     // usages
    h = fer::loaders::hash_bytes(p + 2 * rows, rows * img, h);  // pixels
    std::memcpy(b.data() + 176, &h, 8);
  }
  const uint64_t hh = fer::loaders::hash_bytes(b.data(), 184, 0x48454144ULL);
  std::memcpy(b.data() + 184, &hh, 8);
}

CacheKey key_of(const std::string& b) {
  CacheKey k;
  if (b.size() < kHeader) return k;
  k.format = fer::loaders::SourceFormat(at<uint32_t>(b, 20));
  k.source_size = at<uint64_t>(b, 24);
  k.source_mtime_ns = at<int64_t>(b, 32);
  k.fingerprint = at<uint64_t>(b, 40);
  return k;
}

fer::test_files::TempDir* g_dir = nullptr;
std::string g_path;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_dir = new fer::test_files::TempDir("fer_fuzz_cache");
  g_path = *g_dir / "c.fercache";
  RawData raw;
  raw.height = raw.width = 2;
  raw.layout = "emotion,pixels,Usage";
  raw.pixels = {1, 2, 3, 4, 5, 6, 7, 8};
  raw.fer_ids = {0, 6};
  raw.usage = {fer::loaders::Usage::training, fer::loaders::Usage::public_test};
  CacheKey key;
  key.source_size = 1234;
  key.fingerprint = 99;
  std::string why;
  if (!fer::loaders::write_cache(g_path, key, raw, &why)) {
    std::fprintf(stderr, "fuzz_cache: cannot write %s: %s\n", g_path.c_str(), why.c_str());
    std::abort();
  }
  const std::string real = fer::test_files::read_file(g_path);
  std::string resealed = real;
  std::memset(resealed.data() + 176, 0, 16);
  seal(resealed);
  if (resealed != real) {
    std::fprintf(stderr, "fuzz_cache: the re-sealing no longer matches cache.cpp; update it\n");
    std::abort();
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  if (size >= kHeader && !(data[191] & 1)) seal(bytes);
  fer::test_files::write_file(g_path, bytes);
  RawData out;
  std::string why;
  const CacheRead r = fer::loaders::read_cache(g_path, key_of(bytes), &out, &why);
  if (r == CacheRead::ok) {
    if (out.pixels.size() != size_t(out.rows()) * size_t(out.height) * size_t(out.width)) std::abort();
  } else if (why.empty()) {
    std::abort();  // every refusal says why
  }
  return 0;
}
