// Image-folder reader: PNG and JPEG, gray and RGB, resizing, class-name mapping, ordering, errors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <numeric>

#include "loaders/csv_reader.h"
#include "loaders/dataset.h"
#include "loaders/image_folder.h"
#include "loaders/image_io.h"
#include "tests/loaders/test_util.h"

namespace fer::loaders {
namespace {

using testing::expect_user_error;
using testing::test_image;
using testing::TempDir;

constexpr int kPx = 2304;

void png(const std::string& path, const std::vector<uint8_t>& px, int h = 48, int w = 48, int ch = 1) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  write_png(path, h, w, ch, px.data());
}

TEST(Folders, ClassNameMapping) {
  EXPECT_EQ(parse_fer_class("angry"), 0);
  EXPECT_EQ(parse_fer_class("disgust"), 1);
  EXPECT_EQ(parse_fer_class("Disgusted"), 1);
  EXPECT_EQ(parse_fer_class("fear"), 2);
  EXPECT_EQ(parse_fer_class("FEARFUL"), 2);
  EXPECT_EQ(parse_fer_class("happy"), 3);
  EXPECT_EQ(parse_fer_class("sad"), 4);
  EXPECT_EQ(parse_fer_class("surprise"), 5);
  EXPECT_EQ(parse_fer_class("surprised"), 5);
  EXPECT_EQ(parse_fer_class("neutral"), 6);
  EXPECT_EQ(parse_fer_class("3"), 3);
  EXPECT_EQ(parse_fer_class("7"), -1);
  EXPECT_EQ(parse_fer_class("bored"), -1);
}

TEST(Folders, NaturalOrder) {
  EXPECT_TRUE(natural_less("im2.png", "im10.png"));
  EXPECT_FALSE(natural_less("im10.png", "im2.png"));
  EXPECT_TRUE(natural_less("a.png", "b.png"));
  EXPECT_TRUE(natural_less("im9.png", "im9a.png"));
}

TEST(Folders, BothLayoutsPngJpegRgbAndOrder) {
  TempDir dir;
  const std::string root = dir / "faces";
  // Original project's names in train/, Kaggle's in test/ (mixed case).
  png(root + "/train/angry/im0.png", test_image(0));
  png(root + "/train/angry/im10.png", test_image(1));
  png(root + "/train/angry/im2.png", test_image(2));
  png(root + "/train/fearful/im0.png", test_image(3));
  png(root + "/train/surprised/x.png", test_image(4));
  png(root + "/train/disgusted/im0.png", test_image(5));
  png(root + "/test/Fear/a.png", test_image(6));
  png(root + "/test/neutral/a.png", test_image(7));
  png(root + "/test/surprise/a.png", test_image(8));
  // Skipped: hidden files and non-images.
  testing::write_file(root + "/train/angry/.hidden.png", "junk");
  testing::write_file(root + "/train/angry/notes.txt", "junk");
  testing::write_file(root + "/README", "root files are ignored");

  const RawData raw = read_image_folders(root, 2);
  ASSERT_EQ(raw.rows(), 9);
  // Train first, by FER id, natural file order: angry im0, im2, im10; disgust; fear; surprise.
  const int expect_img[] = {0, 2, 1, 5, 3, 4, 6, 8, 7};
  const uint8_t expect_id[] = {0, 0, 0, 1, 2, 5, 2, 5, 6};
  for (int i = 0; i < 9; ++i) {
    EXPECT_EQ(raw.fer_ids[size_t(i)], expect_id[i]) << i;
    EXPECT_EQ(raw.usage[size_t(i)], i < 6 ? Usage::training : Usage::test) << i;
    EXPECT_EQ(0, std::memcmp(raw.pixels.data() + i * kPx, test_image(expect_img[i]).data(), kPx)) << i;
  }
}

TEST(Folders, RgbIsConvertedWithPilLuma) {
  TempDir dir;
  std::vector<uint8_t> rgb(48 * 48 * 3);
  const uint8_t colours[4][3] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {10, 200, 77}};
  for (int i = 0; i < 48 * 48; ++i) {
    std::memcpy(&rgb[size_t(i) * 3], colours[i % 4], 3);
  }
  png(dir / "r/train/happy/c.png", rgb, 48, 48, 3);
  const RawData raw = read_image_folders(dir / "r");
  ASSERT_EQ(raw.rows(), 1);
  for (int i = 0; i < 8; ++i) {
    const uint8_t* c = colours[i % 4];
    const double l = c[0] * 0.299 + c[1] * 0.587 + c[2] * 0.114;
    EXPECT_EQ(raw.pixels[size_t(i)], uint8_t(std::lround(l))) << i;
  }
  EXPECT_EQ(raw.pixels[0], 76);  // pure red
  EXPECT_EQ(raw.pixels[1], 150); // pure green
  EXPECT_EQ(raw.pixels[2], 29);  // pure blue
}

