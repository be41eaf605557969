#include "loaders/image_io.h"

#include <stdexcept>

#include <stb_image.h>
#include <stb_image_write.h>

namespace fer::loaders {

GrayImage decode_gray(const uint8_t* data, size_t size) {
  if (size == 0) throw std::runtime_error("empty file");
  if (size > size_t(kMaxImageFileBytes)) throw std::runtime_error("file larger than 64 MiB");
  int w = 0, h = 0, channels = 0;
  if (!stbi_info_from_memory(data, int(size), &w, &h, &channels)) {
    const char* why = stbi_failure_reason();
    throw std::runtime_error(std::string("not a PNG, JPEG, BMP or PGM image (") +
                             (why ? why : "unknown format") + ")");
  }
  if (w <= 0 || h <= 0 || w > kMaxImageSide || h > kMaxImageSide) {
    throw std::runtime_error("image of " + std::to_string(w) + "x" + std::to_string(h) +
                             " pixels is outside 1..16384 per side");
  }
  unsigned char* px = stbi_load_from_memory(data, int(size), &w, &h, &channels, 0);
  if (!px) {
    const char* why = stbi_failure_reason();
    throw std::runtime_error(std::string("cannot decode image (") + (why ? why : "corrupt data") + ")");
  }
  GrayImage out;
  out.height = h;
  out.width = w;
  const size_t n = size_t(w) * size_t(h);
  out.pixels.resize(n);
  if (channels <= 2) {  // gray or gray+alpha: the gray channel
    for (size_t i = 0; i < n; ++i) out.pixels[i] = px[i * size_t(channels)];
  } else {  // RGB or RGBA: ITU-R 601-2 luma, rounded
    for (size_t i = 0; i < n; ++i) {
      const unsigned char* p = px + i * size_t(channels);
      out.pixels[i] = uint8_t((299u * p[0] + 587u * p[1] + 114u * p[2] + 500u) / 1000u);
    }
  }
  stbi_image_free(px);
  return out;
}

void resize_nearest(const uint8_t* src, int src_h, int src_w, uint8_t* dst, int dst_h, int dst_w) {
  std::vector<int> cols(static_cast<size_t>(dst_w));
  for (int x = 0; x < dst_w; ++x) {
    int sx = int((double(x) + 0.5) * double(src_w) / double(dst_w));
    cols[size_t(x)] = sx < src_w ? sx : src_w - 1;
  }
  for (int y = 0; y < dst_h; ++y) {
    int sy = int((double(y) + 0.5) * double(src_h) / double(dst_h));
    if (sy >= src_h) sy = src_h - 1;
    const uint8_t* row = src + size_t(sy) * size_t(src_w);
    for (int x = 0; x < dst_w; ++x) dst[size_t(y) * size_t(dst_w) + size_t(x)] = row[cols[size_t(x)]];
  }
}

void write_png(const std::string& path, int height, int width, int channels, const uint8_t* data) {
  if (!stbi_write_png(path.c_str(), width, height, channels, data, width * channels)) {
    throw std::runtime_error(path + ": cannot write PNG");
  }
}

void write_jpeg(const std::string& path, int height, int width, int channels, const uint8_t* data,
                int quality) {
  if (!stbi_write_jpg(path.c_str(), width, height, channels, data, quality)) {
    throw std::runtime_error(path + ": cannot write JPEG");
  }
}

}  // namespace fer::loaders
