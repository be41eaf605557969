#pragma once
// Image files made in the tests: stb writes the pixels, libexif writes the EXIF block (its own
// writer, exif_data_save_data), and with_exif() puts that block into a JPEG as an APP1 segment
// right after SOI, where cameras put it (EXIF 2.32 section 4.5.4; JPEG marker FF E1 followed by a
// big-endian length that counts itself).
#include <libexif/exif-data.h>

#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "loaders/image_io.h"
#include "tests/common/temp_files.h"

namespace fer::loaders::fixtures {

// "Exif\0\0" + TIFF header + IFD0 holding Orientation = `orientation` (any 16-bit value, so tests
// can store out-of-range ones too), in the given byte order.
inline std::string exif_block(int orientation, ExifByteOrder order) {
  ExifData* ed = exif_data_new();
  if (!ed) throw std::runtime_error("exif_data_new failed");
  exif_data_set_byte_order(ed, order);
  ExifEntry* e = exif_entry_new();
  exif_content_add_entry(ed->ifd[EXIF_IFD_0], e);
  exif_entry_initialize(e, EXIF_TAG_ORIENTATION);
  exif_set_short(e->data, order, ExifShort(orientation));
  exif_entry_unref(e);
  unsigned char* buf = nullptr;
  unsigned int len = 0;
  exif_data_save_data(ed, &buf, &len);
  exif_data_unref(ed);
  if (!buf || len == 0) throw std::runtime_error("exif_data_save_data wrote nothing");
  std::string out(reinterpret_cast<const char*>(buf), len);
  std::free(buf);
  return out;
}

// `jpeg` with an APP1 segment carrying `exif` inserted after its SOI marker.
inline std::string with_exif(const std::string& jpeg, const std::string& exif) {
  if (jpeg.size() < 2 || uint8_t(jpeg[0]) != 0xFF || uint8_t(jpeg[1]) != 0xD8) {
    throw std::runtime_error("with_exif: not a JPEG");
  }
  const size_t len = exif.size() + 2;
  if (len > 0xFFFF) throw std::runtime_error("with_exif: EXIF block too long for one segment");
  std::string app1 = {char(0xFF), char(0xE1), char(len >> 8), char(len & 0xFF)};
  return jpeg.substr(0, 2) + app1 + exif + jpeg.substr(2);
}

// Encoded bytes of a gray image, through the project's own writers.
inline std::string jpeg_bytes(const std::string& scratch, int h, int w, const std::vector<uint8_t>& px,
                              int quality = 100) {
  write_jpeg(scratch, h, w, 1, px.data(), quality);
  return test_files::read_file(scratch);
}
inline std::string png_bytes(const std::string& scratch, int h, int w, const std::vector<uint8_t>& px) {
  write_png(scratch, h, w, 1, px.data());
  return test_files::read_file(scratch);
}

// An h x w gray image of four constant quadrants (top-left, top-right, bottom-left, bottom-right):
// with sides that are multiples of 16, JPEG keeps each quadrant constant up to rounding.
inline std::vector<uint8_t> quadrants(int h, int w, uint8_t tl, uint8_t tr, uint8_t bl, uint8_t br) {
  std::vector<uint8_t> px(size_t(h) * size_t(w));
  for (int r = 0; r < h; ++r) {
    for (int c = 0; c < w; ++c) {
      const bool top = r < h / 2, left = c < w / 2;
      px[size_t(r) * size_t(w) + size_t(c)] = top ? (left ? tl : tr) : (left ? bl : br);
    }
  }
  return px;
}

}  // namespace fer::loaders::fixtures
