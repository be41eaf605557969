#pragma once
// Image decoding/encoding through stb (compiled once in stb_impl.cpp), with the conversions Keras'
// load_img(color_mode="grayscale", target_size=(48, 48)) applies, so an image folder gives the
// pixels the original project trained on:
//   * colour -> gray with PIL's convert("L") formula, L = R*299/1000 + G*587/1000 + B*114/1000
//     (rounded); an alpha channel is ignored, as PIL does;
//   * resizing with nearest neighbour, flow_from_directory's default interpolation, sampling
//     source pixel floor((x + 0.5) * src / dst) as PIL's NEAREST resize does.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace fer::loaders {

struct GrayImage {
  int height = 0, width = 0;
  std::vector<uint8_t> pixels;  // [height, width]
};

constexpr int kMaxImageSide = 16384;                  // larger images are rejected (bounded memory)
constexpr uint64_t kMaxImageFileBytes = 64ULL << 20;  // 64 MiB per image file

// Decodes PNG, JPEG, BMP or PGM/PPM bytes to 8-bit gray. Throws std::runtime_error with the
// decoder's reason (the caller adds the file name).
GrayImage decode_gray(const uint8_t* data, size_t size);

// Nearest-neighbour resize of an 8-bit gray image (see above).
void resize_nearest(const uint8_t* src, int src_h, int src_w, uint8_t* dst, int dst_h, int dst_w);

// Writers for tests and debugging dumps (channels 1 or 3). Throw std::runtime_error on failure.
void write_png(const std::string& path, int height, int width, int channels, const uint8_t* data);
void write_jpeg(const std::string& path, int height, int width, int channels, const uint8_t* data,
                int quality);

}  // namespace fer::loaders
