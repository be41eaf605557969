#pragma once
// Helpers shared by the loader tests: temporary folders, files, CSV text, error matching.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "engine/error.h"

#include "tests/common/temp_files.h"
#include "tests/common/user_error.h"

namespace fer::loaders::testing {

using test_files::read_file;
using test_files::TempDir;
using test_files::write_file;

inline std::string pixel_text(const uint8_t* px, int n = 2304, const std::string& sep = " ") {
  std::string s;
  s.reserve(size_t(n) * 4);
  for (int i = 0; i < n; ++i) {
    if (i) s += sep;
    s += std::to_string(px[i]);
  }
  return s;
}

// Deterministic test image k (every value 0..255 appears across images).
inline std::vector<uint8_t> test_image(int k, int n = 2304) {
  std::vector<uint8_t> px(static_cast<size_t>(n));
  uint32_t x = 2654435761u * uint32_t(k + 1);
  for (int i = 0; i < n; ++i) {
    x = x * 1664525u + 1013904223u;
    px[size_t(i)] = uint8_t(x >> 24);
  }
  px[0] = 0;
  px[size_t(n) - 1] = 255;
  return px;
}

inline std::string sample_csv_path() { return std::string(FER_SOURCE_DIR) + "/data/sample/fer2013_sample.csv"; }

using fer::test_errors::expect_user_error;

}  // namespace fer::loaders::testing
