#pragma once
// Faces in photos: "image -> face crops with boxes", the one entry point predict (and any later
// video or webcam path) uses, plus drawing the results onto a copy of the photo.
//
// Detector: OpenCV's frontal-face Haar cascade (haarcascade_frontalface_default.xml from Debian's
// opencv-data). OpenCV's better face detector, YuNet (cv::FaceDetectorYN), needs an ONNX weights
// file that no Debian package ships and that fer_gpu must not download at run time; the cascade
// is the detector FER-style demos have used for years and it is packaged. It finds upright
// frontal faces; profiles and strongly tilted heads are missed.
//
// Each face is cropped with a margin around the detector's box (kFaceMargin), converted to
// gray (the image already is: decode_gray) and resized with area interpolation (cv::INTER_AREA)
// to the model input. OpenCV is optional at build time (FER_OPENCV=AUTO): without it
// face_detection_available() is false and the functions below throw UserError saying so.
#include <cstdint>
#include <string>
#include <vector>

#include "loaders/image_io.h"

namespace fer::loaders {

// Pixels of the upright image; x, y is the top-left corner.
struct FaceBox {
  int x = 0, y = 0, width = 0, height = 0;
  bool operator==(const FaceBox&) const = default;
};

struct FaceCrop {
  FaceBox box;   // the detector's face box
  FaceBox crop;  // the region cropped: box grown by the margin, clipped to the image
  std::vector<uint8_t> pixels;  // [out_h, out_w] gray, area-resized from `crop`
};

// Margin added on each side of the detector's box, as a fraction of its width/height, before
// cropping. Default 0, from a measurement rather than a guess: on the bundled sample's faces
// upscaled 4x and placed on a plain background, the cascade's box spans a median 1.02 of the FER
// face's side (10th-90th percentile 0.83-1.25), and the crop closest to the original 48x48 face
// (mean absolute pixel difference 28.6 at margin 0, 30.9 at 0.02, 38.0 at 0.06, 47.4 at 0.15) is
// the box itself: FER2013 was framed the way this cascade frames faces. tests/faces keeps the
// measurement honest; a caller who wants more context passes a larger margin (predict:
// --face-margin).
constexpr double kFaceMargin = 0.0;

struct FaceFinderOptions {
  double margin = kFaceMargin;
  // Detection runs on a copy scaled (area interpolation) so its longer side is at most this many
  // pixels: a 4032x3024 photo costs what a 1280x960 one does; faces smaller than about 1/50 of
  // the longer side are then missed. Boxes are reported in the full image.
  int detect_max_side = 1280;
  // Smallest face side searched, in pixels of the detection copy (the cascade's window is 24).
  int min_face = 24;
  // Empty: the cascade found at build time (FER_FACE_CASCADE).
  std::string cascade_path;
};

// True when fer_gpu was built with OpenCV (objdetect, imgproc) and a frontal-face cascade.
bool face_detection_available();
// "OpenCV 4.6.0 Haar cascade /usr/share/opencv4/haarcascades/haarcascade_frontalface_default.xml".
std::string face_detector_description();

// Finds the upright frontal faces of `image` and returns each as a crop of out_h x out_w pixels,
// ordered left to right (then top to bottom). Empty when there is none. Throws UserError when
// OpenCV is absent or the cascade file cannot be loaded (naming it).
std::vector<FaceCrop> find_faces(const GrayImage& image, int out_h, int out_w, const FaceFinderOptions& options = {});

// The region cropped for a face box: grown by margin * width (height) on each side, clipped to
// the image. Pure arithmetic, no OpenCV: tests use it to rebuild crops.
FaceBox crop_region(const FaceBox& box, int image_h, int image_w, double margin);

// `region` of the image resized to out_h x out_w with area interpolation (cv::INTER_AREA: the
// mean of the source pixels each output pixel covers when shrinking). Throws UserError without
// OpenCV, std::invalid_argument for a region outside the image.
std::vector<uint8_t> crop_resize_area(const GrayImage& image, const FaceBox& region, int out_h, int out_w);

// Writes `image` as an RGB PNG with each box drawn and its label ("happy 0.82") above it.
// Throws UserError naming `path` when it cannot be written, or without OpenCV.
void write_annotated_png(const std::string& path, const GrayImage& image, const std::vector<FaceBox>& boxes,
                         const std::vector<std::string>& labels);

}  // namespace fer::loaders
