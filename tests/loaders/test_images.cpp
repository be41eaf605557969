// Image decoding by kind (issue 17): EXIF orientation for all eight values, and every way a file
// can be refused coming out as one message of ours naming the file and the real reason.
#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "loaders/dataset.h"
#include "loaders/image_folder.h"
#include "loaders/image_io.h"
#include "tests/loaders/image_fixtures.h"
#include "tests/loaders/test_util.h"

namespace fer::loaders {
namespace {

using fixtures::exif_block;
using fixtures::jpeg_bytes;
using fixtures::png_bytes;
using fixtures::quadrants;
using fixtures::with_exif;
using testing::TempDir;
using testing::test_image;
using testing::write_file;

// The upright photo every orientation case must read back as: 64 wide, 32 tall.
constexpr int kW = 64, kH = 32;
constexpr uint8_t kTL = 20, kTR = 90, kBL = 160, kBR = 230;

// How a camera stores that photo for each EXIF orientation, written out by hand from the EXIF
// definition of the tag (where the stored 0th row and 0th column are shown) rather than computed
// with the code under test: stored width, height and quadrant values TL, TR, BL, BR.
struct Stored {
  int orientation, w, h;
  uint8_t tl, tr, bl, br;
};
constexpr std::array<Stored, 8> kStored = {{
    {1, kW, kH, kTL, kTR, kBL, kBR},  // as shown
    {2, kW, kH, kTR, kTL, kBR, kBL},  // stored mirrored left-right
    {3, kW, kH, kBR, kBL, kTR, kTL},  // stored upside down
    {4, kW, kH, kBL, kBR, kTL, kTR},  // stored mirrored top-bottom
    {5, kH, kW, kTL, kBL, kTR, kBR},  // stored transposed
    {6, kH, kW, kTR, kBR, kTL, kBL},  // stored rotated 90 degrees counter-clockwise (phone held upright)
    {7, kH, kW, kBR, kTR, kBL, kTL},  // stored transversed
    {8, kH, kW, kBL, kTL, kBR, kTR},  // stored rotated 90 degrees clockwise
}};

void expect_upright(const GrayImage& g, const std::string& what) {
  ASSERT_EQ(g.width, kW) << what;
  ASSERT_EQ(g.height, kH) << what;
  auto at = [&](int r, int c) { return int(g.pixels[size_t(r) * size_t(g.width) + size_t(c)]); };
  // Quadrant centres; JPEG rounding stays within a few levels on constant 8x8 blocks.
  EXPECT_NEAR(at(kH / 4, kW / 4), kTL, 3) << what;
  EXPECT_NEAR(at(kH / 4, 3 * kW / 4), kTR, 3) << what;
  EXPECT_NEAR(at(3 * kH / 4, kW / 4), kBL, 3) << what;
  EXPECT_NEAR(at(3 * kH / 4, 3 * kW / 4), kBR, 3) << what;
}

TEST(ImageExif, EveryOrientationReadsUprightInBothByteOrders) {
  TempDir dir;
  for (const ExifByteOrder order : {EXIF_BYTE_ORDER_INTEL, EXIF_BYTE_ORDER_MOTOROLA}) {
    for (const Stored& s : kStored) {
      const std::string what = "orientation " + std::to_string(s.orientation) +
                               (order == EXIF_BYTE_ORDER_INTEL ? " (II)" : " (MM)");
      const std::string jpeg =
          with_exif(jpeg_bytes(dir / "s.jpg", s.h, s.w, quadrants(s.h, s.w, s.tl, s.tr, s.bl, s.br)),
                    exif_block(s.orientation, order));
      const auto* d = reinterpret_cast<const uint8_t*>(jpeg.data());
      EXPECT_EQ(exif_orientation(d, jpeg.size()), s.orientation) << what;
      const std::string path = dir / (std::string("o").append(std::to_string(s.orientation)).append(".jpg"));
      write_file(path, jpeg);
      expect_upright(read_gray_image(path), what);
    }
  }
}

TEST(ImageExif, NoTagOrOutOfRangeValueLeavesTheImageAsStored) {
  TempDir dir;
  const auto px = quadrants(kH, kW, kTL, kTR, kBL, kBR);
  const std::string plain = jpeg_bytes(dir / "p.jpg", kH, kW, px);
  EXPECT_EQ(exif_orientation(reinterpret_cast<const uint8_t*>(plain.data()), plain.size()), 1);
  for (int bad : {0, 9, 300}) {
    const std::string jpeg = with_exif(plain, exif_block(bad, EXIF_BYTE_ORDER_INTEL));
    EXPECT_EQ(exif_orientation(reinterpret_cast<const uint8_t*>(jpeg.data()), jpeg.size()), 1) << bad;
    write_file(dir / "bad.jpg", jpeg);
    expect_upright(read_gray_image(dir / "bad.jpg"), "value " + std::to_string(bad));
  }
  // A damaged EXIF block is ignored, not fatal: the photo itself is fine.
  std::string broken = exif_block(6, EXIF_BYTE_ORDER_INTEL);
  broken.resize(14);
  write_file(dir / "broken_exif.jpg", with_exif(plain, broken));
  expect_upright(read_gray_image(dir / "broken_exif.jpg"), "damaged EXIF");
}

TEST(ImageExif, ImageFoldersReadPhonePhotosUpright) {
  // A phone photo stored sideways (orientation 6) in an image-folder data set trains upright: the
  // row equals the one of the same photo stored upright.
  TempDir dir;
  const Stored& six = kStored[5];
  ASSERT_EQ(six.orientation, 6);
  const std::string sideways =
      with_exif(jpeg_bytes(dir / "s.jpg", six.h, six.w, quadrants(six.h, six.w, six.tl, six.tr, six.bl, six.br)),
                exif_block(6, EXIF_BYTE_ORDER_MOTOROLA));
  write_file(dir / "r/train/happy/phone.jpg", sideways);
  write_file(dir / "r/train/sad/upright.jpg", jpeg_bytes(dir / "u.jpg", kH, kW, quadrants(kH, kW, kTL, kTR, kBL, kBR)));
  const RawData raw = read_image_folders(dir / "r", 1);
  ASSERT_EQ(raw.rows(), 2);
  const size_t n = size_t(kImageSize) * kImageSize;
  for (size_t i = 0; i < n; ++i) {
    ASSERT_NEAR(int(raw.pixels[i]), int(raw.pixels[n + i]), 3) << "pixel " << i;
  }
}

// ---- refusals, one kind at a time ----

// CRC-32 (ISO-HDLC, PNG spec annex D) of a chunk's type and data, to patch a PNG header validly.
uint32_t crc32(const uint8_t* p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return ~c;
}

void put_be32(std::string& s, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) s[at + size_t(i)] = char((v >> (24 - 8 * i)) & 0xFF);
}

// A PNG whose IHDR says width x height (CRC fixed up), the rest as written for a small image.
std::string png_claiming(const std::string& png, uint32_t width, uint32_t height) {
  std::string s = png;
  put_be32(s, 16, width);
  put_be32(s, 20, height);
  put_be32(s, 29, crc32(reinterpret_cast<const uint8_t*>(s.data()) + 12, 17));
  return s;
}

// A JPEG whose baseline frame header (SOF0) says width x height.
std::string jpeg_claiming(const std::string& jpeg, int width, int height) {
  std::string s = jpeg;
  for (size_t i = 2; i + 8 < s.size(); ++i) {
    if (uint8_t(s[i]) == 0xFF && uint8_t(s[i + 1]) == 0xC0) {
      s[i + 5] = char(height >> 8), s[i + 6] = char(height & 0xFF);
      s[i + 7] = char(width >> 8), s[i + 8] = char(width & 0xFF);
      return s;
    }
  }
  throw std::runtime_error("no SOF0");
}

// An uncompressed 8-bit gray BMP (BITMAPINFOHEADER, 256-entry gray palette).
std::string bmp_bytes(int h, int w, const std::vector<uint8_t>& px) {
  const uint32_t row = uint32_t((w + 3) / 4 * 4), offset = 14 + 40 + 1024, size = offset + row * uint32_t(h);
  std::string s(offset, '\0');
  auto le32 = [&](size_t at, uint32_t v) {
    for (int i = 0; i < 4; ++i) s[at + size_t(i)] = char((v >> (8 * i)) & 0xFF);
  };
  s[0] = 'B', s[1] = 'M';
  le32(2, size), le32(10, offset), le32(14, 40), le32(18, uint32_t(w)), le32(22, uint32_t(h));
  s[26] = 1, s[28] = 8;
  for (int i = 0; i < 256; ++i) s[54 + 4 * size_t(i)] = s[55 + 4 * size_t(i)] = s[56 + 4 * size_t(i)] = char(i);
  for (int r = h - 1; r >= 0; --r) {  // bottom-up rows
    std::string line(row, '\0');
    std::memcpy(line.data(), px.data() + size_t(r) * size_t(w), size_t(w));
    s += line;
  }
  return s;
}

std::string pgm_bytes(int h, int w, const std::vector<uint8_t>& px) {
  return "P5\n# made by a test\n" + std::to_string(w) + " " + std::to_string(h) + "\n255\n" +
         std::string(px.begin(), px.end());
}

struct Refusal {
  std::string name, bytes;
  ImageFault fault;
  std::vector<std::string> words;  // besides "PATH: cannot read image: "
};

void expect_refused(const std::string& path, ImageFault fault, const std::vector<std::string>& words) {
  ImageFault got = ImageFault::corrupt;
  try {
    read_gray_image(path, &got);
    ADD_FAILURE() << path << ": accepted";
    return;
  } catch (const UserError& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind(path + ": cannot read image: ", 0), 0u) << msg;
    for (const auto& w : words) EXPECT_NE(msg.find(w), std::string::npos) << msg << "\nmissing: " << w;
    // One line: the decoder's own text never replaces ours.
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
  EXPECT_EQ(int(got), int(fault)) << path << ": " << image_fault_name(got) << " instead of " << image_fault_name(fault);
  // The in-memory decoder agrees on the kind (files that can be read at all).
  if (fault != ImageFault::unreadable_file && fault != ImageFault::empty) {
    const std::string bytes = testing::read_file(path);
    try {
      decode_gray(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
      ADD_FAILURE() << path << ": decode_gray accepted";
    } catch (const ImageDecodeError& e) {
      EXPECT_EQ(int(e.fault()), int(fault)) << e.what();
    }
  }
}

TEST(ImageRefusal, EachKindIsOneMessageNamingTheFileAndTheReason) {
  TempDir dir;
  const auto px = test_image(3);  // 48x48 noise: compresses badly, so cuts land in the pixel data
  const std::string png = png_bytes(dir / "s.png", 48, 48, px);
  const std::string jpeg = jpeg_bytes(dir / "s.jpg", 48, 48, px, 90);
  const std::string bmp = bmp_bytes(48, 48, px);
  const std::string pgm = pgm_bytes(48, 48, px);
  // Sanity: the intact files decode.
  for (const auto& [name, bytes] : std::vector<std::pair<std::string, std::string>>{
           {"ok.png", png}, {"ok.jpg", jpeg}, {"ok.bmp", bmp}, {"ok.pgm", pgm}}) {
    write_file(dir / name, bytes);
    const GrayImage g = read_gray_image(dir / name);
    EXPECT_EQ(g.width, 48) << name;
    if (name != "ok.jpg") {
      EXPECT_EQ(g.pixels, px) << name;
    }
  }
  std::string jpeg12 = jpeg;  // SOF0 precision byte 8 -> 12: a 12-bit JPEG
  for (size_t i = 2; i + 4 < jpeg12.size(); ++i) {
    if (uint8_t(jpeg12[i]) == 0xFF && uint8_t(jpeg12[i + 1]) == 0xC0) {
      jpeg12[i + 4] = 12;
      break;
    }
  }
  std::string damaged_png = png;  // bytes inside the compressed IDAT data overwritten
  const size_t idat = damaged_png.find("IDAT");
  ASSERT_NE(idat, std::string::npos);
  for (size_t i = idat + 6; i < idat + 40; ++i) damaged_png[i] = char(0xFF);

  const std::vector<Refusal> cases = {
      {"empty.png", "", ImageFault::empty, {"empty file"}},
      {"wide.png", png_bytes(dir / "w.png", 64, 16385, std::vector<uint8_t>(size_t(16385) * 64, 7)),
       ImageFault::too_large, {"too large", "16385x64", "16384"}},
      {"huge.png", png_claiming(png, 30000, 30000), ImageFault::too_large, {"too large", "30000x30000"}},
      {"huge.jpg", jpeg_claiming(jpeg, 30000, 30000), ImageFault::too_large, {"too large", "30000x30000"}},
      // Beyond even stb's own limit (2^24 per side): still our "too large", not "unknown type".
      {"absurd.png", png_claiming(png, (1u << 24) + 1, 10), ImageFault::too_large, {"too large"}},
      {"cut.png", png.substr(0, png.size() / 2), ImageFault::truncated, {"truncated"}},
      {"no_iend.png", png.substr(0, png.size() - 12), ImageFault::truncated, {"truncated"}},
      {"cut.jpg", jpeg.substr(0, jpeg.size() * 2 / 3), ImageFault::truncated, {"truncated"}},
      {"cut_header.jpg", jpeg.substr(0, 40), ImageFault::truncated, {"truncated"}},
      {"cut.bmp", bmp.substr(0, bmp.size() - 100), ImageFault::truncated, {"truncated"}},
      {"cut.pgm", pgm.substr(0, pgm.size() - 1), ImageFault::truncated, {"truncated"}},
      {"notes.png", "these are my notes, not a picture\n", ImageFault::not_an_image,
       {"not an image", "'these are my not"}},
      {"zeros.jpg", std::string(100, '\0'), ImageFault::not_an_image, {"not an image"}},
      {"anim.png", std::string("GIF89a") + std::string(64, '\1'), ImageFault::unsupported, {"GIF"}},
      {"iphone.jpg", std::string("\0\0\0\x18" "ftypheic", 12) + std::string(64, '\0'), ImageFault::unsupported,
       {"HEIF/HEIC"}},
      {"plain.pgm", "P2\n2 2\n255\n0 1 2 3\n", ImageFault::unsupported, {"P2"}},
      {"deep.jpg", jpeg12, ImageFault::unsupported, {"unsupported JPEG variant"}},
      {"damaged.png", damaged_png, ImageFault::corrupt, {"damaged PNG data"}},
  };
  for (const Refusal& c : cases) {
    SCOPED_TRACE(c.name);
    write_file(dir / c.name, c.bytes);
    expect_refused(dir / c.name, c.fault, c.words);
  }
  // Files that cannot be read at all.
  expect_refused(dir / "missing.png", ImageFault::unreadable_file, {"No such file"});
  std::filesystem::create_directories(dir / "folder.png");
  expect_refused(dir / "folder.png", ImageFault::unreadable_file, {"a folder"});
  ASSERT_EQ(::symlink("nowhere.png", (dir / "dangling.png").c_str()), 0);
  expect_refused(dir / "dangling.png", ImageFault::unreadable_file, {"broken symbolic link", "nowhere.png"});
}

// Inputs the fuzzer (tests/fuzz) found crashing or misbehaving, each refused with our message now.
TEST(ImageRefusal, FuzzerFindingsAreRefusedCleanly) {
  const std::string dir = std::string(FER_SOURCE_DIR) + "/tests/fuzz/regressions/image/";
  // A JPEG Huffman table declaring more than 256 codes: stb 2.27 writes past its table.
  for (const char* name : {"stb-dht-more-than-256-codes.jpg", "stb-dht-more-than-256-codes-2.jpg",
                           "stb-dht-more-than-256-codes-3.jpg"}) {
    expect_refused(dir + name, ImageFault::corrupt, {"Huffman table", "at most 256"});
  }
  // A PGM header number of 17 digits: stb 2.27 overflows an int parsing it.
  expect_refused(dir + "stb-pnm-integer-overflow.pgm", ImageFault::too_large, {"10 or more digits"});
}

}  // namespace
}  // namespace fer::loaders
