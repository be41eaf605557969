#pragma once
// Binary cache of a parsed source: a fixed header (magic, format version, the source's key,
// shape, a checksum of the payload and one of the header itself) followed by the rows' FER ids,
// usages and pixels. It holds the source as read, before drop/remap, so one cache serves every
// class configuration. A cache is used only when its header, size, key and checksum all agree;
// otherwise it is reported stale or corrupt and rebuilt. Writes go to a temporary file in the
// same folder that is renamed over the old cache, so a crash never leaves a half-written cache
// under the real name and concurrent writers do not corrupt each other.
#include <cstdint>
#include <string>

#include "loaders/dataset.h"

namespace fer::loaders {

// What ties a cache to its source. CSV: the file's size and mtime plus a hash of its first and
// last 64 KiB. Image folders: total image bytes, newest mtime, and a hash over every file's
// relative path, size and mtime.
struct CacheKey {
  SourceFormat format = SourceFormat::csv;
  uint64_t source_size = 0;
  int64_t source_mtime_ns = 0;
  uint64_t fingerprint = 0;
};

// The key of a CSV file (throws UserError when it cannot be read).
CacheKey csv_cache_key(const std::string& path);

// Where the cache of `source` lives: beside it (SOURCE.fercache) or, with cache_dir, in that
// folder under the source's file name plus a hash of its absolute path.
std::string cache_path_for(const std::string& source, const std::string& cache_dir);

enum class CacheRead { ok, missing, stale, corrupt };

// Reads the cache at `path` into *out when it matches `key` and passes every check; *why says
// what failed otherwise. Never throws for a bad cache file.
CacheRead read_cache(const std::string& path, const CacheKey& key, RawData* out, std::string* why);

// Writes the cache atomically. Returns false with *why when it cannot (read-only folder, disk
// full); the caller carries on without a cache.
bool write_cache(const std::string& path, const CacheKey& key, const RawData& raw, std::string* why);

constexpr uint32_t kCacheVersion = 1;

}  // namespace fer::loaders
