// Data-parallel training against one process, run by ctest as `mpirun -np 2 fer_distributed_mpi_tests`
// (tests/distributed/run_mpi.sh). Every rank runs every test; each test's collectives are
// unconditional, so a failed expectation on one rank never leaves the other waiting.
//
// Tolerances: two ranks average two per-rank mean gradients, (g0 + g1) / 2, where one process
// sums all 128 per-sample gradients at once: the same real number, summed in another order, so
// the float results differ by rounding (about 1e-7 relative per sum). Adam divides by
// sqrt(v) + 1e-7, which turns that into update differences of order 1e-7 * learning rate on
// most weights, larger where a gradient is tiny. After a few steps the weights agree to 2e-6
// absolute (measured on this test: below 1e-7, bench/results/2026-11-30-data-parallel.md) and the
// summed loss to 1e-5 relative. Ranks hold bit-identical weights (one all-reduce result, one
// update), checked exactly.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "engine/backend.h"
#include "engine/distributed/communicator.h"
#include "engine/error.h"
#include "engine/graph.h"
#include "engine/optimizer.h"
#include "engine/training/checkpoint.h"
#include "engine/training/distributed_training.h"
#include "engine/training/run_setup.h"
#include "engine/training/trainer.h"
#include "loaders/batch_stream.h"
#include "loaders/dataset.h"
#include "models/run_config.h"
#include "tests/common/temp_files.h"
#include "tests/distributed/distributed_test_util.h"
#include "tests/gpu/parity_check.h"

namespace {

using fer::distributed::Communicator;
using fer::gputest::compare_tensors;
using fer::gputest::last_pooling_layer;
using fer::gputest::TensorComparison;
using fer::distributed::testing::numbered_config;
using fer::distributed::testing::small_config;
using fer::distributed::testing::write_random_csv;
using fer::test_files::TempDir;
using fer::test_files::write_file;
using namespace fer::training;

std::shared_ptr<Communicator> g_comm;

// Rank 0's temporary folder, seen by every rank (as a cluster's shared file system would be):
// a resumed run reads the checkpoint rank 0 wrote.
struct SharedDir {
  SharedDir() {
    char buf[512] = {};
    if (g_comm->root()) {
      own = std::make_unique<TempDir>("fer_dp_shared");
      std::snprintf(buf, sizeof buf, "%s", own->path().c_str());
    }
    g_comm->broadcast_host(buf, sizeof buf, 0);
    path = buf;
  }
  ~SharedDir() { g_comm->barrier(); }  // rank 0 removes it only when every rank is done
  std::string operator/(const std::string& name) const { return path + "/" + name; }
  std::unique_ptr<TempDir> own;
  std::string path;
};

constexpr double kWeightTolerance = 2e-6;
constexpr double kLossTolerance = 1e-5;
constexpr double kGradientTolerance = 2e-5;
constexpr double kFreeRunningWeightTolerance = 1e-4;
constexpr double kStateTolerance = 1e-6;
// A max-pool flip below the last pool (follow_one_process's pool_flips), measured on model5-v2:
// gradients 1 - cos 2.3e-7, Adam's first update 8.5e-5 (about one element of the second
// convolution's 18,432-element kernel changed sign: one flip moves it by ~2/18,432). 40x and 12x
// room; a defect that moves a whole tensor (a lost scale, another rank's rows) fails either.
constexpr double kFlipGradientCosineGap = 1e-5;
constexpr double kFlipUpdateCosineGap = 1e-3;
constexpr double kFlipNormRatio = 1e-3;

#define REQUIRE_TWO_RANKS()                                                                           \
  do {                                                                                                \
    if (!g_comm || g_comm->size() != 2) GTEST_SKIP() << "needs 2 ranks: run under mpirun -np 2"; \
  } while (0)

// ||a - b|| / ||b||.
double relative_l2(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0, n = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    d += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    n += double(b[i]) * b[i];
  }
  return std::sqrt(d / n);
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, double(std::fabs(a[i] - b[i])));
  return m;
}

// Rank 0's vector on every rank (to check that every rank holds the same weights).
std::vector<float> rank0s(const std::vector<float>& mine) {
  std::vector<float> v = mine;
  g_comm->broadcast_host(v.data(), v.size() * sizeof(float), 0);
  return v;
}

