#pragma once
// Helpers of the data-parallel tests: a synthetic FER2013 CSV big enough for a global batch of
// 128 (the committed sample has 72 training rows), model configs, and a host-only communicator
// double for the single-process unit tests.
#include <cstdint>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/distributed/communicator.h"

namespace fer::distributed::testing {

// `train` Training rows then `val` PublicTest rows of deterministic pseudo-random pixels, labels
// cycling over the six classes kept after drop_classes = [1] (FER ids 0, 2..6). The content is a
// function of the arguments only, so every rank writing its own copy gets the same data.
inline void write_random_csv(const std::string& path, int train, int val) {
  std::ofstream f(path);
  f << "emotion,pixels,Usage\n";
  uint64_t x = 0x2545F4914F6CDD1Dull;
  static const int ids[6] = {0, 2, 3, 4, 5, 6};
  for (int r = 0; r < train + val; ++r) {
    f << ids[r % 6] << ",";
    for (int p = 0; p < 48 * 48; ++p) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;  // xorshift64
      f << (p ? " " : "") << int(x >> 56);
    }
    f << "," << (r < train ? "Training" : "PublicTest") << "\n";
  }
  if (!f) throw std::runtime_error("cannot write " + path);
}

// A numbered model's config (configs/<model>.toml) reading `csv` with the given global batch and
// epochs; dropout false sets its Dropout rates to 0 (isolating what a test compares from the masks).
inline std::string numbered_config(const std::string& source_dir, const std::string& model, const std::string& csv,
                                   int batch, int epochs, bool dropout) {
  std::ifstream in(source_dir + "/configs/" + model + ".toml");
  if (!in) throw std::runtime_error("cannot read configs/" + model + ".toml");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto replace_all = [&](const std::string& from, const std::string& to) {
    for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
      text.replace(at, from.size(), to);
    }
  };
  if (!dropout) {
    replace_all("rate = 0.25", "rate = 0.0");
    replace_all("rate = 0.5", "rate = 0.0");
  }
  replace_all("batch_size = 128", "batch_size = " + std::to_string(batch));
  replace_all("epochs = 50", "epochs = " + std::to_string(epochs));
  replace_all("path = \"data/fer2013.csv\"", "path = \"" + csv + "\"");
  replace_all("validation_usage = [\"PublicTest\", \"PrivateTest\"]", "validation_usage = [\"PublicTest\"]");
  return text;
}

inline std::string without_dropout(const std::string& source_dir, const std::string& model, const std::string& csv,
                                   int batch, int epochs) {
  return numbered_config(source_dir, model, csv, batch, epochs, false);
}

// A small network (convolution, optional BatchNormalization, pooling, dense, optional Dropout of
// rate `dropout` before the last dense) that trains in well under a second a step on one core.
inline std::string small_config(const std::string& csv, int batch, int epochs, bool batchnorm, double dropout = 0.0) {
  return "[model]\nname = \"small\"\ninput_shape = [48, 48, 1]\nclasses = 6\n\n"
         "[train]\nlearning_rate = 1e-3\nbatch_size = " +
         std::to_string(batch) + "\nepochs = " + std::to_string(epochs) +
         "\nseed = 11\n\n[data]\npath = \"" + csv +
         "\"\ndrop_classes = [1]\nvalidation_usage = [\"PublicTest\"]\n\n"
         "[augment]\nshear_range = 0.2\nzoom_range = 0.2\nhorizontal_flip = true\n\n"
         "[[layers]]\ntype = \"Conv2D\"\nfilters = 8\nkernel_size = 3\nstrides = 2\nactivation = \"relu\"\n\n" +
         std::string(batchnorm ? "[[layers]]\ntype = \"BatchNormalization\"\n\n" : "") +
         "[[layers]]\ntype = \"MaxPooling2D\"\npool_size = 2\n\n[[layers]]\ntype = \"Flatten\"\n\n"
         "[[layers]]\ntype = \"Dense\"\nunits = 32\nactivation = \"relu\"\n\n" +
         std::string(dropout > 0 ? "[[layers]]\ntype = \"Dropout\"\nrate = " + std::to_string(dropout) + "\n\n" : "") +
         "[[layers]]\ntype = \"Dense\"\nunits = 6\nactivation = \"softmax\"\n";
}

// A communicator double for single-process tests of the rank arithmetic: it claims to be rank
// `rank` of `size` and refuses every collective (a unit test must not reach one).
class FakeCommunicator final : public Communicator {
 public:
  FakeCommunicator(int rank, int size) : rank_(rank), size_(size) {}
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return rank_; }
  std::string name() const override { return "fake"; }
  void all_reduce_mean(float*, int64_t) override { fail(); }
  void all_reduce_sum(float*, int64_t) override { fail(); }
  void broadcast(void*, size_t, int) override { fail(); }
  void all_reduce_sum_host(double*, int) override { fail(); }
  void all_reduce_max_host(int64_t*, int) override { fail(); }
  void broadcast_host(void*, size_t, int) override { fail(); }
  void gather_host(const void*, const std::vector<size_t>&, void*, int) override { fail(); }
  void barrier() override { fail(); }
  [[noreturn]] void abort(int) override { throw std::logic_error("FakeCommunicator::abort"); }

 private:
  [[noreturn]] static void fail() { throw std::logic_error("FakeCommunicator: no collectives in a unit test"); }
  int rank_, size_;
};

}  // namespace fer::distributed::testing
