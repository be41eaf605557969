#include "loaders/image_folder.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>
#include <filesystem>
#include <thread>

#include "engine/error.h"
#include "loaders/hash.h"
#include "loaders/image_io.h"
#include "loaders/text_util.h"

namespace fs = std::filesystem;

namespace fer::loaders {
namespace {

bool has_image_extension(const std::string& name) {
  const size_t dot = name.rfind('.');
  if (dot == std::string::npos) return false;
  const std::string ext = to_lower(std::string_view(name).substr(dot + 1));
  return ext == "png" || ext == "jpg" || ext == "jpeg" || ext == "bmp" || ext == "pgm" ||
         ext == "ppm";
}

// One message for every unusable entry of the class folders (the first kMaxListed by path, then
// a count), so a user fixes them all in one go.
constexpr size_t kMaxListed = 20;
std::string unusable_message(std::vector<std::pair<size_t, std::string>> errors) {
  std::sort(errors.begin(), errors.end());
  std::string msg = errors.size() == 1 ? std::string() :
      std::to_string(errors.size()) + " images cannot be used (fix or remove them):\n  ";
  for (size_t i = 0; i < errors.size() && i < kMaxListed; ++i) msg += (i ? "\n  " : "") + errors[i].second;
  if (errors.size() > kMaxListed) msg += "\n  ... and " + std::to_string(errors.size() - kMaxListed) + " more";
  return msg;
}

struct ClassDir {
  std::string name;
  std::string path;
  int fer_id;
};

}  // namespace

bool natural_less(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    const bool da = a[i] >= '0' && a[i] <= '9', db = b[j] >= '0' && b[j] <= '9';
    if (da && db) {
      size_t ie = i, je = j;
      while (ie < a.size() && a[ie] >= '0' && a[ie] <= '9') ++ie;
      while (je < b.size() && b[je] >= '0' && b[je] <= '9') ++je;
      size_t is = i, js = j;  // skip leading zeros
      while (is + 1 < ie && a[is] == '0') ++is;
      while (js + 1 < je && b[js] == '0') ++js;
      if (ie - is != je - js) return ie - is < je - js;
      const int c = a.compare(is, ie - is, b, js, je - js);
      if (c != 0) return c < 0;
      i = ie;
      j = je;
    } else {
      if (a[i] != b[j]) return static_cast<unsigned char>(a[i]) < static_cast<unsigned char>(b[j]);
      ++i;
      ++j;
    }
  }
  if ((a.size() - i) != (b.size() - j)) return a.size() - i < b.size() - j;
  return a < b;  // e.g. "im01" vs "im1": any fixed order
}