// Feeds a streamed batch to the graph (the trainer's next_batch for the stream).
int feed(fer::Graph& g, fer::loaders::BatchStream& s) {
  const fer::loaders::Batch* b = s.next();
  if (!b) b = s.next();  // the end of an epoch: the next one starts
  const int n = b->size;
  fer::Backend& be = g.backend();
  be.copy(g.labels(), b->labels, size_t(n) * sizeof(int32_t));
  be.images_to_float(n, 48, 48, b->pixels, b->draws, g.input());
  s.release();
  return n;
}

// Two ranks with global batch 128 against one process with batch 128, step by step, on a
// numbered model, `steps` steps (2 a epoch: across an epoch boundary from the third).
// sync_batchnorm: the ranks synchronise BatchNormalization, the one process does not need to.
// augment: the config's augmentation (else none). dropout: the config's Dropout rates (else 0);
// each rank draws its rows' masks where one process draws them (Graph::set_first_row).
// pool_flips: the model may flip a near-tied max-pool window under the ranks' summation order;
// tensors below its last pooling layer are then compared by direction and norm (see the model5-v2
// test), every other tensor and every other model element by element.
void follow_one_process(const std::string& model, bool sync_batchnorm, int steps, bool augment,
                        double weight_tolerance, bool dropout = false, bool pool_flips = false) {
  TempDir dir("fer_dp");
  const std::string csv = dir / "data.csv";
  write_random_csv(csv, 256, 64);
  const fer::models::RunConfig config = fer::models::parse_run_config(
      numbered_config(FER_SOURCE_DIR, model, csv, 128, 2, dropout), model + (dropout ? "" : " (dropout 0)"));
  fer::loaders::Dataset data = fer::loaders::load_dataset(csv, dataset_options(config, csv));
  std::shared_ptr<fer::Backend> backend = fer::make_cpu_backend();
  DistributedTraining dist(g_comm, sync_batchnorm);
  const int local = dist.local_batch(128, true, model);
  ASSERT_EQ(local, 64);
  const uint64_t seed = config.train.seed;

  auto one = fer::models::build_graph(config);
  one->plan(backend, 128);
  one->initialize(seed);
  fer::Optimizer opt_one(backend, one->param_layout(), config.train.optimizer);
  auto mine = fer::models::build_graph(config);
  mine->plan(backend, local);
  mine->initialize(seed);
  mine->set_first_row(dist.first_row(local));
  fer::Optimizer opt_mine(backend, mine->param_layout(), config.train.optimizer);
  dist.start(*mine);

  fer::loaders::BatchStreamOptions so;
  so.batch_size = 128;
  so.seed = seed;
  so.augment = fer::kernels::AugmentConfig{config.augment.shear_range, config.augment.zoom_range,
                                           config.augment.horizontal_flip};
  if (!augment) so.augment = fer::kernels::AugmentConfig{0.0f, 0.0f, false};
  fer::loaders::BatchStreamOptions so_mine = so;
  dist.shard(so_mine);
  fer::loaders::BatchStream s_one(data, data.train_rows, so, backend.get());
  fer::loaders::BatchStream s_mine(data, data.train_rows, so_mine, backend.get());

  double worst = 0, worst_grad = 0, worst_state = 0, max_gradient_gap = 0, max_update_gap = 0;
  for (uint64_t step = 0; step < uint64_t(steps); ++step) {
    // Every step starts the one-process reference from the ranks' weights, BN statistics and
    // Adam moments, so each step is compared from the same state and rounding differences do not
    // compound (free-running, Adam turns them into differences that grow about tenfold a step on
    // this random-label data: the file comment).
    const std::vector<float> w_before = mine->download_params();
    if (step > 0) {
      one->upload_params(w_before);
      one->upload_state(mine->download_state());
      opt_one.upload_state(opt_mine.download_state(), opt_mine.steps_taken());
    }
    const int n1 = feed(*one, s_one);
    one->forward(n1, true, step);
    one->loss(n1, true);
    one->backward(n1, step);
    const std::vector<float> g1 = one->download_grads();
    opt_one.step(one->params(), one->grads());
    const fer::BatchMetrics m1 = one->take_metrics();

    const int n2 = feed(*mine, s_mine);
    ASSERT_EQ(n2, 64);
    mine->forward(n2, true, step);
    mine->loss(n2, true);
    mine->backward(n2, step);
    dist.average_gradients(*mine);
    const std::vector<float> g2 = mine->download_grads();
    opt_mine.step(mine->params(), mine->grads());
    const fer::BatchMetrics m2 = dist.sum(mine->take_metrics());

    EXPECT_EQ(m2.samples, 128) << "step " << step;
    EXPECT_NEAR(m2.loss_sum, m1.loss_sum, kLossTolerance * std::fabs(m1.loss_sum)) << "step " << step;
    EXPECT_EQ(m2.correct, m1.correct) << "step " << step;
    const std::vector<float> w1 = one->download_params(), w2 = mine->download_params();
    const std::vector<float> b1 = one->download_state(), b2 = mine->download_state();
    const double ds = b1.empty() ? 0.0 : relative_l2(b2, b1);
    worst_state = std::max(worst_state, ds);
    // Gradients: relative L2 over the whole gradient. With pool_flips, a tensor below the last
    // pool is left out of that and judged alone: within kGradientTolerance, or else pointing the
    // same way (1 - cos below kFlipGradientCosineGap) with the same norm (within kFlipNormRatio):
    // a flipped window reroutes a few elements, where a real defect (a lost scale, a wrong rank's
    // rows) moves the whole tensor. Tensors whose gradient is rounding noise (tests/gpu/
    // parity_check.h's floored ones: biases feeding BatchNormalization) stay in the whole.
    const int pool = pool_flips ? last_pooling_layer(*mine) : -1;
    double diff2 = 0, want2 = 0;
    for (const TensorComparison& c : compare_tensors(*mine, g2, g1, true)) {
      if (!(c.layer < pool && !c.floored)) {
        diff2 += c.diff_norm * c.diff_norm;
        want2 += c.want_norm * c.want_norm;
      } else if (c.error > kGradientTolerance) {
        EXPECT_LT(1 - c.cosine, kFlipGradientCosineGap) << "step " << step << ": " << c.name << " (below the last pool)";
        EXPECT_NEAR(c.got_norm / c.want_norm, 1.0, kFlipNormRatio) << "step " << step << ": norm of " << c.name;
        max_gradient_gap = std::max(max_gradient_gap, 1 - c.cosine);
      }
    }
    const double dg = std::sqrt(diff2 / std::max(want2, 1e-300));
    worst_grad = std::max(worst_grad, dg);
    EXPECT_LE(dg, kGradientTolerance) << "step " << step << ": averaged gradient vs one process's";
    // Weights: max |difference| within weight_tolerance, except (pool_flips) below the last pool
    // where a rerouted gradient element can change sign, and Adam's first update
    // (lr * g / (|g| + 1e-7)) with it: there the two updates must point the same way.
    std::vector<float> u1(w1.size()), u2(w2.size());  // this step's updates
    for (size_t j = 0; j < w1.size(); ++j) {
      u1[j] = w1[j] - w_before[j];
      u2[j] = w2[j] - w_before[j];
    }
    const std::vector<TensorComparison> updates = compare_tensors(*mine, u2, u1, true);
    const std::vector<fer::ParamEntry> params = mine->all_params();
    size_t t = 0;  // compare_tensors lists the trainable tensors in all_params() order
    for (const fer::ParamEntry& p : params) {
      if (!p.spec.trainable) continue;
      const TensorComparison& update = updates[t++];
      double dmax = 0;
      for (int64_t j = p.offset; j < p.offset + p.spec.size(); ++j)
        dmax = std::max(dmax, double(std::fabs(w1[size_t(j)] - w2[size_t(j)])));
      if (p.layer < pool && dmax > weight_tolerance) {
        EXPECT_LT(1 - update.cosine, kFlipUpdateCosineGap) << "step " << step << ": update of " << update.name
                                                            << " (below the last pool)";
        max_update_gap = std::max(max_update_gap, 1 - update.cosine);
      } else {
        EXPECT_LE(dmax, weight_tolerance) << "step " << step << ": weights of 2 ranks vs one process: " << update.name;
        worst = std::max(worst, dmax);
      }
    }
    EXPECT_LE(ds, kStateTolerance) << "step " << step << ": BatchNormalization moving statistics";
    EXPECT_TRUE(rank0s(w2) == w2) << "step " << step << ": rank " << g_comm->rank() << " holds other weights than rank 0";
    EXPECT_TRUE(rank0s(b2) == b2) << "step " << step << ": rank " << g_comm->rank() << " holds other BN statistics";
  }
  if (g_comm->root()) {
    std::printf("%s%s, 2 ranks%s vs 1 process, %d steps: gradient relative L2 <= %.3g, |weight difference| <= %.3g, "
                "BN statistics relative L2 <= %.3g; below a flipped pool window: gradient 1 - cos <= %.3g, update 1 - cos <= %.3g\n",
                model.c_str(), dropout ? " with its dropout" : "", sync_batchnorm ? " (synchronized BN)" : "", steps,
                worst_grad, worst, worst_state, max_gradient_gap, max_update_gap);
  }
}

