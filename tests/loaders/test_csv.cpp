// Kaggle CSV reader: every accepted variant parses to the same pixels; every malformed input is a
// UserError naming the file and the right line.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <vector>

#include "loaders/csv_reader.h"
#include "loaders/dataset.h"
#include "tests/loaders/test_util.h"

namespace fer::loaders {
namespace {

using testing::expect_user_error;
using testing::pixel_text;
using testing::test_image;

constexpr int kPx = 2304;

RawData parse(const std::string& text, int threads = 1) {
  return parse_kaggle_csv(text.data(), text.size(), "mem.csv", threads);
}

// Three rows: (emotion, usage) = (0, Training), (3, PublicTest), (6, PrivateTest).
struct Rows {
  std::vector<std::vector<uint8_t>> px{test_image(0), test_image(1), test_image(2)};
  std::vector<int> emotion{0, 3, 6};
  std::vector<std::string> usage{"Training", "PublicTest", "PrivateTest"};
};

void expect_pixels(const RawData& raw, const Rows& rows) {
  ASSERT_EQ(raw.rows(), 3);
  ASSERT_EQ(raw.pixels.size(), size_t(3 * kPx));
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(0, std::memcmp(raw.pixels.data() + i * kPx, rows.px[size_t(i)].data(), kPx)) << "row " << i;
  }
}

TEST(Csv, KaggleLayoutLfWithFinalNewline) {
  Rows r;
  std::string t = "emotion,pixels,Usage\n";
  for (int i = 0; i < 3; ++i) {
    t += std::to_string(r.emotion[size_t(i)]) + "," + pixel_text(r.px[size_t(i)].data()) + "," +
         r.usage[size_t(i)] + "\n";
  }
  const RawData raw = parse(t);
  expect_pixels(raw, r);
  EXPECT_TRUE(raw.labeled);
  EXPECT_EQ(raw.layout, "emotion,pixels,Usage");
  EXPECT_EQ(raw.fer_ids, (std::vector<uint8_t>{0, 3, 6}));
  EXPECT_EQ(raw.usage, (std::vector<Usage>{Usage::training, Usage::public_test, Usage::private_test}));
}

TEST(Csv, CrlfWithoutFinalNewline) {
  Rows r;
  std::string t = "emotion,pixels,Usage\r\n";
  for (int i = 0; i < 3; ++i) {
    if (i) t += "\r\n";
    t += std::to_string(r.emotion[size_t(i)]) + "," + pixel_text(r.px[size_t(i)].data()) + "," +
         r.usage[size_t(i)];
  }
  const RawData raw = parse(t);
  expect_pixels(raw, r);
  EXPECT_EQ(raw.fer_ids, (std::vector<uint8_t>{0, 3, 6}));
  EXPECT_EQ(raw.usage[2], Usage::private_test);
}

TEST(Csv, IcmlLayoutWithSpacesAfterCommas) {
  Rows r;
  std::string t = "emotion, Usage, pixels\n";
  for (int i = 0; i < 3; ++i) {
    t += std::to_string(r.emotion[size_t(i)]) + ", " + r.usage[size_t(i)] + ", " +
         pixel_text(r.px[size_t(i)].data()) + "\n";
  }
  const RawData raw = parse(t);
  expect_pixels(raw, r);
  EXPECT_EQ(raw.layout, "emotion,Usage,pixels");
  EXPECT_EQ(raw.fer_ids, (std::vector<uint8_t>{0, 3, 6}));
  EXPECT_EQ(raw.usage, (std::vector<Usage>{Usage::training, Usage::public_test, Usage::private_test}));
}

TEST(Csv, EmotionPixelsOnlyIsAllTraining) {
  Rows r;
  std::string t = "emotion,pixels\n";
  for (int i = 0; i < 3; ++i) {
    t += std::to_string(r.emotion[size_t(i)]) + "," + pixel_text(r.px[size_t(i)].data()) + "\n";
  }
  const RawData raw = parse(t);
  expect_pixels(raw, r);
  EXPECT_TRUE(raw.labeled);
  EXPECT_EQ(raw.usage, (std::vector<Usage>(3, Usage::training)));
}

TEST(Csv, PixelsOnlyIsUnlabeled) {
  Rows r;
  std::string t = "pixels\n";
  for (int i = 0; i < 3; ++i) t += pixel_text(r.px[size_t(i)].data()) + "\n";
  const RawData raw = parse(t);
  expect_pixels(raw, r);
  EXPECT_FALSE(raw.labeled);
  EXPECT_EQ(raw.fer_ids, (std::vector<uint8_t>(3, kNoLabel)));
  const Dataset d = make_dataset(parse(t), "mem.csv", {});
  EXPECT_EQ(d.labels, (std::vector<int32_t>(3, -1)));
  expect_user_error([&] { d.require_labels("training"); }, {"mem.csv", "no emotion column", "training"});
}

TEST(Csv, BomQuotesTabsBlankLinesAndCaseInsensitiveNames) {
  Rows r;
  std::string t = "\xEF\xBB\xBF\"Emotion\",\"Pixels\",\"USAGE\"\n\n";
  for (int i = 0; i < 3; ++i) {
    t += " " + std::to_string(r.emotion[size_t(i)]) + " ,\"" + pixel_text(r.px[size_t(i)].data(), kPx, "\t ") +
         " \",\"" + r.usage[size_t(i)] + "\"\r\n\r\n";
  }
  const RawData raw = parse(t);
  expect_pixels(raw, r);
  EXPECT_EQ(raw.fer_ids, (std::vector<uint8_t>{0, 3, 6}));
}

// The committed real sample, rewritten into every variant, parses to the same pixels.
TEST(Csv, CommittedSampleVariantsAgree) {
  const std::string text = testing::read_file(testing::sample_csv_path());
  ASSERT_FALSE(text.empty()) << testing::sample_csv_path();
  const RawData base = parse(text);
  ASSERT_EQ(base.rows(), 108);

  // Split into (emotion, pixels, usage) lines.
  std::vector<std::array<std::string, 3>> rows;
  size_t pos = text.find('\n') + 1;
  while (pos < text.size()) {
    const size_t nl = text.find('\n', pos);
    const std::string line = text.substr(pos, nl - pos);
    const size_t c1 = line.find(','), c2 = line.rfind(',');
    rows.push_back({line.substr(0, c1), line.substr(c1 + 1, c2 - c1 - 1), line.substr(c2 + 1)});
    pos = nl + 1;
  }
  ASSERT_EQ(rows.size(), 108u);
  std::string crlf = "emotion,pixels,Usage\r\n", icml = "emotion, Usage, pixels\n",
              two = "emotion,pixels\n", one = "pixels\n";
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& [e, p, u] = rows[i];
    crlf += e + "," + p + "," + u + (i + 1 < rows.size() ? "\r\n" : "");
    icml += e + ", " + u + ", " + p + "\n";
    two += e + "," + p + "\n";
    one += p + "\n";
  }
  for (const std::string* v : {&crlf, &icml, &two, &one}) {
    const RawData raw = parse(*v);
    EXPECT_EQ(raw.pixels, base.pixels);
    if (v != &one) {
      EXPECT_EQ(raw.fer_ids, base.fer_ids);
    }
    if (v == &crlf || v == &icml) {
      EXPECT_EQ(raw.usage, base.usage);
    }
  }
}

