// Dense layers (cuBLAS, row-major via column-major GEMMs) against the CPU backend.
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "engine/cuda/cuda_backend.h"
#include "tests/gpu/gpu_test_util.h"

namespace fer::gputest {
namespace {

using testing::random_floats;

const DenseShape kShapes[] = {
    {1, 1, 1}, {3, 7, 5}, {1, 2304, 7}, {17, 1025, 7}, {64, 128, 7}, {64, 4608, 1024},
    {5, 33, 65},
};

class DenseParity : public ::testing::TestWithParam<std::tuple<int, bool>> {};

TEST_P(DenseParity, ForwardAndBackwardMatchCpu) {
  FER_REQUIRE_CUDA_DEVICE();
  const DenseShape s = kShapes[std::get<0>(GetParam())];
  const bool tf32 = std::get<1>(GetParam());
  Pair bk(tf32);
  const auto x = random_floats(size_t(s.n) * s.in, 41);
  const auto w = random_floats(size_t(s.in) * s.out, 42, -0.2f, 0.2f);
  const auto bias = random_floats(size_t(s.out), 43);
  const auto dy = random_floats(size_t(s.n) * s.out, 44);
  std::vector<float> out[2][4];
  Backend* backends[2] = {bk.cpu.get(), bk.gpu.get()};
  for (int i = 0; i < 2; ++i) {
    Backend& b = *backends[i];
    Buffer<float> x_(b, x), w_(b, w), b_(b, bias), dy_(b, dy);
    Buffer<float> y_(b, dy), dx_(b, x), dw_(b, w), db_(b, bias);  // junk-filled outputs
    b.dense_forward(s, x_.get(), w_.get(), b_.get(), y_.get());
    b.dense_backward(s, x_.get(), w_.get(), dy_.get(), dx_.get(), dw_.get(), db_.get());
    out[i][0] = y_.download();
    out[i][1] = dx_.download();
    out[i][2] = dw_.download();
    out[i][3] = db_.download();
  }
  const std::string what = describe(s) + (tf32 ? " tf32" : " fp32");
  expect_close(out[1][0], out[0][0], bk.tol, what + " y");
  expect_close(out[1][1], out[0][1], bk.tol, what + " dx");
  expect_close(out[1][2], out[0][2], bk.tol, what + " dw");
  expect_close(out[1][3], out[0][3], kFp32Tol, what + " db");
}

INSTANTIATE_TEST_SUITE_P(Shapes, DenseParity,
                         ::testing::Combine(::testing::Range(0, int(std::size(kShapes))),
                                            ::testing::Bool()),
                         [](const auto& info) {
                           const DenseShape s = kShapes[std::get<0>(info.param)];
                           std::ostringstream name;
                           name << "n" << s.n << "_in" << s.in << "_out" << s.out
                                << (std::get<1>(info.param) ? "_tf32" : "_fp32");
                           return name.str();
                         });

TEST(DenseParityExtra, NoBiasNoDx) {
  FER_REQUIRE_CUDA_DEVICE();
  Pair bk(false);
  const DenseShape s{9, 20, 6};
  const auto x = random_floats(size_t(s.n) * s.in, 51);
  const auto w = random_floats(size_t(s.in) * s.out, 52);
  const auto dy = random_floats(size_t(s.n) * s.out, 53);
  std::vector<float> out[2][2];
  Backend* backends[2] = {bk.cpu.get(), bk.gpu.get()};
  for (int i = 0; i < 2; ++i) {
    Backend& b = *backends[i];
    Buffer<float> x_(b, x), w_(b, w), dy_(b, dy), y_(b, dy), dw_(b, w);
    b.dense_forward(s, x_.get(), w_.get(), nullptr, y_.get());
    b.dense_backward(s, x_.get(), w_.get(), dy_.get(), nullptr, dw_.get(), nullptr);
    out[i][0] = y_.download();
    out[i][1] = dw_.download();
  }
  expect_close(out[1][0], out[0][0], kFp32Tol, "y");
  expect_close(out[1][1], out[0][1], kFp32Tol, "dw");
}

}  // namespace
}  // namespace fer::gputest
