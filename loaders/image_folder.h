#pragma once
// Image-folder data sets: ROOT/train/<class>/* and ROOT/test/<class>/* (either split may be
// absent, not both), PNG/JPEG/BMP/PGM, gray or colour, any size (resized to 48x48; image_io.h).
// Class folders are named in either common layout, case-insensitive: the original Keras
// project's (angry, disgusted, fearful, happy, sad, surprised, neutral), Kaggle's image version
// (angry, disgust, fear, happy, neutral, sad, surprise), or the FER id itself ("0".."6").
// Rows are ordered train then test, by FER id, then by file name in natural order (im2 < im10).
// Hidden entries (".*") and entries without an image extension (.png .jpg .jpeg .bmp .pgm .ppm)
// are skipped: OS clutter such as Thumbs.db or .DS_Store. Every other entry of a class folder is
// used or reported; there is no silent skip: a broken symbolic link, a zero-byte file, a folder
// or device named like an image, and an image that cannot be decoded (image_io.h) are all errors,
// reported together in one message that lists each by path with its reason
// ("PATH: cannot read image: REASON"), so one run shows every file to fix.
// Other errors (fer::UserError) name the folder: an unknown class folder, two folders for one
// class, a split or class folder with no images.
#include <cstdint>
#include <string>
#include <vector>

#include "loaders/dataset.h"

namespace fer::loaders {

struct FolderListing {
  struct File {
    std::string path;
    uint8_t fer_id;
    Usage usage;
  };
  std::string root;
  std::vector<File> files;      // in row order
  std::string layout;           // e.g. "train/ and test/, class folders angry,fearful,..."
  uint64_t total_bytes = 0;     // sum of the image file sizes
  int64_t newest_mtime_ns = 0;  // newest image modification time
  uint64_t fingerprint = 0;     // hash of every (relative path, size, mtime): the cache key
};

// Lists and validates the folder structure (no decoding).
FolderListing list_image_folders(const std::string& root);

// Decodes every listed file in parallel into 48x48 gray rows.
RawData decode_image_folders(const FolderListing& listing, int threads = 0);

inline RawData read_image_folders(const std::string& root, int threads = 0) {
  return decode_image_folders(list_image_folders(root), threads);
}

// "a10" < "a9" lexicographically, but natural_less("a9", "a10").
bool natural_less(const std::string& a, const std::string& b);

}  // namespace fer::loaders