// model4: no BatchNormalization.
TEST(DataParallel, Model4TwoRanksFollowOneProcessStepByStep) {
  REQUIRE_TWO_RANKS();
  follow_one_process("model4", false, 4, true, kWeightTolerance);
}

// model4 with its Dropout layers (0.25, 0.25, 0.5): every rank masks its 64 images as one process
// masks the same images, so the same tolerances hold. Without Graph::set_first_row both ranks
// draw the masks of rows 0-63, and the first step's averaged gradient is 0.85 away (relative L2)
// from one process's (measured).
TEST(DataParallel, Model4WithDropoutTwoRanksFollowOneProcessStepByStep) {
  REQUIRE_TWO_RANKS();
  follow_one_process("model4", false, 4, true, kWeightTolerance, true);
}

// model5-v2: BatchNormalization after its first two convolutions, synchronized over the ranks.
// Weights to 5e-5 (5 % of the learning rate): Adam's first update is lr g / (|g| + 1e-7), and the
// convolution biases feeding BatchNormalization have gradients that nearly cancel (about 1e-8),
// where a rounding-level change of g moves the update by a few percent of lr (measured 1.4e-5 at
// the old initialisation, 3.2e-5 at the tagged init stream's; the gradients above the last pool
// agree to 2.4e-7).
// Without augmentation: with it, the first step's gradients of the layers below the pooling
// differ by up to 2e-3 (relative L2), although two emulated identical ranks and the same run
// without augmentation agree to 1e-5 (bench/results/2026-11-30-data-parallel.md). The likely
// cause: augmented images have flat filled regions whose conv/BN outputs make near-ties in max
// pooling, which rounding breaks either way, routing a gradient to another pixel; a discontinuity
// of the model, not of the synchronisation this test is about. Even without augmentation a
// near-tie can flip (at the initialisation of the tagged init stream: 5e-4 relative L2 below the
// last pool, 2e-7 above it), so tensors below the last pool are compared by direction and norm
// (pool_flips).
TEST(DataParallel, Model5v2WithSyncBatchNormFollowsOneProcessStepByStep) {
  REQUIRE_TWO_RANKS();
  follow_one_process("model5-v2", true, 3, false, 5e-5, false, /*pool_flips=*/true);
}

