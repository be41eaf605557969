#include "loaders/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "engine/error.h"

namespace fer::loaders {

namespace {

std::string errno_text() { return std::strerror(errno); }

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

}  // namespace

bool file_stat(const std::string& path, uint64_t* size, int64_t* mtime_ns) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
  *size = uint64_t(st.st_size);
  *mtime_ns = int64_t(st.st_mtim.tv_sec) * 1000000000LL + int64_t(st.st_mtim.tv_nsec);
  return true;
}

MappedFile::MappedFile(const std::string& path, uint64_t max_bytes) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) throw UserError(path + ": cannot open: " + errno_text());
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw UserError(path + ": cannot stat: " + errno_text());
  if (!S_ISREG(st.st_mode)) throw UserError(path + ": not a regular file");
  if (uint64_t(st.st_size) > max_bytes) {
    throw UserError(path + ": " + std::to_string(uint64_t(st.st_size)) +
                    " bytes is larger than the " + std::to_string(max_bytes >> 20) +
                    " MiB limit for this kind of file");
  }
  size_ = size_t(st.st_size);
  if (size_ == 0) {
    data_ = "";
    return;
  }
  void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd.get(), 0);
  if (p != MAP_FAILED) {
    map_ = p;
    data_ = static_cast<const char*>(p);
    ::madvise(p, size_, MADV_SEQUENTIAL);
    return;
  }
  // Some file systems cannot be mapped; read the file instead.
  fallback_.resize(size_);
  size_t done = 0;
  while (done < size_) {
    const ssize_t got = ::read(fd.get(), fallback_.data() + done, size_ - done);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) throw UserError(path + ": read failed: " + (got < 0 ? errno_text() : "short read"));
    done += size_t(got);
  }
  data_ = fallback_.data();
}

MappedFile::~MappedFile() {
  if (map_) ::munmap(map_, size_);
}

}  // namespace fer::loaders