// Enough data to use many chunks: the parallel parse equals the sequential one, and errors are
// reported at their physical line whichever chunk they fall in.
std::string big_csv(int copies, std::vector<int64_t>* row_lines = nullptr) {
  const std::string text = testing::read_file(testing::sample_csv_path());
  const size_t body = text.find('\n') + 1;
  std::string out = text.substr(0, body);
  int64_t line = 1;
  for (int c = 0; c < copies; ++c) {
    // Alternate LF and CRLF copies and add a blank line between copies.
    std::string part = text.substr(body);
    if (c % 2) {
      std::string crlf;
      for (char ch : part) {
        if (ch == '\n') crlf += '\r';
        crlf += ch;
      }
      part = crlf;
    }
    for (char ch : part) {
      if (ch == '\n') {
        ++line;
        if (row_lines) row_lines->push_back(line);
      }
    }
    out += part;
    out += "\n";
    ++line;
  }
  return out;
}

TEST(Csv, ParallelParseMatchesSequential) {
  const std::string t = big_csv(24);  // ~21 MB
  const RawData seq = parse(t, 1);
  const RawData par = parse(t, 8);
  EXPECT_EQ(seq.rows(), 24 * 108);
  EXPECT_EQ(seq.pixels, par.pixels);
  EXPECT_EQ(seq.fer_ids, par.fer_ids);
  EXPECT_EQ(seq.usage, par.usage);
}