// The gradient all-reduce overlapped with backward (buckets of 2^16 floats, MPI_Iallreduce started
// from the backward hook) gives the blocking all-reduce's gradients bit for bit: model4, 2 ranks,
// 3 steps with Adam in between. With 2 ranks every element is a0 + a1 either way, then the same
// multiply by 1/2.
TEST(DataParallel, OverlappedGradientAllReduceEqualsTheBlockingOneBitForBit) {
  REQUIRE_TWO_RANKS();
  TempDir dir("fer_dp");
  const std::string csv = dir / "data.csv";
  write_random_csv(csv, 256, 64);
  const fer::models::RunConfig config =
      fer::models::parse_run_config(numbered_config(FER_SOURCE_DIR, "model4", csv, 128, 2, true), "model4");
  fer::loaders::Dataset data = fer::loaders::load_dataset(csv, dataset_options(config, csv));
  std::shared_ptr<fer::Backend> backend = fer::make_cpu_backend();
  DistributedTraining overlapped(g_comm), blocking(g_comm);
  overlapped.set_bucket_floats(int64_t(1) << 16);
  blocking.set_bucket_floats(0);
  const int local = overlapped.local_batch(128, true, "model4");
  const uint64_t seed = config.train.seed;
  struct Side {
    std::unique_ptr<fer::Graph> graph;
    std::unique_ptr<fer::Optimizer> opt;
    std::unique_ptr<fer::loaders::BatchStream> stream;
  } sides[2];
  fer::loaders::BatchStreamOptions so;
  so.batch_size = 128;
  so.seed = seed;
  overlapped.shard(so);
  DistributedTraining* dists[2] = {&overlapped, &blocking};
  for (int k = 0; k < 2; ++k) {
    sides[k].graph = fer::models::build_graph(config);
    sides[k].graph->plan(backend, local);
    sides[k].graph->initialize(seed);
    sides[k].graph->set_first_row(dists[k]->first_row(local));
    sides[k].opt = std::make_unique<fer::Optimizer>(backend, sides[k].graph->param_layout(), config.train.optimizer);
    dists[k]->start(*sides[k].graph);
    sides[k].stream = std::make_unique<fer::loaders::BatchStream>(data, data.train_rows, so, backend.get());
  }
  for (uint64_t step = 0; step < 3; ++step) {
    std::vector<float> grads[2];
    for (int k = 0; k < 2; ++k) {
      fer::Graph& g = *sides[k].graph;
      const int n = feed(g, *sides[k].stream);
      g.forward(n, true, step);
      g.loss(n, true);
      g.backward(n, step);
      dists[k]->average_gradients(g);
      grads[k] = g.download_grads();
      sides[k].opt->step(g.params(), g.grads());
    }
    EXPECT_GT(overlapped.buckets_last_step(), 2) << "step " << step << ": the all-reduce was not split";
    EXPECT_TRUE(grads[0] == grads[1]) << "step " << step << ": overlapped all-reduce differs from the blocking one "
                                      << "(max " << max_abs_diff(grads[0], grads[1]) << ")";
    if (g_comm->root() && step == 0) {
      std::printf("model4: gradient all-reduce overlapped in %d buckets, equal to the blocking one bit for bit\n",
                  overlapped.buckets_last_step());
    }
  }
}