TEST(Folders, ResizeToNearest48) {
  TempDir dir;
  // 96x96 made of constant 2x2 blocks: nearest downscale gives back the 48x48 pattern.
  const auto small = test_image(11);
  std::vector<uint8_t> big(96 * 96);
  for (int y = 0; y < 96; ++y) {
    for (int x = 0; x < 96; ++x) big[size_t(y * 96 + x)] = small[size_t((y / 2) * 48 + x / 2)];
  }
  png(dir / "r/train/sad/big.png", big, 96, 96);
  // 40x30 upscaled: output (y, x) samples floor((y + .5) * 30 / 48), floor((x + .5) * 40 / 48).
  std::vector<uint8_t> odd(30 * 40);
  for (size_t i = 0; i < odd.size(); ++i) odd[i] = uint8_t(i * 7);
  png(dir / "r/train/sad/odd.png", odd, 30, 40);
  const RawData raw = read_image_folders(dir / "r");
  ASSERT_EQ(raw.rows(), 2);
  EXPECT_EQ(0, std::memcmp(raw.pixels.data(), small.data(), kPx));
  for (int y = 0; y < 48; ++y) {
    for (int x = 0; x < 48; ++x) {
      const int sy = int(std::floor((y + 0.5) * 30 / 48)), sx = int(std::floor((x + 0.5) * 40 / 48));
      ASSERT_EQ(raw.pixels[size_t(kPx + y * 48 + x)], odd[size_t(sy * 40 + sx)]) << y << "," << x;
    }
  }
}

TEST(Folders, JpegIsDecoded) {
  TempDir dir;
  // A smooth image survives JPEG at quality 100 within a few levels.
  std::vector<uint8_t> px(kPx);
  for (int y = 0; y < 48; ++y) {
    for (int x = 0; x < 48; ++x) px[size_t(y * 48 + x)] = uint8_t(40 + 3 * x + 2 * y);
  }
  std::filesystem::create_directories(dir / "r/test/neutral");
  write_jpeg(dir / "r/test/neutral/a.jpg", 48, 48, 1, px.data(), 100);
  std::vector<uint8_t> rgb(kPx * 3);
  for (int i = 0; i < kPx; ++i) rgb[size_t(3 * i)] = rgb[size_t(3 * i + 1)] = rgb[size_t(3 * i + 2)] = px[size_t(i)];
  write_jpeg(dir / "r/test/neutral/b.JPEG", 48, 48, 3, rgb.data(), 100);
  const RawData raw = read_image_folders(dir / "r");
  ASSERT_EQ(raw.rows(), 2);
  for (int k = 0; k < 2; ++k) {
    int worst = 0;
    for (int i = 0; i < kPx; ++i) worst = std::max(worst, std::abs(int(raw.pixels[size_t(k * kPx + i)]) - int(px[size_t(i)])));
    EXPECT_LE(worst, 4) << "image " << k;
  }
  EXPECT_EQ(raw.fer_ids[0], 6);
}

TEST(Folders, MatchesCsvOfTheSameImages) {
  // The committed sample written as PNG folders reads back to the CSV's pixels, class by class.
  const RawData csv = read_kaggle_csv(testing::sample_csv_path());
  TempDir dir;
  const char* names[] = {"angry", "disgusted", "fearful", "happy", "sad", "surprised", "neutral"};
  std::map<std::pair<int, int>, int> count;
  for (int64_t i = 0; i < csv.rows(); ++i) {
    const int split = csv.usage[size_t(i)] == Usage::training ? 0 : 1;
    const int k = count[{split, csv.fer_ids[size_t(i)]}]++;
    png(dir.path() + "/r/" + (split ? "test/" : "train/") + names[csv.fer_ids[size_t(i)]] + "/im" +
            std::to_string(k) + ".png",
        std::vector<uint8_t>(csv.pixels.begin() + i * kPx, csv.pixels.begin() + (i + 1) * kPx));
  }
  const Dataset folders = load_dataset(dir / "r", DatasetOptions{});
  const Dataset from_csv = make_dataset(read_kaggle_csv(testing::sample_csv_path()), "s", DatasetOptions{});
  ASSERT_EQ(folders.size(), from_csv.size());
  // Same multiset per (split, class) in the same order: the sample is grouped by usage then class,
  // and Public/PrivateTest both map to test/.
  std::vector<int64_t> order(size_t(from_csv.size()));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    const int sa = from_csv.usage[size_t(a)] != Usage::training, sb = from_csv.usage[size_t(b)] != Usage::training;
    if (sa != sb) return sa < sb;
    return from_csv.fer_ids[size_t(a)] < from_csv.fer_ids[size_t(b)];
  });
  for (int64_t i = 0; i < folders.size(); ++i) {
    const int64_t j = order[size_t(i)];
    ASSERT_EQ(folders.fer_ids[size_t(i)], from_csv.fer_ids[size_t(j)]) << i;
    ASSERT_EQ(0, std::memcmp(folders.image(i), from_csv.image(j), kPx)) << i;
  }
  EXPECT_EQ(folders.train_rows.size(), 72u);
  EXPECT_EQ(folders.validation_rows.size(), 36u);
}

