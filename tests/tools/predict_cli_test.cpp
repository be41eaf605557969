// fer_gpu predict on a batch of photos as users have them (issue 17): one broken file among
// twenty does not stop the others, every unreadable file is reported by path with its reason, the
// exit status says that something failed, and --json lists which. A phone photo stored sideways
// with EXIF orientation 6 is predicted upright.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/wait.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "loaders/image_io.h"
#include "tests/loaders/image_fixtures.h"
#include "tests/train/train_test_util.h"

namespace {

using namespace fer::training::testing;

struct CliResult {
  int status = -1;
  std::string out, err;
};

// Runs fer_gpu with `args` (paths without spaces or quotes: they come from TempDir).
CliResult fer_gpu(const std::string& args, const std::string& log_prefix) {
  const std::string cmd = std::string(FER_GPU_BINARY) + " " + args + " > " + log_prefix + ".out 2> " + log_prefix + ".err";
  const int raw = std::system(cmd.c_str());
  CliResult r;
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  r.out = read_text(log_prefix + ".out");
  r.err = read_text(log_prefix + ".err");
  return r;
}

bool contains(const std::string& text, const std::string& what) { return text.find(what) != std::string::npos; }

class Predict : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir("fer_predict");
    write_text(*dir_ / "tiny.toml", tiny_config());
    const CliResult train = fer_gpu("train " + *dir_ / "tiny.toml" + " --device cpu --epochs 1 --out " + *dir_ / "run",
                              *dir_ / "train");
    ASSERT_EQ(train.status, 0) << train.out << train.err;
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::string ckpt() { return *dir_ / "run/best.ckpt"; }
  static TempDir* dir_;
};
TempDir* Predict::dir_ = nullptr;

TEST_F(Predict, OneBrokenPhotoAmongTwentyIsReportedAndTheRestPredicted) {
  TempDir dir;
  std::vector<std::string> paths;
  for (int i = 0; i < 20; ++i) {
    std::vector<uint8_t> face(size_t(60) * 60);
    for (size_t p = 0; p < face.size(); ++p) face[p] = uint8_t((p * (7 + i)) % 251);
    const std::string path = dir / ("photo" + std::to_string(i) + (i % 2 ? ".jpg" : ".png"));
    if (i % 2) {
      fer::loaders::write_jpeg(path, 60, 60, 1, face.data(), 90);
    } else {
      fer::loaders::write_png(path, 60, 60, 1, face.data());
    }
    paths.push_back(path);
  }
  // Photo 7 is cut short (a failed copy), photo 13 is not an image at all.
  const std::string seven = read_text(paths[7]);
  write_text(paths[7], seven.substr(0, seven.size() / 2));
  write_text(paths[13], "not a photo");
  std::string args;
  for (const auto& p : paths) args += " " + p;

  const CliResult text = fer_gpu("predict --no-detect --checkpoint " + ckpt() + " --device cpu" + args, dir / "text");
  EXPECT_EQ(text.status, 2) << text.out << text.err;
  EXPECT_TRUE(contains(text.out, "18 face(s)")) << text.out;
  for (int i = 0; i < 20; ++i) {
    const bool bad = i == 7 || i == 13;
    EXPECT_EQ(contains(text.out, paths[size_t(i)] + ": "), !bad) << i << "\n" << text.out;
  }
  EXPECT_TRUE(contains(text.err, "2 of 20 images could not be read")) << text.err;
  EXPECT_TRUE(contains(text.err, paths[7] + ": cannot read image: truncated")) << text.err;
  EXPECT_TRUE(contains(text.err, paths[13] + ": cannot read image: not an image")) << text.err;

  const CliResult json = fer_gpu("predict --no-detect --json --checkpoint " + ckpt() + " --device cpu" + args, dir / "json");
  EXPECT_EQ(json.status, 2) << json.out << json.err;
  const nlohmann::json doc = nlohmann::json::parse(json.out);  // the whole of stdout is one JSON value
  EXPECT_EQ(doc["predictions"].size(), 18u) << json.out;
  for (const auto& row : doc["predictions"]) EXPECT_EQ(row["probabilities"].size(), doc["classes"].size());
  ASSERT_EQ(doc["failed"].size(), 2u) << json.out;
  EXPECT_EQ(doc["failed"][0]["source"], paths[7]);
  EXPECT_EQ(doc["failed"][0]["error"].get<std::string>().rfind(paths[7] + ": cannot read image: truncated", 0), 0u) << json.out;
  EXPECT_EQ(doc["failed"][1]["source"], paths[13]);
  EXPECT_EQ(json.out.substr(json.out.size() - 2), "}\n") << json.out;

  // All readable: exit 0 and an empty failure list.
  const CliResult fine = fer_gpu("predict --no-detect --json --checkpoint " + ckpt() + " --device cpu " + paths[0] + " " + paths[1],
                           dir / "fine");
  EXPECT_EQ(fine.status, 0) << fine.out << fine.err;
  const nlohmann::json fine_doc = nlohmann::json::parse(fine.out);
  EXPECT_TRUE(fine_doc["failed"].is_array() && fine_doc["failed"].empty()) << fine.out;

  // None readable: still a JSON answer listing them, and a failing status; the text form says so.
  const CliResult none = fer_gpu("predict --no-detect --json --checkpoint " + ckpt() + " --device cpu " + paths[7] + " " + paths[13],
                           dir / "none");
  EXPECT_EQ(none.status, 2) << none.out << none.err;
  const nlohmann::json none_doc = nlohmann::json::parse(none.out);
  EXPECT_EQ(none_doc["failed"].size(), 2u) << none.out;
  EXPECT_TRUE(none_doc["predictions"].empty()) << none.out;
  const CliResult none_text = fer_gpu("predict --no-detect --checkpoint " + ckpt() + " --device cpu " + paths[7] + " " + paths[13],
                                dir / "none_text");
  EXPECT_EQ(none_text.status, 2);
  EXPECT_TRUE(contains(none_text.err, "none of the 2 image(s) could be read")) << none_text.err;
  EXPECT_TRUE(contains(none_text.err, paths[13] + ": cannot read image: not an image")) << none_text.err;
}

