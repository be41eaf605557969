// The fer_gpu command line as users meet it, run as a child process: train/eval/predict output
// and exit statuses, Ctrl-C (SIGINT) handling and resuming, refused inputs (exit 2, nothing
// written), and report.html rendering in a headless browser when one is installed.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <thread>

#include "engine/training/checkpoint.h"
#include "loaders/image_io.h"
#include "tests/train/train_test_util.h"

namespace {

using namespace fer::training;
using namespace fer::training::testing;

struct Child {
  pid_t pid = -1;
  std::string out_path, err_path;
};

// Starts `args` with stdout and stderr sent to files (and stdin closed).
Child spawn(const std::vector<std::string>& args, const std::string& log_prefix) {
  Child c;
  c.out_path = log_prefix + ".out";
  c.err_path = log_prefix + ".err";
  c.pid = ::fork();
  if (c.pid == 0) {
    const int out = ::open(c.out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err = ::open(c.err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int in = ::open("/dev/null", O_RDONLY);
    ::dup2(out, 1);
    ::dup2(err, 2);
    ::dup2(in, 0);
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  return c;
}

// Exit status, or 128+signal; -1 on timeout (the child is killed).
int wait_for(const Child& c, double timeout_s = 120) {
  const auto start = std::chrono::steady_clock::now();
  int status = 0;
  while (true) {
    const pid_t r = ::waitpid(c.pid, &status, WNOHANG);
    if (r == c.pid) break;
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() > timeout_s) {
      ::kill(c.pid, SIGKILL);
      ::waitpid(c.pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -2;
}

struct CliRun {
  int status = 0;
  std::string out, err;
};

CliRun fer_gpu(std::vector<std::string> args, const std::string& log_prefix) {
  args.insert(args.begin(), FER_GPU_BINARY);
  const Child c = spawn(args, log_prefix);
  CliRun r;
  r.status = wait_for(c);
  r.out = read_text(c.out_path);
  r.err = read_text(c.err_path);
  return r;
}

bool contains(const std::string& text, const std::string& what) { return text.find(what) != std::string::npos; }

TEST(Cli, TrainEvalPredictOnTheSample) {
  TempDir dir;
  write_text(dir / "tiny.toml", tiny_config());
  const CliRun train = fer_gpu({"train", dir / "tiny.toml", "--device", "cpu", "--epochs", "2", "--out", dir / "run"}, dir / "train");
  ASSERT_EQ(train.status, 0) << train.out << train.err;
  EXPECT_TRUE(contains(train.out, "device: cpu")) << train.out;
  EXPECT_TRUE(contains(train.out, "Epoch 2/2")) << train.out;
  for (const char* key : {"loss ", "accuracy ", "val_loss ", "val_accuracy ", "lr ", "img/s"}) {
    EXPECT_TRUE(contains(train.out, key)) << key << " missing in\n" << train.out;
  }

  const CliRun eval = fer_gpu({"eval", dir / "tiny.toml", "--checkpoint", dir / "run/best.ckpt", "--device", "cpu"}, dir / "eval");
  ASSERT_EQ(eval.status, 0) << eval.out << eval.err;
  for (const char* key : {"accuracy", "precision", "recall", "f1-score", "angry", "surprise", "confusion matrix", "36 images"}) {
    EXPECT_TRUE(contains(eval.out, key)) << key << " missing in\n" << eval.out;
  }
  const CliRun eval_train = fer_gpu({"eval", dir / "tiny.toml", "--checkpoint", dir / "run/last.ckpt", "--device", "cpu",
                                  "--split", "train"}, dir / "eval_train");
  ASSERT_EQ(eval_train.status, 0) << eval_train.err;
  EXPECT_TRUE(contains(eval_train.out, "72 images")) << eval_train.out;

  const CliRun csv = fer_gpu({"predict", "--checkpoint", dir / "run/last.ckpt", "--csv", sample_csv(), "--device", "cpu"}, dir / "csv");
  ASSERT_EQ(csv.status, 0) << csv.out << csv.err;
  EXPECT_TRUE(contains(csv.out, "row 108: ")) << csv.out;
  EXPECT_TRUE(contains(csv.out, "accuracy over 108 labelled faces")) << csv.out;

  // A PNG face crop of another size (--no-detect: resized as Keras' load_img does) and the JSON form.
  std::vector<uint8_t> face(64 * 64);
  for (size_t i = 0; i < face.size(); ++i) face[i] = uint8_t((i * 7) % 251);
  fer::loaders::write_png(dir / "face.png", 64, 64, 1, face.data());
  const CliRun json = fer_gpu({"predict", "--checkpoint", dir / "run/best.ckpt", dir / "face.png", "--json", "--device", "cpu", "--no-detect"},
                           dir / "json");
  ASSERT_EQ(json.status, 0) << json.out << json.err;
  const nlohmann::json doc = nlohmann::json::parse(json.out);  // all of stdout is the JSON document
  ASSERT_EQ(doc["predictions"].size(), 1u) << json.out;
  EXPECT_EQ(doc["predictions"][0]["source"], dir / "face.png") << json.out;
  EXPECT_TRUE(doc["predictions"][0]["probabilities"]["angry"].is_number()) << json.out;
  EXPECT_EQ(doc["model"], "tiny") << json.out;
}

TEST(Cli, CtrlCFinishesTheStepSavesAndResumes) {
  TempDir dir;
  write_text(dir / "tiny.toml", tiny_config());
  const Child c = spawn({FER_GPU_BINARY, "train", dir / "tiny.toml", "--device", "cpu", "--epochs", "1000", "--out", dir / "run"},
                        dir / "train");
  // Wait until at least one epoch is done, then interrupt.
  const auto start = std::chrono::steady_clock::now();
  while (!exists(dir / "run/history.csv") &&
         std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < 60) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(exists(dir / "run/history.csv")) << read_text(dir / "train.out") << read_text(dir / "train.err");
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  ::kill(c.pid, SIGINT);
  const int status = wait_for(c, 60);
  const std::string out = read_text(dir / "train.out"), err = read_text(dir / "train.err");
  ASSERT_EQ(status, 130) << out << err;
  EXPECT_TRUE(contains(out, "Interrupted")) << out;
  EXPECT_TRUE(contains(out, "Resume with: fer_gpu train " + dir / "tiny.toml --device cpu --epochs 1000 --resume " + dir / "run"))
      << out;
  ASSERT_TRUE(exists(dir / "run/last.ckpt"));
  const Checkpoint saved = read_checkpoint(dir / "run/last.ckpt");
  const int64_t done_epochs = int64_t(saved.history.epochs.size());
  EXPECT_GE(done_epochs, 1);

  // Resume and finish the epoch in progress plus one more.
  const std::string target = std::to_string(saved.position.epoch + 2);
  const CliRun resumed = fer_gpu({"train", dir / "tiny.toml", "--device", "cpu", "--epochs", target, "--resume", dir / "run"},
                              dir / "resume");
  ASSERT_EQ(resumed.status, 0) << resumed.out << resumed.err;
  EXPECT_TRUE(contains(resumed.out, "Resuming from " + dir / "run/last.ckpt")) << resumed.out;
  const Checkpoint after = read_checkpoint(dir / "run/last.ckpt");
  EXPECT_EQ(after.position.epoch, saved.position.epoch + 2);
  EXPECT_EQ(int64_t(after.history.epochs.size()), saved.position.epoch + 2);
  EXPECT_EQ(history_metric_rows(dir / "run/history.csv").size(), size_t(saved.position.epoch + 3));
}

TEST(Cli, KillNineLosesOnlyTheEpochInProgress) {
  TempDir dir;
  write_text(dir / "tiny.toml", tiny_config());
  const Child c = spawn({FER_GPU_BINARY, "train", dir / "tiny.toml", "--device", "cpu", "--epochs", "1000", "--out", dir / "run"},
                        dir / "train");
  const auto start = std::chrono::steady_clock::now();
  while (!exists(dir / "run/last.ckpt") &&
         std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < 60) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(120));
  ::kill(c.pid, SIGKILL);
  EXPECT_EQ(wait_for(c, 30), 128 + SIGKILL);
  // Whatever moment the kill hit, last.ckpt is a whole checkpoint of an epoch boundary.
  const Checkpoint saved = read_checkpoint(dir / "run/last.ckpt");
  EXPECT_EQ(saved.position.batch_in_epoch, 0);
  const int64_t epochs = saved.position.epoch;
  ASSERT_GE(epochs, 1);
  EXPECT_EQ(int64_t(saved.history.epochs.size()), epochs);

  // Resume to one more epoch: identical to a straight run of that length.
  const std::string target = std::to_string(epochs + 1);
  const CliRun resumed =
      fer_gpu({"train", dir / "tiny.toml", "--device", "cpu", "--epochs", target, "--resume", dir / "run"}, dir / "resume");
  ASSERT_EQ(resumed.status, 0) << resumed.out << resumed.err;
  const CliRun straight =
      fer_gpu({"train", dir / "tiny.toml", "--device", "cpu", "--epochs", target, "--out", dir / "straight"}, dir / "straight");
  ASSERT_EQ(straight.status, 0) << straight.err;
  EXPECT_EQ(history_metric_rows(dir / "run/history.csv"), history_metric_rows(dir / "straight/history.csv"));
  EXPECT_EQ(read_checkpoint(dir / "run/last.ckpt").params, read_checkpoint(dir / "straight/last.ckpt").params);
  // A temporary file the killed process may have left mid-write is cleaned up by the resume.
  for (const auto& e : std::filesystem::directory_iterator(dir / "run")) {
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
  }
}

TEST(Cli, BadInputExitsTwoAndWritesNothing) {
  TempDir dir;
  write_text(dir / "typo.toml", tiny_config("", "batch_sise = 8\n"));
  const CliRun typo = fer_gpu({"train", dir / "typo.toml", "--device", "cpu", "--out", dir / "run"}, dir / "typo");
  EXPECT_EQ(typo.status, 2) << typo.out << typo.err;
  EXPECT_TRUE(contains(typo.err, "error: " + dir / "typo.toml:")) << typo.err;
  EXPECT_TRUE(contains(typo.err, "batch_sise")) << typo.err;
  EXPECT_FALSE(exists(dir / "run"));

  write_text(dir / "tiny.toml", tiny_config());
  const CliRun device = fer_gpu({"train", dir / "tiny.toml", "--device", "tpu", "--out", dir / "run"}, dir / "device");
  EXPECT_EQ(device.status, 2) << device.err;
  EXPECT_FALSE(exists(dir / "run"));

  const CliRun missing = fer_gpu({"eval", dir / "tiny.toml", "--checkpoint", dir / "nothing.ckpt", "--device", "cpu"}, dir / "missing");
  EXPECT_EQ(missing.status, 2);
  EXPECT_TRUE(contains(missing.err, "nothing.ckpt: no such checkpoint file")) << missing.err;
}

// --precision: a value the device cannot do is a user error (exit 2, nothing written), named.
TEST(Cli, PrecisionTheDeviceCannotDoExitsTwoNamingIt) {
  TempDir dir;
  write_text(dir / "tiny.toml", tiny_config());
  const CliRun tf32 = fer_gpu({"train", dir / "tiny.toml", "--device", "cpu", "--precision", "tf32", "--out", dir / "run"},
                              dir / "tf32");
  EXPECT_EQ(tf32.status, 2) << tf32.out << tf32.err;
  EXPECT_TRUE(contains(tf32.err, "precision tf32")) << tf32.err;
  EXPECT_FALSE(exists(dir / "run"));
  const CliRun bad = fer_gpu({"train", dir / "tiny.toml", "--device", "cpu", "--precision", "fp16", "--out", dir / "run"},
                             dir / "fp16");
  EXPECT_NE(bad.status, 0);
  EXPECT_FALSE(exists(dir / "run"));
}

TEST(Cli, CorruptAndTruncatedCheckpointsAreRefused) {
  TempDir dir;
  write_text(dir / "tiny.toml", tiny_config());
  ASSERT_EQ(fer_gpu({"train", dir / "tiny.toml", "--device", "cpu", "--epochs", "1", "--out", dir / "run"}, dir / "t").status, 0);
  const std::string good = read_text(dir / "run/last.ckpt");
  write_text(dir / "cut.ckpt", good.substr(0, good.size() * 2 / 3));
  const CliRun cut = fer_gpu({"eval", dir / "tiny.toml", "--checkpoint", dir / "cut.ckpt", "--device", "cpu"}, dir / "cut");
  EXPECT_EQ(cut.status, 2);
  EXPECT_TRUE(contains(cut.err, dir / "cut.ckpt: truncated checkpoint")) << cut.err;

  std::string flipped = good;
  flipped[good.size() - 100] ^= 0x04;
  write_text(dir / "flip.ckpt", flipped);
  const CliRun flip = fer_gpu({"predict", "--checkpoint", dir / "flip.ckpt", "--csv", sample_csv(), "--device", "cpu"}, dir / "flip");
  EXPECT_EQ(flip.status, 2);
  EXPECT_TRUE(contains(flip.err, "corrupt checkpoint")) << flip.err;

  // A checkpoint of another model for this config.
  std::string wide = tiny_config("", "", "wide");
  wide.replace(wide.find("units = 16"), 10, "units = 32");
  write_text(dir / "wide.toml", wide);
  const CliRun wrong = fer_gpu({"eval", dir / "wide.toml", "--checkpoint", dir / "run/last.ckpt", "--device", "cpu"}, dir / "wrong");
  EXPECT_EQ(wrong.status, 2);
  EXPECT_TRUE(contains(wrong.err, "is a checkpoint of tiny, but " + dir / "wide.toml describes wide")) << wrong.err;
}

TEST(Cli, DivergedRunExitsOneNamingEpochAndStep) {
  TempDir dir;
  std::string cfg = tiny_config();
  cfg.replace(cfg.find("learning_rate = 1e-3"), 20, "learning_rate = 1e30");
  write_text(dir / "nan.toml", cfg);
  const CliRun r = fer_gpu({"train", dir / "nan.toml", "--device", "cpu", "--epochs", "2", "--out", dir / "run"}, dir / "nan");
  EXPECT_EQ(r.status, 1) << r.out << r.err;
  EXPECT_TRUE(contains(r.err, "error: the training loss became")) << r.err;
  EXPECT_TRUE(contains(r.err, "in epoch 1 at step")) << r.err;
}

std::string find_browser() {
  for (const char* name : {"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless_shell"}) {
    const char* path_env = std::getenv("PATH");
    std::string paths = path_env ? path_env : "/usr/bin:/bin";
    size_t start = 0;
    while (start <= paths.size()) {
      const size_t end = std::min(paths.find(':', start), paths.size());
      const std::string candidate = paths.substr(start, end - start) + "/" + name;
      if (::access(candidate.c_str(), X_OK) == 0) return candidate;
      start = end + 1;
    }
  }
  return "";
}

TEST(Cli, ReportRendersInAHeadlessBrowser) {
  const std::string browser = find_browser();
  if (browser.empty()) {
    // CI installs chromium and sets FER_REQUIRE_BROWSER, so the check cannot quietly stop running.
    if (std::getenv("FER_REQUIRE_BROWSER")) FAIL() << "FER_REQUIRE_BROWSER is set but no chromium/google-chrome is on PATH";
    GTEST_SKIP() << "no chromium/google-chrome on PATH: report.html rendering not checked (Debian: apt-get install chromium)";
  }
  TempDir dir;
  write_text(dir / "tiny.toml", tiny_config());
  ASSERT_EQ(fer_gpu({"train", dir / "tiny.toml", "--device", "cpu", "--epochs", "2", "--out", dir / "run"}, dir / "t").status, 0);
  const std::string url = "file://" + dir / "run/report.html";
  const std::vector<std::string> common = {browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                           "--user-data-dir=" + dir / "profile"};
  std::vector<std::string> dump = common;
  dump.push_back("--dump-dom");
  dump.push_back(url);
  const Child d = spawn(dump, dir / "dom");
  ASSERT_EQ(wait_for(d, 90), 0) << read_text(dir / "dom.err");
  const std::string dom = read_text(dir / "dom.out");
  EXPECT_TRUE(contains(dom, "model accuracy")) << dom.substr(0, 2000);
  EXPECT_TRUE(contains(dom, "<svg")) << dom.substr(0, 2000);
  EXPECT_TRUE(contains(dom, "data:image/png;base64,"));
  std::vector<std::string> shot = common;
  shot.push_back("--window-size=1200,2400");
  shot.push_back("--screenshot=" + dir / "report.png");
  shot.push_back(url);
  const Child s = spawn(shot, dir / "shot");
  ASSERT_EQ(wait_for(s, 90), 0) << read_text(dir / "shot.err");
  ASSERT_TRUE(exists(dir / "report.png"));
  const std::string png = read_text(dir / "report.png");
  EXPECT_GT(png.size(), 10000u) << "the screenshot is suspiciously small";
}

}  // namespace
