#include "loaders/faces.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>

#include "engine/error.h"

#ifdef FER_HAVE_OPENCV
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/objdetect.hpp>
#endif

namespace fer::loaders {

FaceBox crop_region(const FaceBox& box, int image_h, int image_w, double margin) {
  const int mx = int(std::lround(margin * box.width)), my = int(std::lround(margin * box.height));
  const int x0 = std::max(0, box.x - mx), y0 = std::max(0, box.y - my);
  const int x1 = std::min(image_w, box.x + box.width + mx), y1 = std::min(image_h, box.y + box.height + my);
  return FaceBox{x0, y0, std::max(0, x1 - x0), std::max(0, y1 - y0)};
}

#ifdef FER_HAVE_OPENCV

namespace {

const char* default_cascade() {
#ifdef FER_FACE_CASCADE_PATH
  return FER_FACE_CASCADE_PATH;
#else
  return "";
#endif
}

// Loading the cascade's XML takes tens of milliseconds: each file is loaded once per process.
// detectMultiScale is not const, so calls on one classifier are serialised.
struct Cascade {
  std::mutex mutex;
  cv::CascadeClassifier classifier;
};

Cascade& cascade_for(const std::string& path) {
  static std::mutex registry_mutex;
  static std::map<std::string, std::unique_ptr<Cascade>> registry;
  std::lock_guard<std::mutex> lock(registry_mutex);
  auto& slot = registry[path];
  if (!slot) {
    auto c = std::make_unique<Cascade>();
    bool loaded = false;
    try {
      loaded = c->classifier.load(path);
    } catch (const cv::Exception&) {
      loaded = false;
    }
    if (!loaded || c->classifier.empty()) {
      registry.erase(path);
      throw UserError("cannot load the face detector " + (path.empty() ? std::string("(no cascade path)") : path) +
                      ": install Debian's opencv-data (haarcascade_frontalface_default.xml)");
    }
    slot = std::move(c);
  }
  return *slot;
}

cv::Mat as_mat(const GrayImage& image) {
  return cv::Mat(image.height, image.width, CV_8UC1, const_cast<uint8_t*>(image.pixels.data()));
}

}  // namespace

bool face_detection_available() { return true; }

std::string face_detector_description() {
  return std::string("OpenCV ") + CV_VERSION + " Haar cascade " + default_cascade();
}

std::vector<uint8_t> crop_resize_area(const GrayImage& image, const FaceBox& r, int out_h, int out_w) {
  if (r.width < 1 || r.height < 1 || r.x < 0 || r.y < 0 || r.x + r.width > image.width || r.y + r.height > image.height) {
    throw std::invalid_argument("crop_resize_area: region outside the image");
  }
  std::vector<uint8_t> out(size_t(out_h) * size_t(out_w));
  cv::Mat dst(out_h, out_w, CV_8UC1, out.data());
  cv::resize(as_mat(image)(cv::Rect(r.x, r.y, r.width, r.height)), dst, cv::Size(out_w, out_h), 0, 0, cv::INTER_AREA);
  if (dst.data != out.data()) throw std::logic_error("cv::resize reallocated its output");
  return out;
}

std::vector<FaceCrop> find_faces(const GrayImage& image, int out_h, int out_w, const FaceFinderOptions& options) {
  if (image.height < 1 || image.width < 1) return {};
  Cascade& cascade = cascade_for(options.cascade_path.empty() ? default_cascade() : options.cascade_path);
  const cv::Mat full = as_mat(image);
  const double scale = std::min(1.0, double(options.detect_max_side) / double(std::max(image.height, image.width)));
  cv::Mat small;
  if (scale < 1.0) {
    cv::resize(full, small, cv::Size(), scale, scale, cv::INTER_AREA);
  } else {
    small = full;
  }
  // Histogram equalisation as in OpenCV's cascade tutorial: the cascade was trained on
  // contrast-normalised windows and finds faces in dim or flat photos more reliably after it.
  cv::Mat equalized;
  cv::equalizeHist(small, equalized);
  std::vector<cv::Rect> found;
  {
    std::lock_guard<std::mutex> lock(cascade.mutex);
    // Scale step 1.1 and 5 neighbours: OpenCV's tutorial values, few false positives on photos.
    cascade.classifier.detectMultiScale(equalized, found, 1.1, 5, 0, cv::Size(options.min_face, options.min_face));
  }
  std::sort(found.begin(), found.end(), [](const cv::Rect& a, const cv::Rect& b) {
    return a.x != b.x ? a.x < b.x : a.y < b.y;
  });
  std::vector<FaceCrop> faces;
  for (const cv::Rect& r : found) {
    FaceCrop f;
    // Back to full-image pixels; clipped so rounding never leaves the image.
    const int x0 = std::clamp(int(std::lround(r.x / scale)), 0, image.width - 1);
    const int y0 = std::clamp(int(std::lround(r.y / scale)), 0, image.height - 1);
    const int x1 = std::clamp(int(std::lround((r.x + r.width) / scale)), x0 + 1, image.width);
    const int y1 = std::clamp(int(std::lround((r.y + r.height) / scale)), y0 + 1, image.height);
    f.box = FaceBox{x0, y0, x1 - x0, y1 - y0};
    f.crop = crop_region(f.box, image.height, image.width, options.margin);
    f.pixels = crop_resize_area(image, f.crop, out_h, out_w);
    faces.push_back(std::move(f));
  }
  return faces;
}

void write_annotated_png(const std::string& path, const GrayImage& image, const std::vector<FaceBox>& boxes,
                         const std::vector<std::string>& labels) {
  cv::Mat rgb;
  cv::cvtColor(as_mat(image), rgb, cv::COLOR_GRAY2RGB);
  const int side = std::max(image.height, image.width);
  const int thickness = std::max(1, side / 300);
  const cv::Scalar box_color(0, 220, 0), text_color(0, 0, 0);
  for (size_t i = 0; i < boxes.size(); ++i) {
    const FaceBox& b = boxes[i];
    cv::rectangle(rgb, cv::Rect(b.x, b.y, b.width, b.height), box_color, thickness);
    if (i >= labels.size() || labels[i].empty()) continue;
    // Text about a fifth of the box wide per 10 characters, readable from 48-pixel crops to photos.
    const double font = std::max(0.3, b.width / 220.0);
    const int text_thickness = std::max(1, int(font * 1.5));
    int baseline = 0;
    const cv::Size ts = cv::getTextSize(labels[i], cv::FONT_HERSHEY_SIMPLEX, font, text_thickness, &baseline);
    // The label sits on the box's top edge, or inside the box when the box touches the top.
    const int top = b.y - ts.height - baseline - thickness >= 0 ? b.y - ts.height - baseline - thickness : b.y;
    cv::rectangle(rgb, cv::Rect(b.x, top, ts.width + 2 * thickness, ts.height + baseline + thickness), box_color,
                  cv::FILLED);
    cv::putText(rgb, labels[i], cv::Point(b.x + thickness, top + ts.height), cv::FONT_HERSHEY_SIMPLEX, font, text_color,
                text_thickness, cv::LINE_AA);
  }
  try {
    write_png(path, rgb.rows, rgb.cols, 3, rgb.ptr<uint8_t>());
  } catch (const std::exception& e) {
    throw UserError(path + ": cannot write the annotated image: " + e.what());
  }
}

#else  // no OpenCV

namespace {
[[noreturn]] void no_opencv() {
  throw UserError("finding faces needs OpenCV, and this fer_gpu was built without it: install "
                  "libopencv-objdetect-dev, libopencv-imgproc-dev and opencv-data (tools/scripts/install_deps.sh "
                  "does) and rebuild, or pass --no-detect to classify each whole image as a face crop");
}
}  // namespace

bool face_detection_available() { return false; }
std::string face_detector_description() { return "none (built without OpenCV)"; }
std::vector<uint8_t> crop_resize_area(const GrayImage&, const FaceBox&, int, int) { no_opencv(); }
std::vector<FaceCrop> find_faces(const GrayImage&, int, int, const FaceFinderOptions&) { no_opencv(); }
void write_annotated_png(const std::string&, const GrayImage&, const std::vector<FaceBox>&,
                         const std::vector<std::string>&) {
  no_opencv();
}

#endif

}  // namespace fer::loaders