TEST(Csv, ParallelParseReportsFirstErrorLine) {
  std::vector<int64_t> lines;
  std::string t = big_csv(24, &lines);
  // Corrupt two rows far apart (an emotion digit -> '9'); the earlier one must be reported.
  auto corrupt_row = [&](size_t k) {
    size_t pos = 0;
    for (int64_t l = 1; l < lines[k]; ++l) pos = t.find('\n', pos) + 1;
    t[pos] = '9';
  };
  const size_t late = lines.size() - 5, early = lines.size() / 3;
  corrupt_row(late);
  corrupt_row(early);
  for (int threads : {1, 3, 8}) {
    expect_user_error([&] { parse(t, threads); },
                      {"mem.csv:" + std::to_string(lines[early]) + ": emotion '9' out of range 0..6"});
  }
}

struct BadCase {
  const char* name;
  std::string text;
  std::vector<std::string> parts;
};

std::string row(int emotion, const std::string& pixels, const std::string& usage = "Training") {
  return std::to_string(emotion) + "," + pixels + "," + usage;
}

std::string good_pixels() {
  const auto px = test_image(7);
  return pixel_text(px.data());
}

std::string pixels_with(int index, const std::string& token) {
  auto px = test_image(7);
  std::string s;
  for (int i = 0; i < kPx; ++i) {
    if (i) s += ' ';
    s += i == index ? token : std::to_string(px[size_t(i)]);
  }
  return s;
}

