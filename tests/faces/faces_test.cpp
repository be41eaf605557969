// loaders/faces: faces found where the test put them (FER faces upscaled onto larger backgrounds),
// crops equal to cropping the reported box, no face on a plain background, large photos through the
// downscaled detection copy, the framing measurement behind kFaceMargin, annotated PNGs.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "engine/error.h"
#include "loaders/faces.h"
#include "loaders/image_io.h"
#include "tests/common/temp_files.h"
#include "tests/common/user_error.h"

#ifdef FER_HAVE_OPENCV
#include "tests/faces/photo_maker.h"
#endif

namespace {

using fer::loaders::FaceBox;

TEST(Faces, CropRegionGrowsTheBoxAndClipsToTheImage) {
  EXPECT_EQ(fer::loaders::crop_region({100, 50, 40, 20}, 480, 640, 0.0), (FaceBox{100, 50, 40, 20}));
  EXPECT_EQ(fer::loaders::crop_region({100, 50, 40, 20}, 480, 640, 0.25), (FaceBox{90, 45, 60, 30}));
  // At the corners the margin is cut by the image edges.
  EXPECT_EQ(fer::loaders::crop_region({2, 1, 40, 40}, 480, 640, 0.25), (FaceBox{0, 0, 52, 51}));
  EXPECT_EQ(fer::loaders::crop_region({610, 450, 30, 30}, 480, 640, 0.5), (FaceBox{595, 435, 45, 45}));
}

#ifdef FER_HAVE_OPENCV

using namespace fer::testing;

TEST(Faces, TheCascadeFramesFerFacesAsFer2013Does) {
  // The measurement behind kFaceMargin = 0 (see loaders/faces.h): over the whole sample, the box
  // found on a FER face upscaled 4x spans about the face image's side.
  std::vector<double> widths;
  for (int r = 0; r < sample().size(); ++r) {
    fer::loaders::GrayImage img = background(480, 640);
    const Placed p = place_face(img, r, 100, 60, 192);
    const auto faces = fer::loaders::find_faces(img, 48, 48);
    if (faces.size() == 1) widths.push_back(faces[0].box.width / double(p.at.width));
  }
  // The cascade finds most sample faces alone (71% when measured; profiles and covered faces not).
  EXPECT_GE(widths.size(), size_t(sample().size() * 6 / 10)) << "found " << widths.size() << " of " << sample().size();
  ASSERT_FALSE(widths.empty());
  std::sort(widths.begin(), widths.end());
  const double median = widths[widths.size() / 2];
  EXPECT_GT(median, 0.9);
  EXPECT_LT(median, 1.15);
}

TEST(Faces, FoundWhereTheyArePlacedLeftToRightWithTheirCrops) {
  const std::vector<int> rows = detectable_rows(3);
  ASSERT_EQ(rows.size(), 3u);
  fer::loaders::GrayImage img = background(600, 1000);
  // Three sizes (3x, 4x, 5x the 48-pixel face), added right to left: the result is sorted anyway.
  std::vector<Placed> placed = {place_face(img, rows[2], 700, 250, 240), place_face(img, rows[0], 60, 80, 144),
                                place_face(img, rows[1], 340, 320, 192)};
  const auto faces = fer::loaders::find_faces(img, 48, 48);
  ASSERT_EQ(faces.size(), 3u);
  std::sort(placed.begin(), placed.end(), [](const Placed& a, const Placed& b) { return a.at.x < b.at.x; });
  for (size_t i = 0; i < 3; ++i) {
    SCOPED_TRACE("face " + std::to_string(i));
    EXPECT_GT(iou(faces[i].box, placed[i].at), 0.6)
        << "found x " << faces[i].box.x << " y " << faces[i].box.y << " w " << faces[i].box.width << ", placed x "
        << placed[i].at.x << " y " << placed[i].at.y << " w " << placed[i].at.width;
    EXPECT_EQ(faces[i].crop, fer::loaders::crop_region(faces[i].box, img.height, img.width, fer::loaders::kFaceMargin));
    EXPECT_EQ(faces[i].pixels, fer::loaders::crop_resize_area(img, faces[i].crop, 48, 48));
    ASSERT_EQ(faces[i].pixels.size(), 48u * 48u);
  }
}

TEST(Faces, MarginAndModelInputSizeAreHonoured) {
  const std::vector<int> rows = detectable_rows(1);
  ASSERT_EQ(rows.size(), 1u);
  fer::loaders::GrayImage img = background(400, 500);
  place_face(img, rows[0], 150, 100, 192);
  fer::loaders::FaceFinderOptions options;
  options.margin = 0.2;
  const auto faces = fer::loaders::find_faces(img, 64, 56, options);
  ASSERT_EQ(faces.size(), 1u);
  EXPECT_EQ(faces[0].crop, fer::loaders::crop_region(faces[0].box, 400, 500, 0.2));
  EXPECT_GT(faces[0].crop.width, faces[0].box.width);
  EXPECT_EQ(faces[0].pixels.size(), size_t(64 * 56));
}

TEST(Faces, NoFaceOnAPlainBackground) {
  EXPECT_TRUE(fer::loaders::find_faces(background(480, 640), 48, 48).empty());
}

TEST(Faces, APhoneSizedPhotoIsSearchedThroughADownscaledCopy) {
  const std::vector<int> rows = detectable_rows(1);
  ASSERT_EQ(rows.size(), 1u);
  fer::loaders::GrayImage img = background(3024, 4032);
  const Placed p = place_face(img, rows[0], 2500, 1200, 600);
  const auto faces = fer::loaders::find_faces(img, 48, 48);
  ASSERT_EQ(faces.size(), 1u);
  EXPECT_GT(iou(faces[0].box, p.at), 0.6) << "box in full-image pixels: x " << faces[0].box.x << " y "
                                          << faces[0].box.y << " w " << faces[0].box.width;
}

TEST(Faces, AMissingCascadeIsAClearError) {
  fer::loaders::FaceFinderOptions options;
  options.cascade_path = "/nonexistent/cascade.xml";
  const std::string what =
      fer::test_errors::user_error_of([&] { fer::loaders::find_faces(background(100, 100), 48, 48, options); });
  EXPECT_NE(what.find("/nonexistent/cascade.xml"), std::string::npos) << what;
}

TEST(Faces, AnnotatedPngShowsTheBoxes) {
  fer::test_files::TempDir dir;
  const fer::loaders::GrayImage img = background(120, 160);
  fer::loaders::write_annotated_png(dir / "a.png", img, {{20, 40, 60, 50}}, {"happy 0.82"});
  const std::string bytes = fer::test_files::read_file(dir / "a.png");
  const fer::loaders::GrayImage back =
      fer::loaders::decode_gray(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  EXPECT_EQ(back.height, 120);
  EXPECT_EQ(back.width, 160);
  // The bottom edge of the box is drawn (green turns to gray 0.587 * 220 = 129), the background
  // beside it is untouched.
  const int y = 40 + 50 - 1;
  EXPECT_EQ(back.pixels[size_t(y) * 160 + 50], 129);
  EXPECT_EQ(back.pixels[size_t(y) * 160 + 100], img.pixels[size_t(y) * 160 + 100]);
  EXPECT_THROW(fer::loaders::write_annotated_png(dir / "no/such/folder/a.png", img, {}, {}), fer::UserError);
}

#else

TEST(Faces, WithoutOpenCvFindingFacesSaysWhatToInstall) {
  fer::loaders::GrayImage img;
  img.height = img.width = 10;
  img.pixels.assign(100, 0);
  const std::string what = fer::test_errors::user_error_of([&] { fer::loaders::find_faces(img, 48, 48); });
  EXPECT_NE(what.find("libopencv-objdetect-dev"), std::string::npos) << what;
  EXPECT_FALSE(fer::loaders::face_detection_available());
  GTEST_SKIP() << "built without OpenCV: the face detection tests need libopencv-objdetect-dev and opencv-data";
}

#endif

}  // namespace