// The --json prediction of one image, without its source (probabilities rounded to 6 places).
nlohmann::json prediction_of(const std::string& out, const std::string& path) {
  const nlohmann::json doc = nlohmann::json::parse(out);
  for (nlohmann::json row : doc["predictions"]) {
    if (row["source"] == path) {
      row.erase("source");
      return row;
    }
  }
  return nullptr;
}

TEST_F(Predict, SidewaysPhonePhotoIsPredictedUpright) {
  using namespace fer::loaders::fixtures;
  TempDir dir;
  // Upright 64x32 photo, and the same photo stored rotated 90 degrees counter-clockwise with
  // Orientation = 6 (as a phone held upright saves it); without the tag, the sideways pixels.
  write_text(dir / "upright.jpg", jpeg_bytes(dir / "u.jpg", 32, 64, quadrants(32, 64, 20, 90, 160, 230)));
  const std::string stored = jpeg_bytes(dir / "s.jpg", 64, 32, quadrants(64, 32, 90, 230, 20, 160));
  write_text(dir / "phone.jpg", with_exif(stored, exif_block(6, EXIF_BYTE_ORDER_MOTOROLA)));
  write_text(dir / "untagged.jpg", stored);
  const CliResult r = fer_gpu("predict --no-detect --json --checkpoint " + ckpt() + " --device cpu " + dir / "upright.jpg " + dir / "phone.jpg " +
                            dir / "untagged.jpg",
                        dir / "p");
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  const nlohmann::json upright = prediction_of(r.out, dir / "upright.jpg");
  ASSERT_FALSE(upright.is_null()) << r.out;
  EXPECT_EQ(prediction_of(r.out, dir / "phone.jpg"), upright) << r.out;
  EXPECT_NE(prediction_of(r.out, dir / "untagged.jpg"), upright) << r.out;
}

}  // namespace
