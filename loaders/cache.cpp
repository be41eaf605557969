#include "loaders/cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

#include "engine/error.h"
#include "loaders/hash.h"
#include "loaders/mapped_file.h"

namespace fs = std::filesystem;

namespace fer::loaders {
namespace {

constexpr char kMagic[8] = {'F', 'E', 'R', 'C', 'A', 'C', 'H', 'E'};
constexpr uint32_t kEndianMark = 0x01020304u;

struct CacheHeader {
  char magic[8];
  uint32_t version;
  uint32_t endian;
  uint32_t header_bytes;
  uint32_t format;
  uint64_t source_size;
  int64_t source_mtime_ns;
  uint64_t fingerprint;
  uint64_t rows;
  uint32_t height, width;
  uint32_t labeled;
  uint32_t reserved;
  char layout[96];
  uint64_t payload_bytes;
  uint64_t payload_hash;
  uint64_t header_hash;  // of every byte above
};
static_assert(sizeof(CacheHeader) == 192, "cache header layout");

uint64_t header_hash(const CacheHeader& h) {
  return hash_bytes(&h, offsetof(CacheHeader, header_hash), 0x48454144ULL);
}

uint64_t payload_hash(const RawData& raw) {
  uint64_t h = hash_bytes(raw.fer_ids.data(), raw.fer_ids.size(), 1);
  h = hash_bytes(raw.usage.data(), raw.usage.size(), h);
  return hash_bytes(raw.pixels.data(), raw.pixels.size(), h);
}

struct FileCloser {
  void operator()(std::FILE* f) const {
    if (f) std::fclose(f);
  }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

std::string strip_slashes(std::string s) {
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

bool read_exact(std::FILE* f, void* dst, size_t n) { return std::fread(dst, 1, n, f) == n; }

}  // namespace

CacheKey csv_cache_key(const std::string& path) {
  CacheKey key;
  key.format = SourceFormat::csv;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw UserError(path + ": cannot stat: " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw UserError(path + ": not a regular file");
  if (!file_stat(path, &key.source_size, &key.source_mtime_ns)) {
    throw UserError(path + ": cannot stat: " + std::strerror(errno));
  }
  // A hash of the first and last 64 KiB: catches rewrites that keep size and mtime.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw UserError(path + ": cannot open: " + std::strerror(errno));
  constexpr size_t kProbe = 64 * 1024;
  std::vector<char> buf(kProbe);
  Hasher h;
  for (int part = 0; part < 2; ++part) {
    const uint64_t off = part == 0 ? 0 : (key.source_size > kProbe ? key.source_size - kProbe : 0);
    const ssize_t got = ::pread(fd, buf.data(), kProbe, off_t(off));
    if (got > 0) h.add(buf.data(), size_t(got));
  }
  ::close(fd);
  key.fingerprint = h.digest();
  return key;
}

std::string cache_path_for(const std::string& source, const std::string& cache_dir) {
  const std::string src = strip_slashes(source);
  if (cache_dir.empty()) return src + ".fercache";
  std::error_code ec;
  fs::path abs = fs::absolute(src, ec);
  if (ec) abs = src;
  const std::string abs_s = abs.lexically_normal().string();
  char tag[17];
  std::snprintf(tag, sizeof tag, "%016llx",
                static_cast<unsigned long long>(hash_bytes(abs_s.data(), abs_s.size())));
  std::string name = fs::path(src).filename().string();
  if (name.empty() || name == "." || name == "..") name = "data";
  return (fs::path(strip_slashes(cache_dir)) / (name + "-" + std::string(tag, 8) + ".fercache"))
      .string();
}

CacheRead read_cache(const std::string& path, const CacheKey& key, RawData* out, std::string* why) {
  File f(std::fopen(path.c_str(), "rb"));
  if (!f) {
    if (errno == ENOENT) {
      *why = "no cache yet";
      return CacheRead::missing;
    }
    *why = std::string("cannot open: ") + std::strerror(errno);
    return CacheRead::corrupt;
  }
  struct stat st {};
  if (::fstat(fileno(f.get()), &st) != 0 || !S_ISREG(st.st_mode)) {
    *why = "not a regular file";
    return CacheRead::corrupt;
  }
  CacheHeader h{};
  if (!read_exact(f.get(), &h, sizeof h)) {
    *why = "shorter than its header";
    return CacheRead::corrupt;
  }
  if (std::memcmp(h.magic, kMagic, sizeof kMagic) != 0 || h.endian != kEndianMark ||
      h.header_bytes != sizeof(CacheHeader) || h.header_hash != header_hash(h)) {
    *why = "bad header (not a fer_gpu cache, or damaged)";
    return CacheRead::corrupt;
  }
  if (h.version != kCacheVersion) {
    *why = "written by cache format version " + std::to_string(h.version) + ", this build reads " +
           std::to_string(kCacheVersion);
    return CacheRead::stale;
  }
  if (h.format != uint32_t(key.format) || h.source_size != key.source_size ||
      h.source_mtime_ns != key.source_mtime_ns || h.fingerprint != key.fingerprint) {
    *why = "the source changed since the cache was written";
    return CacheRead::stale;
  }
  const uint64_t img = uint64_t(h.height) * h.width;
  if (h.height == 0 || h.width == 0 || h.height > 4096 || h.width > 4096 ||
      h.rows > (uint64_t(1) << 40) / (img + 2) || h.payload_bytes != h.rows * (img + 2) ||
      uint64_t(st.st_size) != sizeof(CacheHeader) + h.payload_bytes) {
    *why = "size does not match its header (truncated?)";
    return CacheRead::corrupt;
  }
  RawData raw;
  raw.format = SourceFormat(h.format);
  raw.layout.assign(h.layout, strnlen(h.layout, sizeof h.layout));
  raw.height = int(h.height);
  raw.width = int(h.width);
  raw.labeled = h.labeled != 0;
  raw.fer_ids.resize(h.rows);
  raw.usage.resize(h.rows);
  raw.pixels.resize(h.rows * img);
  if (!read_exact(f.get(), raw.fer_ids.data(), raw.fer_ids.size()) ||
      !read_exact(f.get(), raw.usage.data(), raw.usage.size()) ||
      !read_exact(f.get(), raw.pixels.data(), raw.pixels.size())) {
    *why = "read failed (truncated?)";
    return CacheRead::corrupt;
  }
  if (payload_hash(raw) != h.payload_hash) {
    *why = "checksum mismatch";
    return CacheRead::corrupt;
  }
  for (size_t i = 0; i < raw.fer_ids.size(); ++i) {
    const bool id_ok = raw.labeled ? raw.fer_ids[i] < kNumFerClasses : raw.fer_ids[i] == kNoLabel;
    if (!id_ok || uint8_t(raw.usage[i]) >= kNumUsages) {
      *why = "invalid label or usage in row " + std::to_string(i);
      return CacheRead::corrupt;
    }
  }
  *out = std::move(raw);
  return CacheRead::ok;
}

bool write_cache(const std::string& path, const CacheKey& key, const RawData& raw, std::string* why) {
  const fs::path target(path);
  std::error_code ec;
  if (target.has_parent_path()) fs::create_directories(target.parent_path(), ec);
  static std::atomic<unsigned> counter{0};
  const std::string tmp =
      path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter.fetch_add(1));
  CacheHeader h{};
  std::memcpy(h.magic, kMagic, sizeof kMagic);
  h.version = kCacheVersion;
  h.endian = kEndianMark;
  h.header_bytes = sizeof(CacheHeader);
  h.format = uint32_t(key.format);
  h.source_size = key.source_size;
  h.source_mtime_ns = key.source_mtime_ns;
  h.fingerprint = key.fingerprint;
  h.rows = uint64_t(raw.rows());
  h.height = uint32_t(raw.height);
  h.width = uint32_t(raw.width);
  h.labeled = raw.labeled ? 1 : 0;
  std::strncpy(h.layout, raw.layout.c_str(), sizeof h.layout - 1);
  h.payload_bytes = h.rows * (uint64_t(h.height) * h.width + 2);
  h.payload_hash = payload_hash(raw);
  h.header_hash = header_hash(h);
  bool ok = false;
  {
    File f(std::fopen(tmp.c_str(), "wb"));
    if (!f) {
      *why = "cannot create " + tmp + ": " + std::strerror(errno);
      return false;
    }
    ok = std::fwrite(&h, sizeof h, 1, f.get()) == 1 &&
         std::fwrite(raw.fer_ids.data(), 1, raw.fer_ids.size(), f.get()) == raw.fer_ids.size() &&
         std::fwrite(raw.usage.data(), 1, raw.usage.size(), f.get()) == raw.usage.size() &&
         std::fwrite(raw.pixels.data(), 1, raw.pixels.size(), f.get()) == raw.pixels.size() &&
         std::fflush(f.get()) == 0 && ::fsync(fileno(f.get())) == 0;
    if (!ok) *why = std::string("cannot write ") + tmp + ": " + std::strerror(errno);
    if (std::fclose(f.release()) != 0 && ok) {
      ok = false;
      *why = std::string("cannot close ") + tmp + ": " + std::strerror(errno);
    }
  }
  if (ok && std::rename(tmp.c_str(), path.c_str()) != 0) {
    ok = false;
    *why = "cannot rename " + tmp + " to " + path + ": " + std::strerror(errno);
  }
  if (!ok) std::remove(tmp.c_str());
  return ok;
}

}  // namespace fer::loaders