FolderListing list_image_folders(const std::string& root_in) {
  std::string root = root_in;
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  std::error_code ec;
  if (!fs::is_directory(root, ec)) throw UserError(root + ": not a folder");
  FolderListing listing;
  listing.root = root;
  Hasher fp;
  // Decoded pixels depend on the decoder too: a cache made before EXIF orientation was applied
  // must not be reused for the same files.
  fp.add_value(uint64_t(kImageDecodeVersion));
  const struct {
    const char* dir;
    Usage usage;
  } splits[] = {{"train", Usage::training}, {"test", Usage::test}};
  int splits_found = 0;
  std::string split_names;
  std::vector<std::string> class_names_seen;
  std::vector<std::pair<size_t, std::string>> bad_entries;  // (listing order, message)
  for (const auto& split : splits) {
    // The split folder, matched case-insensitively.
    std::string split_path;
    for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
      if (equals_ignore_case(it->path().filename().string(), split.dir) && it->is_directory(ec)) {
        split_path = it->path().string();
      }
    }
    if (ec) throw UserError(root + ": cannot list folder: " + ec.message());
    if (split_path.empty()) continue;
    ++splits_found;
    split_names += std::string(split_names.empty() ? "" : " and ") + split.dir + "/";
    std::vector<ClassDir> classes;
    for (fs::directory_iterator it(split_path, ec), end; !ec && it != end; it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (name.empty() || name[0] == '.' || !it->is_directory(ec)) continue;
      const int id = parse_fer_class(name);
      if (id < 0) {
        throw UserError(it->path().string() + ": unknown class folder " +
                        quoted_excerpt(name.data(), name.size(), 40) +
                        " (expected angry, disgust(ed), fear(ful), happy, sad, surprise(d), "
                        "neutral, or a FER id 0..6)");
      }
      for (const ClassDir& c : classes) {
        if (c.fer_id == id) {
          throw UserError(split_path + ": folders '" + c.name + "' and '" + name +
                          "' both name class " + fer_class_names()[size_t(id)]);
        }
      }
      classes.push_back(ClassDir{name, it->path().string(), id});
    }
    if (ec) throw UserError(split_path + ": cannot list folder: " + ec.message());
    if (classes.empty()) {
      throw UserError(split_path + ": no class folders (expected " + split_path +
                      "/<class>/*.png, class one of angry, disgust, fear, happy, sad, surprise, "
                      "neutral)");
    }
    std::sort(classes.begin(), classes.end(),
              [](const ClassDir& a, const ClassDir& b) { return a.fer_id < b.fer_id; });
    for (const ClassDir& c : classes) {
      if (std::find(class_names_seen.begin(), class_names_seen.end(), c.name) ==
          class_names_seen.end()) {
        class_names_seen.push_back(c.name);
      }
      // Every entry with an image extension is used or reported: whatever it is (a file, a
      // symbolic link, a broken link, a folder), it goes on the list, and one that cannot be an
      // image (broken link, empty, not a file) is reported below with the other bad entries.
      std::vector<std::string> names;
      for (fs::directory_iterator it(c.path, ec), end; !ec && it != end; it.increment(ec)) {
        const std::string name = it->path().filename().string();
        if (name.empty() || name[0] == '.' || !has_image_extension(name)) continue;
        names.push_back(name);
      }
      if (ec) throw UserError(c.path + ": cannot list folder: " + ec.message());
      if (names.empty()) {
        throw UserError(c.path + ": no images (expected .png, .jpg, .jpeg, .bmp, .pgm or .ppm files)");
      }
      std::sort(names.begin(), names.end(), natural_less);
      const std::string rel_prefix = std::string(split.dir) + "/" + c.name + "/";
      for (const std::string& name : names) {
        FolderListing::File f{c.path + "/" + name, uint8_t(c.fer_id), split.usage};
        struct stat st {};
        std::string why;
        if (::stat(f.path.c_str(), &st) != 0) {
          struct stat lst {};
          why = errno == ENOENT && ::lstat(f.path.c_str(), &lst) == 0 && S_ISLNK(lst.st_mode)
                    ? "broken symbolic link (its target does not exist)"
                    : std::string(std::strerror(errno));
        } else if (S_ISDIR(st.st_mode)) {
          why = "a folder, not an image file";
        } else if (!S_ISREG(st.st_mode)) {
          why = "not a regular file";
        } else if (st.st_size == 0) {
          why = "empty file (0 bytes)";
        }
        if (!why.empty()) {
          bad_entries.emplace_back(listing.files.size() + bad_entries.size(), image_error_message(f.path, why));
          continue;
        }
        const int64_t mtime =
            int64_t(st.st_mtim.tv_sec) * 1000000000LL + int64_t(st.st_mtim.tv_nsec);
        listing.total_bytes += uint64_t(st.st_size);
        listing.newest_mtime_ns = std::max(listing.newest_mtime_ns, mtime);
        const std::string rel = rel_prefix + name;
        fp.add(rel.data(), rel.size());
        fp.add_value(uint64_t(st.st_size));
        fp.add_value(mtime);
        fp.add_value(f.fer_id);
        listing.files.push_back(std::move(f));
      }
    }
  }
  if (splits_found == 0) {
    throw UserError(root + ": no train/ or test/ folder (expected " + root +
                    "/train/<class>/*.png and/or " + root + "/test/<class>/*.png)");
  }
  if (!bad_entries.empty()) throw UserError(unusable_message(std::move(bad_entries)));
  listing.fingerprint = fp.digest();
  listing.layout = split_names + ", class folders ";
  for (size_t i = 0; i < class_names_seen.size(); ++i) {
    listing.layout += (i ? "," : "") + class_names_seen[i];
  }
  return listing;
}

RawData decode_image_folders(const FolderListing& listing, int threads) {
  RawData raw;
  raw.format = SourceFormat::image_folders;
  raw.layout = listing.layout;
  raw.labeled = true;
  const size_t n = listing.files.size();
  const size_t img = size_t(kImageSize) * kImageSize;
  raw.pixels.resize(n * img);
  raw.fer_ids.resize(n);
  raw.usage.resize(n);
  std::atomic<size_t> next{0};
  std::vector<std::pair<size_t, std::string>> errors;  // (row, message), every bad image
  std::atomic_flag error_lock = ATOMIC_FLAG_INIT;
  auto worker = [&] {
    std::vector<uint8_t> bytes;
    GrayImage g;
    std::string error;
    for (size_t i = next.fetch_add(1); i < n; i = next.fetch_add(1)) {
      const FolderListing::File& f = listing.files[i];
      raw.fer_ids[i] = f.fer_id;
      raw.usage[i] = f.usage;
      if (try_read_gray_image(f.path, &g, &error, &bytes)) {
        uint8_t* dst = raw.pixels.data() + i * img;
        if (g.height == kImageSize && g.width == kImageSize) {
          std::memcpy(dst, g.pixels.data(), img);
        } else {
          resize_nearest(g.pixels.data(), g.height, g.width, dst, kImageSize, kImageSize);
        }
      } else {
        while (error_lock.test_and_set(std::memory_order_acquire)) {
        }
        errors.emplace_back(i, error);
        error_lock.clear(std::memory_order_release);
      }
    }
  };
  int t = threads > 0 ? threads : int(std::thread::hardware_concurrency());
  t = std::max(1, std::min<int>(t, int(std::min<size_t>(n / 64 + 1, 64))));
  {
    std::vector<std::thread> pool;
    for (int k = 1; k < t; ++k) pool.emplace_back(worker);
    worker();
    for (auto& th : pool) th.join();
  }
  if (!errors.empty()) throw UserError(unusable_message(std::move(errors)));
  return raw;
}

}  // namespace fer::loaders
