#pragma once
// A read-only view of a whole file: memory-mapped (POSIX), or read into memory when mapping is
// not possible. Regular files only; the size is checked against a cap before anything is mapped.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace fer::loaders {

class MappedFile {
 public:
  // Throws fer::UserError ("PATH: ...") when the path is missing, not a regular file,
  // unreadable, or larger than max_bytes.
  MappedFile(const std::string& path, uint64_t max_bytes);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const char* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  const char* data_ = nullptr;
  size_t size_ = 0;
  void* map_ = nullptr;
  std::vector<char> fallback_;
};

// Size and modification time (ns since the epoch) of a regular file; false when it cannot be
// stat'ed.
bool file_stat(const std::string& path, uint64_t* size, int64_t* mtime_ns);

}  // namespace fer::loaders