// The rule for a class folder's entries (image_folder.h): every entry with an image extension is
// used or reported. A broken symbolic link and a zero-byte file are both reported, by path with
// the reason, alone or together; a working link to an image is used like the image.
TEST(Folders, BrokenLinkAndEmptyFileAreReportedAlike) {
  TempDir dir;
  const auto img = test_image(0);
  const std::string r = dir / "r";
  png(r + "/train/angry/a.png", img);
  png(dir / "elsewhere/b.png", test_image(1));
  ASSERT_EQ(::symlink((dir / "elsewhere/b.png").c_str(), (r + "/train/angry/b.png").c_str()), 0);
  const RawData ok = read_image_folders(r, 1);
  ASSERT_EQ(ok.rows(), 2);
  EXPECT_EQ(0, std::memcmp(ok.pixels.data() + kPx, test_image(1).data(), kPx));

  ASSERT_EQ(::symlink((dir / "gone.png").c_str(), (r + "/train/angry/c.png").c_str()), 0);
  expect_user_error([&] { read_image_folders(r, 1); },
                    {r + "/train/angry/c.png: cannot read image: broken symbolic link"});
  std::filesystem::remove(r + "/train/angry/c.png");
  testing::write_file(r + "/train/angry/d.png", "");
  expect_user_error([&] { read_image_folders(r, 1); }, {r + "/train/angry/d.png: cannot read image: empty file"});
  ASSERT_EQ(::symlink((dir / "gone.png").c_str(), (r + "/train/angry/c.png").c_str()), 0);
  expect_user_error([&] { load_dataset(r); },
                    {"2 images cannot be used", r + "/train/angry/c.png: cannot read image: broken symbolic link",
                     r + "/train/angry/d.png: cannot read image: empty file"});
  // A folder named like an image is reported too, not skipped.
  std::filesystem::remove(r + "/train/angry/c.png");
  std::filesystem::remove(r + "/train/angry/d.png");
  std::filesystem::create_directories(r + "/train/angry/e.png");
  expect_user_error([&] { read_image_folders(r, 1); }, {r + "/train/angry/e.png: cannot read image: a folder"});
}

TEST(Folders, Errors) {
  TempDir dir;
  const auto img = test_image(0);
  {
    const std::string r = dir / "nosplit";
    png(r + "/training/angry/a.png", img);
    expect_user_error([&] { read_image_folders(r); }, {r, "no train/ or test/ folder"});
  }
  {
    const std::string r = dir / "unknown";
    png(r + "/train/bored/a.png", img);
    expect_user_error([&] { read_image_folders(r); }, {r + "/train/bored", "unknown class folder 'bored'"});
  }
  {
    const std::string r = dir / "emptyclass";
    png(r + "/train/angry/a.png", img);
    std::filesystem::create_directories(r + "/train/happy");
    testing::write_file(r + "/train/happy/readme.txt", "no images here");
    expect_user_error([&] { read_image_folders(r); }, {r + "/train/happy: no images"});
  }
  {
    const std::string r = dir / "emptysplit";
    std::filesystem::create_directories(r + "/train");
    expect_user_error([&] { read_image_folders(r); }, {r + "/train: no class folders"});
  }
  {
    const std::string r = dir / "twice";
    png(r + "/train/fear/a.png", img);
    png(r + "/train/fearful/a.png", img);
    expect_user_error([&] { read_image_folders(r); }, {"both name class fear"});
  }
  {
    const std::string r = dir / "corrupt";
    png(r + "/train/angry/a.png", img);
    png(r + "/train/angry/b.png", img);
    testing::write_file(r + "/train/angry/c.png", "this is not a png");
    png(r + "/train/angry/d.png", img);
    std::string half = testing::read_file(r + "/train/angry/d.png");
    testing::write_file(r + "/train/happy/e.png", half.substr(0, half.size() / 2));
    // Every bad file is reported, in row order, each by path with its reason.
    expect_user_error([&] { read_image_folders(r, 4); },
                      {"2 images cannot be used", r + "/train/angry/c.png: cannot read image: not an image",
                       "\n  " + r + "/train/happy/e.png: cannot read image: truncated"});
    std::filesystem::remove(r + "/train/angry/c.png");
    expect_user_error([&] { read_image_folders(r, 4); }, {r + "/train/happy/e.png: cannot read image: truncated"});
  }
  {
    const std::string r = dir / "notafolder.txt";
    testing::write_file(r, "x");
    expect_user_error([&] { read_image_folders(r); }, {r, "not a folder"});
  }
  expect_user_error([&] { load_dataset(dir / "does_not_exist"); }, {dir / "does_not_exist", "no such file or folder"});
}

}  // namespace
}  // namespace fer::loaders
