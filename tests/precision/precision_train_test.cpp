// --precision / [train] precision end to end on the CPU with the committed sample and the tiny
// model of the training tests: the setting is parsed and refused where the hardware cannot do it
// (before anything is written), bf16 training learns, and checkpoints stay FP32: a bf16 run's
// checkpoint resumes in bf16 by default (exactly, like an uninterrupted bf16 run) and in fp32 when
// told. On CPUs without bf16 instructions the bf16 runs use the emulated path (kernels/cpu/bf16.h),
// which the refusal test shows a user does not get by accident.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "engine/backend.h"
#include "engine/error.h"
#include "engine/graph.h"
#include "engine/training/checkpoint.h"
#include "engine/training/trainer.h"
#include "kernels/cpu/bf16.h"
#include "models/run_config.h"
#include "tests/train/train_test_util.h"

namespace {

using namespace fer::training;
using namespace fer::training::testing;
using fer::kernels::cpu::Bf16Impl;

// bf16 on this CPU: native where it has bf16 instructions, else the emulation (tests only).
class Bf16Runs : public ::testing::Test {
 protected:
  void SetUp() override {
    saved_ = fer::kernels::cpu::bf16_impl();
    if (!fer::kernels::cpu::cpu_bf16_support().native()) fer::kernels::cpu::set_bf16_impl(Bf16Impl::emulated);
    RecordProperty("bf16_path", fer::kernels::cpu::cpu_bf16_support().native() ? "native" : "emulated");
  }
  void TearDown() override { fer::kernels::cpu::set_bf16_impl(saved_); }