TEST(Csv, BadInputsNameFileAndLine) {
  const std::string H = "emotion,pixels,Usage\n";
  const std::string G = good_pixels();
  const auto px = test_image(7);
  const std::string short_px = pixel_text(px.data(), kPx - 1);
  const std::string long_px = G + " 12";
  const std::vector<BadCase> cases = {
      {"wrong pixel count (short)", H + row(0, G) + "\n" + row(1, short_px) + "\n",
       {"mem.csv:3: expected 2304 pixels (48x48), found 2303"}},
      {"wrong pixel count (long)", H + row(0, G) + "\n" + row(0, G) + "\n" + row(1, long_px) + "\n",
       {"mem.csv:4: expected 2304 pixels (48x48), found 2305"}},
      {"non-numeric pixel", H + row(0, pixels_with(4, "12a")) + "\n",
       {"mem.csv:2: pixel 5 is '12a', not an integer in 0..255"}},
      {"decimal pixel", H + row(0, G) + "\n" + row(0, pixels_with(0, "1.5")) + "\n",
       {"mem.csv:3: pixel 1 is '1.5', not an integer"}},
      {"pixel out of range", H + row(0, pixels_with(2303, "256")) + "\n",
       {"mem.csv:2: pixel 2304 is '256', out of range 0..255"}},
      {"negative pixel", H + row(0, pixels_with(10, "-3")) + "\n",
       {"mem.csv:2: pixel 11 is '-3', out of range 0..255"}},
      {"label out of range", H + row(0, G) + "\n" + row(0, G) + "\n" + row(7, G) + "\n",
       {"mem.csv:4: emotion '7' out of range 0..6"}},
      {"label not a number", H + "x," + G + ",Training\n", {"mem.csv:2: emotion 'x' is not an integer"}},
      {"empty label", H + "," + G + ",Training\n", {"mem.csv:2: empty emotion field"}},
      {"unknown usage", H + row(0, G) + "\n" + row(2, G, "Validation") + "\n",
       {"mem.csv:3: unknown Usage 'Validation' (expected Training, PublicTest or PrivateTest)"}},
      {"missing pixels column", "emotion,Usage\n0,Training\n", {"mem.csv:1: no 'pixels' column"}},
      {"unknown column", "emotion,pixels,split\n", {"mem.csv:1: unknown column 'split'"}},
      {"duplicate column", "emotion,pixels,emotion\n", {"mem.csv:1: column 'emotion' appears twice"}},
      {"no header", row(0, G) + "\n", {"mem.csv:1: no header row"}},
      {"missing field in a row", H + row(0, G) + "\n" + "0," + G + "\n",
       {"mem.csv:3: expected 3 fields (emotion,pixels,Usage), found 2"}},
      {"extra field in a row", H + row(0, G) + ",x\n", {"mem.csv:2: expected 3 fields", "found 4"}},
      {"empty file", "", {"mem.csv: empty file"}},
      {"bom only", "\xEF\xBB\xBF", {"mem.csv: empty file"}},
      {"header only", H, {"mem.csv: header only, no data rows"}},
      {"header and blank lines", H + "\n\r\n\n", {"mem.csv: header only, no data rows"}},
      {"empty header line", "\n" + row(0, G) + "\n", {"mem.csv:1: empty header line"}},
      {"truncated last line", H + row(0, G) + "\n" + row(0, G) + "\n" + G.substr(0, 3001),
       {"mem.csv:4: ", "the last line has no newline: is the file truncated?"}},
      {"truncated mid-pixel-field (pixels last)",
       "emotion, Usage, pixels\n0, Training, " + G + "\n" + ("3, Training, " + G).substr(0, 6000),
       {"mem.csv:3: expected 2304 pixels (48x48), found", "truncated?"}},
      {"error line counts blank and CRLF lines",
       "emotion,pixels,Usage\r\n\r\n" + row(0, G) + "\r\n\r\n\r\n" + row(0, short_px) + "\r\n",
       {"mem.csv:6: expected 2304 pixels (48x48), found 2303"}},
      {"binary garbage with NUL", std::string("\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16),
       {"mem.csv: binary data (NUL bytes), not a CSV file"}},
  };
  for (const BadCase& c : cases) {
    SCOPED_TRACE(c.name);
    for (int threads : {1, 4}) expect_user_error([&] { parse(c.text, threads); }, c.parts);
  }
}

TEST(Csv, BinaryGarbageWithoutNulIsRejected) {
  std::string t;
  uint32_t x = 12345;
  for (int i = 0; i < 100000; ++i) {
    x = x * 1103515245u + 12345u;
    t += char(0x80 | (x >> 25));  // high bytes, no NUL, no newline
    if (i % 5000 == 4999) t += '\n';
  }
  expect_user_error([&] { parse(t); }, {"mem.csv:1:"});
}

int64_t resident_pages(const std::string& path);

TEST(Csv, AbsurdlyLongLineIsRejectedQuickly) {
  // A 1 GiB single data line (the cap plus 4 KiB of digits, then a sparse hole of NULs), parsed
  // from a mapping of the file: only the first kMaxCsvLineBytes (and the chunker's one probe
  // window) may be looked at. Checked by the pages brought into the page cache, not by a
  // wall-clock bound (that fails on a loaded machine): stopping at the cap leaves the cap plus a
  // readahead window or two resident (4096 pages here, read_ahead_kb 8192), scanning the line
  // leaves the whole 262144.
  constexpr size_t kBytes = size_t(1) << 30;
  testing::TempDir dir;
  const std::string path = dir / "long.csv";
  testing::write_file(path, "emotion,pixels,Usage\n0," + std::string(kMaxCsvLineBytes + 4096, '7'));
  std::filesystem::resize_file(path, kBytes);
  const int fd = ::open(path.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  void* map = ::mmap(nullptr, kBytes, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  ASSERT_NE(map, MAP_FAILED);
  const int64_t before = resident_pages(path);
  for (int threads : {1, 4}) {
    expect_user_error([&] { parse_kaggle_csv(static_cast<const char*>(map), kBytes, "mem.csv", threads); },
                      {"mem.csv:2: line is longer than " + std::to_string(kMaxCsvLineBytes) + " bytes"});
  }
  ::munmap(map, kBytes);
  const int64_t read_pages = resident_pages(path) - before;
  const int64_t file_pages = int64_t(kBytes / size_t(::sysconf(_SC_PAGESIZE)));
  EXPECT_LT(read_pages, file_pages / 16) << "the scan must stop at the line cap: " << read_pages << " of "
                                         << file_pages << " pages were read";
  // A long header line too.
  std::string h(1u << 20, 'a');
  expect_user_error([&] { parse(h); }, {"mem.csv:1: line is longer than"});
}

TEST(Csv, LongLineAfterGoodRowsNamesItsLine) {
  const std::string G = good_pixels();
  std::string t = "emotion,pixels,Usage\n" + row(0, G) + "\n" + row(1, G) + "\n";
  t += "0," + std::string(kMaxCsvLineBytes + 10, '1') + ",Training\n" + row(0, G) + "\n";
  expect_user_error([&] { parse(t, 1); }, {"mem.csv:4: line is longer than"});
}

TEST(Csv, ManyShortLinesDoNotAllocatePixels) {
  // 20 MB of one-character lines: rejected in the counting pass at the first line.
  std::string t = "emotion,pixels,Usage\n";
  for (int i = 0; i < 10000000; ++i) t += "1\n";
  expect_user_error([&] { parse(t, 4); }, {"mem.csv:2: expected 3 fields"});
}

TEST(Csv, FileErrorsNameThePath) {
  testing::TempDir dir;
  expect_user_error([&] { read_kaggle_csv(dir / "missing.csv"); }, {dir / "missing.csv", "cannot open"});
  expect_user_error([&] { read_kaggle_csv(dir.path()); }, {dir.path(), "not a regular file"});
  testing::write_file(dir / "empty.csv", "");
  expect_user_error([&] { read_kaggle_csv(dir / "empty.csv"); }, {dir / "empty.csv", "empty file"});
  testing::write_file(dir / "bad.csv", "emotion,pixels,Usage\n3,1 2 3,Training\n");
  expect_user_error([&] { load_dataset(dir / "bad.csv", {}); },
                    {dir / "bad.csv:2: expected 2304 pixels (48x48), found 3"});
  // Nothing was cached for the bad file.
  EXPECT_FALSE(std::filesystem::exists(dir / "bad.csv.fercache"));
}

// Pages of `path` held in the page cache (mincore over a fresh mapping): which parts of a file
// anything has read since it was written, independent of how long that took.
int64_t resident_pages(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw std::runtime_error("cannot open " + path);
  const size_t size = size_t(std::filesystem::file_size(path));
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) throw std::runtime_error("cannot map " + path);
  const size_t page = size_t(::sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> in_core((size + page - 1) / page);
  const int rc = ::mincore(p, size, in_core.data());
  ::munmap(p, size);
  if (rc != 0) throw std::runtime_error("mincore failed");
  int64_t n = 0;
  for (unsigned char c : in_core) n += c & 1;
  return n;
}

TEST(Csv, SparseHugeFileIsRejectedWithoutReadingIt) {
  // A 1 GiB single line (8 KiB of digits, then NULs: a sparse file, no disk used).
  testing::TempDir dir;
  const std::string p = dir / "huge.csv";
  testing::write_file(p, "emotion,pixels,Usage\n0," + std::string(8192, '7'));
  std::filesystem::resize_file(p, 1ull << 30);
  const int64_t before = resident_pages(p);
  expect_user_error([&] { read_kaggle_csv(p, 2); }, {p + ":2: line is longer than"});
  // "Without reading it" counted in pages, not seconds (a wall-clock bound failed on a loaded
  // machine): reading the hole brings its pages into the page cache, so a reader that stops at
  // the line cap (256 KiB) leaves at most the cap plus the kernel's readahead windows resident,
  // while reading the whole line would leave about 1 GiB (4096 of 262144 pages here with
  // read_ahead_kb 8192). 1/16 of the file separates the two with room for larger readahead.
  const int64_t read_pages = resident_pages(p) - before;
  const int64_t file_pages = int64_t((1ull << 30) / size_t(::sysconf(_SC_PAGESIZE)));
  EXPECT_LT(read_pages, file_pages / 16) << read_pages << " of " << file_pages << " pages were read";
}

}  // namespace
}  // namespace fer::loaders