TrainRequest request(const std::string& config, const std::string& out, bool distributed) {
  TrainRequest r;
  r.config_path = config;
  r.device = "cpu";
  r.out_dir = out;
  r.out = nullptr;
  if (distributed) r.communicator = g_comm;
  return r;
}

// The whole trainer on 2 ranks against one process: a small network, augmentation on, 2 epochs of
// 8 steps at global batch 32; only rank 0 writes the run directory. With BatchNormalization, the
// ranks synchronise it (--sync-batchnorm). With dropout, the trainer places each rank's masks at
// its rows (Graph::set_first_row), so they are one process's.
void trainer_matches_one_process(bool batchnorm, double dropout = 0.0) {
  TempDir dir("fer_dp");
  const std::string csv = dir / "data.csv";
  write_random_csv(csv, 256, 64);
  const std::string cfg = dir / "small.toml";
  write_file(cfg, small_config(csv, 32, 2, batchnorm, dropout));
  const std::string out2 = dir / "two";
  {
    TrainRequest r = request(cfg, out2, true);
    r.sync_batchnorm = batchnorm;
    Trainer t(r);
    EXPECT_EQ(t.run().status, TrainStatus::completed);
  }
  if (!g_comm->root()) {
    EXPECT_FALSE(std::filesystem::exists(out2)) << "rank " << g_comm->rank() << " wrote a run directory";
    return;
  }
  const std::string out1 = dir / "one";
  {
    Trainer t(request(cfg, out1, false));
    EXPECT_EQ(t.run().status, TrainStatus::completed);
  }
  const Checkpoint a = read_checkpoint(out1 + "/last.ckpt"), b = read_checkpoint(out2 + "/last.ckpt");
  const double d = max_abs_diff(a.params, b.params);
  std::printf("small network%s%s, 2 ranks vs 1 process, 16 steps free-running: max |weight difference| %.3g\n",
              batchnorm ? " with synchronized BN" : "", dropout > 0 ? " with dropout" : "", d);
  if (batchnorm) {
    EXPECT_LE(relative_l2(b.state, a.state), kStateTolerance) << "BN moving statistics";
  }
  EXPECT_LE(d, kFreeRunningWeightTolerance);
  EXPECT_EQ(a.position.global_step, b.position.global_step);
  EXPECT_EQ(a.optimizer_steps, b.optimizer_steps);
  ASSERT_EQ(a.history.epochs.size(), 2u);
  ASSERT_EQ(b.history.epochs.size(), 2u);
  for (size_t e = 0; e < 2; ++e) {
    const EpochRecord &x = a.history.epochs[e], &y = b.history.epochs[e];
    EXPECT_NEAR(y.loss, x.loss, kLossTolerance * x.loss) << "epoch " << e + 1;
    EXPECT_EQ(y.train_images, x.train_images) << "epoch " << e + 1;
    EXPECT_NEAR(y.val_loss, x.val_loss, kLossTolerance * x.val_loss) << "epoch " << e + 1;
    EXPECT_EQ(y.val_accuracy, x.val_accuracy) << "epoch " << e + 1;
  }
  // Validation ran split across the ranks: rank 0 gathered every row's prediction, in order.
  EXPECT_EQ(a.predictions.rows, b.predictions.rows);
  EXPECT_EQ(a.predictions.predicted, b.predictions.predicted);
}

