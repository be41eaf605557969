// The cuDNN algorithm order (engine/cuda/conv_algo_choice.h) on made-up candidate lists: in
// deterministic mode the choice is a pure function of the candidate set, whatever the measured
// times and the order cuDNN lists them in; otherwise the fastest usable candidate is first.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <utility>
#include <vector>

#include "engine/cuda/conv_algo_choice.h"

namespace fer {
namespace {

constexpr int kConversion = 2;  // CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION
constexpr size_t kCap = 1 << 20;
const std::vector<int> kPreference = {1, 0, 7, 5, 2};

// A cudnnFind-like list (fastest first) followed by a heuristic-like list (no times).
std::vector<ConvAlgoCandidate> made_up(std::mt19937& rng) {
  std::uniform_real_distribution<float> ms(0.05f, 2.0f);
  std::vector<ConvAlgoCandidate> found = {
      {0, true, true, 0, 0, ms(rng)},        {1, true, true, 0, 4096, ms(rng)},
      {1, true, true, 1, 4096, ms(rng)},     {7, true, true, 1, 65536, ms(rng)},
      {6, true, false, 0, 0, ms(rng)},       // non-deterministic
      {5, true, true, 0, kCap * 4, ms(rng)},  // over the workspace cap
      {4, false, true, 0, 0, ms(rng)},       // failed
      {2, true, true, kConversion, 0, ms(rng)},
  };
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.time_ms < b.time_ms; });
  const std::vector<ConvAlgoCandidate> heuristic = {{1, true, true, 0, 8192, -1}, {0, true, true, 0, 0, -1},
                                                    {3, true, true, 0, 0, -1}};
  found.insert(found.end(), heuristic.begin(), heuristic.end());
  return found;
}

std::vector<std::pair<int, int>> chosen(const std::vector<ConvAlgoCandidate>& c, bool deterministic) {
  std::vector<std::pair<int, int>> out;
  for (size_t i : conv_algo_try_order(c, kCap, deterministic, kConversion, kPreference))
    out.push_back({c[i].algo, c[i].math});
  return out;
}

TEST(ConvAlgoChoice, DeterministicOrderIgnoresTimesAndListOrder) {
  std::mt19937 rng(1);
  const auto first = chosen(made_up(rng), true);
  // Preference 1 (two math types), 0, 7, then unlisted 3; 6 (non-deterministic), 5 (cap), 4 (failed)
  // and the converting entry are gone; 1/math 0 is listed twice and merged.
  const std::vector<std::pair<int, int>> want = {{1, 0}, {1, 1}, {0, 0}, {7, 1}, {3, 0}};
  EXPECT_EQ(first, want);
  for (int trial = 0; trial < 50; ++trial) {
    auto c = made_up(rng);  // new random timings, so a new measured order
    std::shuffle(c.begin(), c.end(), rng);
    ASSERT_EQ(chosen(c, true), want) << "trial " << trial;
  }
}

TEST(ConvAlgoChoice, MergedDuplicateKeepsTheLargerWorkspace) {
  std::mt19937 rng(2);
  auto c = made_up(rng);
  const auto order = conv_algo_try_order(c, kCap, true, kConversion, kPreference);
  ASSERT_FALSE(order.empty());
  EXPECT_EQ(c[order[0]].algo, 1);
  EXPECT_EQ(c[order[0]].workspace, 8192u);  // the heuristic's 8192 over the measured 4096
}

TEST(ConvAlgoChoice, DefaultModeTakesTheFastestUsable) {
  std::mt19937 rng(3);
  for (int trial = 0; trial < 20; ++trial) {
    const auto c = made_up(rng);
    const auto order = conv_algo_try_order(c, kCap, false, kConversion, kPreference);
    ASSERT_FALSE(order.empty());
    float best = 1e9f;
    for (const auto& x : c) {
      if (x.ok && x.workspace <= kCap && x.math != kConversion && x.time_ms >= 0) best = std::min(best, x.time_ms);
    }
    EXPECT_EQ(c[order[0]].time_ms, best);  // non-deterministic candidates allowed here
  }
}

TEST(ConvAlgoChoice, NothingUsableGivesAnEmptyOrder) {
  const std::vector<ConvAlgoCandidate> c = {{6, true, false, 0, 0, 0.1f}, {1, false, true, 0, 0, 0.2f}};
  EXPECT_TRUE(conv_algo_try_order(c, kCap, true, kConversion, kPreference).empty());
  EXPECT_EQ(conv_algo_try_order(c, kCap, false, kConversion, kPreference).size(), 1u);
}

}  // namespace
}  // namespace fer