 private:
  Bf16Impl saved_ = Bf16Impl::automatic;
};

// The emulated bf16 path (FER_CPU_BF16=emulate) runs the FP32 kernels on rounded copies: the
// device line every run prints says so, so its timings are not taken for bf16 ones.
TEST(PrecisionDevice, EmulatedBf16IsNamedInTheDeviceLine) {
  const Bf16Impl saved = fer::kernels::cpu::bf16_impl();
  fer::kernels::cpu::set_bf16_impl(Bf16Impl::automatic);
  const std::string automatic = fer::make_cpu_backend()->description();
  fer::kernels::cpu::set_bf16_impl(Bf16Impl::emulated);
  const std::string emulated = fer::make_cpu_backend()->description();
  fer::kernels::cpu::set_bf16_impl(saved);
  EXPECT_EQ(automatic.find("emulated"), std::string::npos) << automatic;
  EXPECT_NE(emulated.find("bf16 emulated in FP32 kernels (FER_CPU_BF16=emulate)"), std::string::npos) << emulated;
}

TEST(PrecisionConfig, ParsesTheKeyAndRejectsOtherValuesNamingIt) {
  TempDir dir;
  write_text(dir / "a.toml", tiny_config("", "precision = \"bf16\"\n"));
  const auto config = fer::models::load_run_config(dir / "a.toml");
  ASSERT_TRUE(config.train.precision.has_value());
  EXPECT_EQ(*config.train.precision, fer::Precision::bf16);
  write_text(dir / "b.toml", tiny_config());
  EXPECT_FALSE(fer::models::load_run_config(dir / "b.toml").train.precision.has_value());
  write_text(dir / "c.toml", tiny_config("", "precision = \"fp16\"\n"));
  const std::string what = user_error_of([&] { fer::models::load_run_config(dir / "c.toml"); }, "fp16 accepted");
  EXPECT_NE(what.find("precision"), std::string::npos) << what;
  EXPECT_NE(what.find("c.toml"), std::string::npos) << what;
}

TEST(PrecisionRefusal, Tf32OnTheCpuIsRefusedBeforeAnythingIsWritten) {
  TempDir dir;
  write_text(dir / "tiny.toml", tiny_config());
  TrainRequest r = request(dir / "tiny.toml", dir / "run");
  r.precision = "tf32";
  const std::string what = user_error_of([&] { Trainer t(r); }, "tf32 accepted on the CPU");
  EXPECT_NE(what.find("tf32"), std::string::npos) << what;
  EXPECT_NE(what.find("NVIDIA"), std::string::npos) << what;
  EXPECT_FALSE(exists(dir / "run"));
}

TEST(PrecisionRefusal, Bf16WithoutBf16InstructionsNamesTheMissingFeature) {
  const auto& support = fer::kernels::cpu::cpu_bf16_support();
  TempDir dir;
  write_text(dir / "tiny.toml", tiny_config("", "precision = \"bf16\"\n"));
  TrainRequest r = request(dir / "tiny.toml", dir / "run");
  ASSERT_EQ(fer::kernels::cpu::bf16_impl(), Bf16Impl::automatic) << "run without FER_CPU_BF16=emulate";
  if (support.native()) {
    Trainer t(r);  // accepted
    SUCCEED() << "this CPU has bf16: " << support.summary;
    return;
  }
  const std::string what =
      user_error_of([&] { Trainer t(r); }, "bf16 accepted on a CPU without bf16 instructions (" + support.summary + ")");
  EXPECT_NE(what.find("AVX512-BF16"), std::string::npos) << what;
  EXPECT_NE(what.find("AMX-BF16"), std::string::npos) << what;
  EXPECT_NE(what.find("bf16"), std::string::npos) << what;
  EXPECT_FALSE(exists(dir / "run"));
}

TEST(PrecisionPlan, TheGraphRecordsItsPrecisionAndRefusesWhatTheBackendCannotDo) {
  TempDir dir;
  write_text(dir / "tiny.toml", tiny_config());
  const auto config = fer::models::load_run_config(dir / "tiny.toml");
  auto g = fer::models::build_graph(config);
  g->plan(fer::make_cpu_backend(), 4);
  EXPECT_EQ(g->precision(), fer::Precision::fp32);  // the CPU's default
  auto h = fer::models::build_graph(config);
  EXPECT_THROW(h->plan(fer::make_cpu_backend(), 4, {}, fer::Precision::tf32), fer::UserError);
}

TEST_F(Bf16Runs, Bf16TrainingLearnsAndDiffersFromFp32OnlyByRounding) {
  TempDir dir;
  write_text(dir / "tiny.toml", tiny_config());
  TrainRequest bf = request(dir / "tiny.toml", dir / "bf16");
  bf.precision = "bf16";
  bf.epochs = 6;
  ASSERT_EQ(train(bf).status, TrainStatus::completed);
  TrainRequest fp = request(dir / "tiny.toml", dir / "fp32");
  fp.precision = "fp32";
  fp.epochs = 6;
  ASSERT_EQ(train(fp).status, TrainStatus::completed);

  const Checkpoint b = read_checkpoint(dir / "bf16/last.ckpt");
  const Checkpoint f = read_checkpoint(dir / "fp32/last.ckpt");
  ASSERT_EQ(b.history.epochs.size(), 6u);
  const double first = b.history.epochs.front().loss, last = b.history.epochs.back().loss;
  EXPECT_LT(last, 0.9 * first) << "bf16 training loss did not fall";
  // Same seed, same batches: the runs track each other (rounding at 2^-9 per operand) but are not
  // bit-identical (the bf16 run really rounded).
  EXPECT_NE(b.params, f.params);
  for (size_t i = 0; i < 6; ++i) {
    const double lb = b.history.epochs[i].loss, lf = f.history.epochs[i].loss;
    EXPECT_NEAR(lb, lf, 0.05 * lf) << "epoch " << i + 1;
  }
  // The resolved config of the run carries the precision it ran in.
  const auto resolved = fer::models::load_run_config(dir / "bf16/config.toml");
  ASSERT_TRUE(resolved.train.precision.has_value());
  EXPECT_EQ(*resolved.train.precision, fer::Precision::bf16);
}

TEST_F(Bf16Runs, ResumeKeepsTheRunsPrecisionUnlessToldAndCheckpointsAreInterchangeable) {
  TempDir dir;
  write_text(dir / "tiny.toml", tiny_config());
  TrainRequest straight = request(dir / "tiny.toml", dir / "straight");
  straight.precision = "bf16";
  straight.epochs = 3;
  ASSERT_EQ(train(straight).status, TrainStatus::completed);

  // 2 epochs in bf16, then resumed without --precision: continues in bf16, exactly.
  TrainRequest first = request(dir / "tiny.toml", dir / "split");
  first.precision = "bf16";
  first.epochs = 2;
  ASSERT_EQ(train(first).status, TrainStatus::completed);
  TrainRequest second = resume_request(dir / "tiny.toml", dir / "split", 3);
  ASSERT_EQ(train(second).status, TrainStatus::completed);
  expect_same_training_state(read_checkpoint(dir / "straight/last.ckpt"), read_checkpoint(dir / "split/last.ckpt"));

  // The same bf16 checkpoint resumed in fp32 (into a new directory): it loads (FP32 weights) and
  // the last epoch then differs from the bf16 one.
  TrainRequest fp = request(dir / "tiny.toml", dir / "as_fp32");
  fp.resume = dir / "split/best.ckpt";
  fp.precision = "fp32";
  fp.epochs = 3;
  Checkpoint best = read_checkpoint(dir / "split/best.ckpt");
  if (best.position.epoch >= 3) GTEST_SKIP() << "best.ckpt is the last epoch; nothing to resume";
  ASSERT_EQ(train(fp).status, TrainStatus::completed);
  const auto resolved = fer::models::load_run_config(dir / "as_fp32/config.toml");
  ASSERT_TRUE(resolved.train.precision.has_value());
  EXPECT_EQ(*resolved.train.precision, fer::Precision::fp32);
  const Checkpoint a = read_checkpoint(dir / "as_fp32/last.ckpt");
  EXPECT_EQ(a.position.epoch, 3);
  EXPECT_TRUE(std::isfinite(a.history.epochs.back().loss));
}

}  // namespace