TEST(DataParallel, TrainerOnTwoRanksMatchesOneProcess) {
  REQUIRE_TWO_RANKS();
  trainer_matches_one_process(false);
}

TEST(DataParallel, TrainerWithDropoutOnTwoRanksMatchesOneProcess) {
  REQUIRE_TWO_RANKS();
  trainer_matches_one_process(false, 0.5);
}

TEST(DataParallel, TrainerWithSyncBatchNormOnTwoRanksMatchesOneProcess) {
  REQUIRE_TWO_RANKS();
  trainer_matches_one_process(true);
}

// ---- the per-rank BatchNormalization default in a short real run ----

// The rank's real communicator, with the gradient all-reduce replaced by a broken one: the
// controls of PerRankBatchNormTrainsToTheOneProcessBand (every other collective is the real one).
class BrokenGradientAllReduce final : public Communicator {
 public:
  enum class Fault { not_averaged, lost };
  BrokenGradientAllReduce(std::shared_ptr<Communicator> real, Fault fault) : real_(std::move(real)), fault_(fault) {}
  int rank() const override { return real_->rank(); }
  int size() const override { return real_->size(); }
  int local_rank() const override { return real_->local_rank(); }
  std::string name() const override { return "broken " + real_->name(); }
  // not_averaged: each rank keeps its own B/N-image gradient; lost: the gradient comes back zero.
  void all_reduce_mean(float* data, int64_t count) override {
    if (fault_ == Fault::lost) std::fill(data, data + count, 0.0f);
  }
  void all_reduce_sum(float* data, int64_t count) override { real_->all_reduce_sum(data, count); }
  void broadcast(void* data, size_t bytes, int root) override { real_->broadcast(data, bytes, root); }
  void all_reduce_sum_host(double* data, int count) override { real_->all_reduce_sum_host(data, count); }
  void all_reduce_max_host(int64_t* data, int count) override { real_->all_reduce_max_host(data, count); }
  void broadcast_host(void* data, size_t bytes, int root) override { real_->broadcast_host(data, bytes, root); }
  void gather_host(const void* send, const std::vector<size_t>& bytes_of, void* recv, int root) override {
    real_->gather_host(send, bytes_of, recv, root);
  }
  void barrier() override { real_->barrier(); }
  [[noreturn]] void abort(int status) override {
    real_->abort(status);
    std::abort();  // not reached: the real abort does not return
  }

 private:
  std::shared_ptr<Communicator> real_;
  Fault fault_;
};

// Real FER2013 images, two classes (happy, surprise: data/sample/fer2013_happy_surprise.csv, 120
// Training + 50 PublicTest images each), a small network with BatchNormalization, augmentation on,
// global batch 32 (16 a rank), learning rate 3e-4, 30 epochs of 7 steps: one to two seconds a run
// here. (At 1e-3 and 20 epochs two seeds in nine stayed at 0.56-0.59: too close to chance.)
std::string real_run_config() {
  return "[model]\nname = \"small-bn\"\ninput_shape = [48, 48, 1]\nclasses = 2\n\n"
         "[train]\nlearning_rate = 3e-4\nbatch_size = 32\nepochs = 30\nseed = 11\n\n"
         "[data]\npath = \"" FER_SOURCE_DIR "/data/sample/fer2013_happy_surprise.csv\"\n"
         "drop_classes = [0, 1, 2, 4, 6]\nvalidation_usage = [\"PublicTest\"]\n\n"
         "[augment]\nshear_range = 0.2\nzoom_range = 0.2\nhorizontal_flip = true\n\n"
         "[[layers]]\ntype = \"Conv2D\"\nfilters = 8\nkernel_size = 3\nstrides = 2\nactivation = \"relu\"\n\n"
         "[[layers]]\ntype = \"BatchNormalization\"\n\n"
         "[[layers]]\ntype = \"MaxPooling2D\"\npool_size = 2\n\n[[layers]]\ntype = \"Flatten\"\n\n"
         "[[layers]]\ntype = \"Dense\"\nunits = 32\nactivation = \"relu\"\n\n"
         "[[layers]]\ntype = \"Dense\"\nunits = 2\nactivation = \"softmax\"\n";
}

