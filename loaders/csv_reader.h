#pragma once
// Kaggle FER2013 CSV reader: a hand-rolled, multi-threaded parser over the memory-mapped file.
//
// Accepted:
//   * a header row naming the columns, in any order, names trimmed and case-insensitive:
//       emotion,pixels,Usage     (fer2013.csv)
//       emotion, Usage, pixels   (icml_face_data.csv: a space after each comma)
//       emotion,pixels           (train.csv: every row is Training)
//       pixels                   (test.csv: unlabeled; fine for predict, an error for train)
//     A UTF-8 byte-order mark before the header is skipped.
//   * fields may carry spaces/tabs around them and one pair of double quotes;
//   * pixels: 48*48 = 2304 integers 0..255 separated by spaces or tabs;
//   * emotion: an integer 0..6; Usage: Training, PublicTest or PrivateTest (any case);
//   * LF or CRLF line endings, with or without a final newline; empty lines are ignored.
// Rejected with "NAME:LINE: message" (fer::UserError; LINE is the 1-based physical line, the
// header being line 1), and nothing is returned half-way: wrong pixel count, non-numeric or
// out-of-range pixel, label out of range, unknown Usage, missing/unknown/duplicate column,
// missing header, empty file, header only, a truncated last line, binary data, lines longer than
// kMaxCsvLineBytes. Memory stays bounded: no line is copied, and the pixel array is sized from
// the number of lines long enough to be a valid row (at most about half the file size).
#include <cstddef>
#include <cstdint>
#include <string>

#include "loaders/dataset.h"

namespace fer::loaders {

constexpr size_t kMaxCsvLineBytes = 256 * 1024;     // a valid row is under 10 KB
constexpr uint64_t kMaxCsvFileBytes = 4ULL << 30;   // fer2013.csv is 296 MB

// Parses CSV text held in memory; `name` starts every error message.
RawData parse_kaggle_csv(const char* data, size_t size, const std::string& name, int threads = 0);

// Maps and parses a CSV file.
RawData read_kaggle_csv(const std::string& path, int threads = 0);

}  // namespace fer::loaders
