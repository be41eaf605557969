#pragma once
// Test photos the project makes itself: FER faces from the bundled sample, upscaled (bicubic) and
// placed at known positions on a larger, textured background, so a test knows where every face is.
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "loaders/dataset.h"
#include "loaders/faces.h"

namespace fer::testing {

inline const loaders::Dataset& sample() {
  static const loaders::Dataset ds = [] {
    loaders::DatasetOptions options;
    options.cache = loaders::CacheMode::off;
    return loaders::load_dataset(std::string(FER_SOURCE_DIR) + "/data/sample/fer2013_sample.csv", options);
  }();
  return ds;
}

// A height x width background: a smooth diagonal gradient with a fixed, mild texture (no face-
// like structure), the same every run.
inline loaders::GrayImage background(int height, int width) {
  loaders::GrayImage img;
  img.height = height;
  img.width = width;
  img.pixels.resize(size_t(height) * size_t(width));
  uint32_t state = 12345;
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      state = state * 1664525u + 1013904223u;
      const int noise = int((state >> 24) % 9) - 4;
      const int v = 70 + (100 * x) / width + (50 * y) / height + noise;
      img.pixels[size_t(y) * width + x] = uint8_t(std::clamp(v, 0, 255));
    }
  }
  return img;
}

struct Placed {
  int row;             // sample row
  loaders::FaceBox at;  // where the upscaled face lies (square)
};

// Pastes sample row `row`, upscaled to side x side, with its top-left corner at (x, y).
inline Placed place_face(loaders::GrayImage& img, int row, int x, int y, int side) {
  cv::Mat face(48, 48, CV_8UC1, const_cast<uint8_t*>(sample().image(row)));
  cv::Mat big;
  cv::resize(face, big, cv::Size(side, side), 0, 0, cv::INTER_CUBIC);
  cv::Mat canvas(img.height, img.width, CV_8UC1, img.pixels.data());
  big.copyTo(canvas(cv::Rect(x, y, side, side)));
  return {row, loaders::FaceBox{x, y, side, side}};
}

inline double iou(const loaders::FaceBox& a, const loaders::FaceBox& b) {
  const int x0 = std::max(a.x, b.x), y0 = std::max(a.y, b.y);
  const int x1 = std::min(a.x + a.width, b.x + b.width), y1 = std::min(a.y + a.height, b.y + b.height);
  const double inter = double(std::max(0, x1 - x0)) * std::max(0, y1 - y0);
  return inter / (double(a.width) * a.height + double(b.width) * b.height - inter);
}

// Sample rows whose face the cascade finds, alone and where it was put, at 4x on the background:
// the faces the multi-face pictures are made of (the cascade misses some FER faces: profiles,
// hands over the face, strong tilt).
inline std::vector<int> detectable_rows(int want) {
  std::vector<int> rows;
  for (int r = 0; r < sample().size() && int(rows.size()) < want; ++r) {
    loaders::GrayImage img = background(400, 400);
    const Placed p = place_face(img, r, 100, 100, 192);
    const auto faces = loaders::find_faces(img, 48, 48);
    if (faces.size() == 1 && iou(faces[0].box, p.at) > 0.6) rows.push_back(r);
  }
  return rows;
}

}  // namespace fer::testing