// Mean validation accuracy of the last 5 epochs of the run in `out` (rank 0's last.ckpt): 500
// predictions, so one epoch's luck (100 images: +-0.05) weighs a fifth.
double late_val_accuracy(const std::string& out) {
  const Checkpoint c = read_checkpoint(out + "/last.ckpt");
  EXPECT_EQ(c.history.epochs.size(), 30u) << out;
  double sum = 0;
  int n = 0;
  for (size_t e = c.history.epochs.size() >= 5 ? c.history.epochs.size() - 5 : 0; e < c.history.epochs.size(); ++e, ++n) {
    sum += c.history.epochs[e].val_accuracy;
  }
  return n ? sum / n : 0.0;
}

// The default (BatchNormalization statistics per rank, as DDP) is not the one-process model: each
// rank normalises its 16 images by their own mean and variance where one process uses 32, so the
// runs part after the first step and only their accuracy can agree. Band (chance is 0.50, two
// balanced classes): both runs' late validation accuracy >= 0.62 and within 0.08 of each other.
// Measured here (bench/results/2026-11-30-data-parallel.md): over nine seeds both lie in 0.68-0.80
// and differ by at most 0.024; the band leaves room because another CPU's float rounding (its
// oneDNN kernels) can move a run as another seed would. The broken controls show the band has teeth: with the gradient
// lost in the all-reduce the network stays at chance (< 0.62, asserted). A missing average (each
// rank stepping on its own 16 images) trains to the band as well (measured, printed) and is the
// step-by-step tests' business (ranks' weights differ at step 1).
TEST(DataParallel, PerRankBatchNormTrainsToTheOneProcessBand) {
  REQUIRE_TWO_RANKS();
  constexpr double kAbove = 0.62, kWithin = 0.08;
  TempDir dir("fer_dp");
  const SharedDir shared;  // rank 0's checkpoints, read by every rank: every rank asserts the same
  const std::string cfg = dir / "real.toml";
  write_file(cfg, real_run_config());
  auto run = [&](const std::string& out, std::shared_ptr<Communicator> comm) {
    TrainRequest r = request(cfg, out, false);
    r.communicator = std::move(comm);
    Trainer t(r);
    EXPECT_EQ(t.run().status, TrainStatus::completed) << out;
  };
  run(shared / "two", g_comm);
  run(shared / "not_averaged",
      std::make_shared<BrokenGradientAllReduce>(g_comm, BrokenGradientAllReduce::Fault::not_averaged));
  run(shared / "lost", std::make_shared<BrokenGradientAllReduce>(g_comm, BrokenGradientAllReduce::Fault::lost));
  if (g_comm->root()) run(shared / "one", nullptr);
  g_comm->barrier();  // rank 0's one-process run has written its checkpoint
  const double one = late_val_accuracy(shared / "one"), two = late_val_accuracy(shared / "two");
  const double not_averaged = late_val_accuracy(shared / "not_averaged"), lost = late_val_accuracy(shared / "lost");
  if (g_comm->root()) {
    std::printf("happy vs surprise, per-rank BN, mean val_accuracy of epochs 26-30: 1 process %.4f, 2 ranks %.4f; "
                "controls on 2 ranks: gradients not averaged %.4f, gradients lost %.4f\n",
                one, two, not_averaged, lost);
  }
  EXPECT_GE(one, kAbove) << "one process did not learn: the band's premise fails";
  EXPECT_GE(two, kAbove) << "2 ranks with per-rank BatchNormalization did not learn";
  EXPECT_LE(std::fabs(two - one), kWithin) << "2 ranks: " << two << ", 1 process: " << one;
  EXPECT_LT(lost, kAbove) << "the band does not tell a lost gradient from training";
}

// Ctrl-C on the ranks mid-epoch, then --resume with the same N: the run continues exactly (the
// CPU all-reduce of two ranks is deterministic, so bit for bit).
TEST(DataParallel, ResumeWithTheSameRankCountContinuesExactly) {
  REQUIRE_TWO_RANKS();
  TempDir dir("fer_dp");
  const SharedDir shared;
  const std::string csv = dir / "data.csv";
  write_random_csv(csv, 256, 64);
  const std::string cfg = dir / "small.toml";
  write_file(cfg, small_config(csv, 32, 2, true));  // with BatchNormalization (per-rank statistics)
  const std::string straight = shared / "straight", split = shared / "split";
  {
    Trainer t(request(cfg, straight, true));
    EXPECT_EQ(t.run().status, TrainStatus::completed);
  }
  {
    TrainRequest r = request(cfg, split, true);
    r.interrupt_after_steps = 11;  // inside epoch 2
    Trainer t(r);
    EXPECT_EQ(t.run().status, TrainStatus::interrupted);
    EXPECT_EQ(t.resume_command().rfind("mpirun -np 2 fer_gpu train ", 0), 0u) << t.resume_command();
  }
  // The interrupted job has ended before anyone resumes it: rank 0 has written last.ckpt (rank 1
  // would otherwise read the end-of-epoch-1 one, still there).
  g_comm->barrier();
  {
    TrainRequest r = request(cfg, split, true);
    r.out_dir.reset();
    r.resume = split;
    Trainer t(r);
    EXPECT_EQ(t.run().status, TrainStatus::completed);
  }
  if (!g_comm->root()) return;
  const Checkpoint a = read_checkpoint(straight + "/last.ckpt"), b = read_checkpoint(split + "/last.ckpt");
  EXPECT_EQ(a.params, b.params);
  EXPECT_EQ(a.state, b.state);
  EXPECT_EQ(a.optimizer_state, b.optimizer_state);
  ASSERT_EQ(a.history.epochs.size(), b.history.epochs.size());
  for (size_t e = 0; e < a.history.epochs.size(); ++e) {
    EXPECT_EQ(a.history.epochs[e].loss, b.history.epochs[e].loss);
    EXPECT_EQ(a.history.epochs[e].val_accuracy, b.history.epochs[e].val_accuracy);
  }
}

// The global batch must divide by the rank count: every rank refuses, rank 0 alone reports it.
TEST(DataParallel, IndivisibleGlobalBatchIsRefusedNamingBothNumbers) {
  REQUIRE_TWO_RANKS();
  TempDir dir("fer_dp");
  const std::string csv = dir / "data.csv";
  write_random_csv(csv, 64, 16);
  const std::string cfg = dir / "small.toml";
  write_file(cfg, small_config(csv, 33, 1, false));
  try {
    Trainer t(request(cfg, dir / "run", true));
    ADD_FAILURE() << "batch 33 on 2 ranks was accepted";
  } catch (const fer::UserError& e) {
    EXPECT_EQ(g_comm->rank(), 0) << "only the lowest failing rank reports";
    EXPECT_NE(std::string(e.what()).find("batch_size 33"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("2 ranks"), std::string::npos) << e.what();
  } catch (const fer::distributed::PeerFailed& e) {
    EXPECT_NE(g_comm->rank(), 0);
    EXPECT_EQ(e.rank, 0);
    EXPECT_EQ(e.exit_status, 2);
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "run"));
}

// A failure on rank 1 alone (its data path is missing) stops rank 0 too, before step 0, and rank
// 0's freshly made run directory is removed.
TEST(DataParallel, FailureOnOneRankStopsAllBeforeTraining) {
  REQUIRE_TWO_RANKS();
  TempDir dir("fer_dp");
  const std::string csv = dir / "data.csv";
  write_random_csv(csv, 64, 16);
  const std::string cfg = dir / "small.toml";
  write_file(cfg, small_config(csv, 32, 1, false));
  TrainRequest r = request(cfg, dir / "run", true);
  if (g_comm->rank() == 1) r.data_path = dir / "missing.csv";
  try {
    Trainer t(r);
    ADD_FAILURE() << "rank " << g_comm->rank() << " went on training";
  } catch (const fer::UserError& e) {
    EXPECT_EQ(g_comm->rank(), 1);
    EXPECT_NE(std::string(e.what()).find("missing.csv"), std::string::npos) << e.what();
  } catch (const fer::distributed::PeerFailed& e) {
    EXPECT_EQ(g_comm->rank(), 0);
    EXPECT_EQ(e.rank, 1);
    EXPECT_EQ(e.exit_status, 2);
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "run")) << "a run directory was left behind";
}

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  g_comm = fer::distributed::connect("auto");
  const int rc = RUN_ALL_TESTS();
  // Every rank's verdict counts: mpirun's status is non-zero when any rank's is.
  g_comm.reset();  // MPI_Finalize
  return rc;
}
