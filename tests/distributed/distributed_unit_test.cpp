// Data parallelism, single-process parts: the launcher environment, the rank arithmetic (global
// batch, validation blocks, dropout seeds), and sharded batches equal to slices of one process's
// batches (BatchStream and ResidentBatches). The ranks themselves: mpi_test.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <string>

#include "engine/backend.h"
#include "engine/distributed/communicator.h"
#include "engine/error.h"
#include "engine/graph.h"
#include "engine/training/distributed_training.h"
#include "models/run_config.h"
#include "loaders/batch_stream.h"
#include "loaders/dataset.h"
#include "loaders/resident_data.h"
#include "tests/common/temp_files.h"
#include "tests/distributed/distributed_test_util.h"

namespace {

using fer::distributed::Placement;
using fer::distributed::placement_from_environment;
using fer::distributed::testing::FakeCommunicator;
using fer::training::DistributedTraining;

Placement placement(const std::map<std::string, std::string>& env) {
  return placement_from_environment([&](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
}

TEST(Placement, NoLauncherIsOneProcess) {
  const Placement p = placement({});
  EXPECT_EQ(p.size, 1);
  EXPECT_EQ(p.rank, 0);
  EXPECT_EQ(p.launcher, "");
}

TEST(Placement, ReadsOpenMpiPmiAndSlurm) {
  Placement p = placement({{"OMPI_COMM_WORLD_RANK", "3"}, {"OMPI_COMM_WORLD_SIZE", "4"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "1"}});
  EXPECT_EQ(p.launcher, "Open MPI");
  EXPECT_EQ(p.rank, 3);
  EXPECT_EQ(p.size, 4);
  EXPECT_EQ(p.local_rank, 1);
  p = placement({{"PMI_RANK", "1"}, {"PMI_SIZE", "2"}, {"MPI_LOCALRANKID", "1"}});
  EXPECT_EQ(p.launcher, "PMI");
  EXPECT_EQ(p.size, 2);
  EXPECT_EQ(p.local_rank, 1);
  p = placement({{"SLURM_PROCID", "5"}, {"SLURM_STEP_NUM_TASKS", "8"}, {"SLURM_NTASKS", "16"}, {"SLURM_LOCALID", "1"}});
  EXPECT_EQ(p.launcher, "Slurm");
  EXPECT_EQ(p.rank, 5);
  EXPECT_EQ(p.size, 8) << "the step's task count wins over the allocation's";
  EXPECT_EQ(p.local_rank, 1);
}

TEST(Placement, AnSbatchScriptWithoutSrunIsOneProcess) {
  // sbatch exports SLURM_NTASKS to the batch script itself; only srun sets SLURM_PROCID.
  EXPECT_EQ(placement({{"SLURM_NTASKS", "4"}}).size, 1);
}

TEST(Placement, MalformedValuesNameTheVariable) {
  try {
    placement({{"OMPI_COMM_WORLD_RANK", "x"}, {"OMPI_COMM_WORLD_SIZE", "2"}});
    ADD_FAILURE() << "accepted a rank of x";
  } catch (const fer::UserError& e) {
    EXPECT_NE(std::string(e.what()).find("OMPI_COMM_WORLD_RANK=x"), std::string::npos) << e.what();
  }
  try {
    placement({{"PMI_RANK", "2"}, {"PMI_SIZE", "2"}});
    ADD_FAILURE() << "accepted rank 2 of 2";
  } catch (const fer::UserError& e) {
    EXPECT_NE(std::string(e.what()).find("PMI_SIZE=2"), std::string::npos) << e.what();
  }
}

TEST(Connect, OffAndASingleProcessNeedNoMpi) {
  EXPECT_EQ(fer::distributed::connect("off"), nullptr);
  EXPECT_THROW(fer::distributed::connect("sometimes"), fer::UserError);
}

TEST(DistributedTraining, OneProcessChangesNothing) {
  DistributedTraining one;
  EXPECT_FALSE(one.active());
  EXPECT_TRUE(one.root());
  EXPECT_EQ(one.local_batch(33, false, "c.toml"), 33);
  EXPECT_EQ(one.first_row(64), 0);
  EXPECT_EQ(one.rows_of_rank({1, 2, 3}), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(one.describe(64), "");
  // A communicator of one rank is one process too.
  EXPECT_FALSE(DistributedTraining(std::make_shared<FakeCommunicator>(0, 1)).active());
}

TEST(DistributedTraining, GlobalBatchMustDivideByTheRanks) {
  DistributedTraining r0(std::make_shared<FakeCommunicator>(0, 4));
  EXPECT_EQ(r0.local_batch(128, true, "c.toml"), 32);
  try {
    r0.local_batch(126, true, "c.toml");
    ADD_FAILURE() << "126 over 4 ranks accepted";
  } catch (const fer::UserError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("batch_size 126"), std::string::npos) << m;
    EXPECT_NE(m.find("4 ranks"), std::string::npos) << m;
    EXPECT_NE(m.find("c.toml"), std::string::npos) << m;
  }
  EXPECT_THROW(r0.local_batch(128, false, "c.toml"), fer::UserError);  // drop_last = false
}

TEST(DistributedTraining, ValidationRowsSplitIntoContiguousBlocks) {
  std::vector<int64_t> rows(10);
  for (int i = 0; i < 10; ++i) rows[size_t(i)] = 100 + i;
  std::vector<int64_t> joined;
  for (int r = 0; r < 3; ++r) {
    const auto part = DistributedTraining(std::make_shared<FakeCommunicator>(r, 3)).rows_of_rank(rows);
    EXPECT_GE(part.size(), 3u);
    EXPECT_LE(part.size(), 4u);
    joined.insert(joined.end(), part.begin(), part.end());
  }
  EXPECT_EQ(joined, rows);
  EXPECT_THROW(DistributedTraining(std::make_shared<FakeCommunicator>(0, 11)).rows_of_rank(rows), fer::UserError);
}

// Rank r's rows of a global batch start at r * local batch: the shard's slice
// (loaders::BatchStreamOptions::shard), where dropout draws its masks (Graph::set_first_row).
TEST(DistributedTraining, FirstRowIsTheRanksSliceOfTheGlobalBatch) {
  EXPECT_EQ(DistributedTraining(std::make_shared<FakeCommunicator>(0, 2)).first_row(64), 0);
  EXPECT_EQ(DistributedTraining(std::make_shared<FakeCommunicator>(1, 2)).first_row(64), 64);
  EXPECT_EQ(DistributedTraining(std::make_shared<FakeCommunicator>(2, 3)).first_row(32), 64);
}

class ShardedBatches : public ::testing::Test {
 protected:
  void SetUp() override {
    csv_ = dir_ / "data.csv";
    fer::distributed::testing::write_random_csv(csv_, 100, 10);
    fer::loaders::DatasetOptions o;
    o.drop_classes = {1};
    o.validation_usages = {fer::loaders::Usage::public_test};
    o.cache = fer::loaders::CacheMode::off;
    data_ = fer::loaders::load_dataset(csv_, o);
    opt_.batch_size = 24;
    opt_.seed = 5;
    opt_.augment = fer::kernels::AugmentConfig{0.2f, 0.2f, true};
  }
  fer::test_files::TempDir dir_{"fer_shard"};
  std::string csv_;
  fer::loaders::Dataset data_;
  fer::loaders::BatchStreamOptions opt_;
};

// Rank r's batch k is the r-th third of one process's batch k: the same rows, labels and
// augmentation draws, in every epoch.
TEST_F(ShardedBatches, StreamSlicesAreTheOneProcessBatches) {
  fer::loaders::BatchStream whole(data_, data_.train_rows, opt_, nullptr);
  std::vector<std::unique_ptr<fer::loaders::BatchStream>> parts;
  for (int r = 0; r < 3; ++r) {
    fer::loaders::BatchStreamOptions o = opt_;
    o.shard = r;
    o.shards = 3;
    parts.push_back(std::make_unique<fer::loaders::BatchStream>(data_, data_.train_rows, o, nullptr));
  }
  ASSERT_EQ(whole.batches_per_epoch(), 4);
  for (int epoch = 0; epoch < 2; ++epoch) {
    for (int k = 0; k < 4; ++k) {
      const fer::loaders::Batch* w = whole.next();
      ASSERT_NE(w, nullptr);
      for (int r = 0; r < 3; ++r) {
        const fer::loaders::Batch* p = parts[size_t(r)]->next();
        ASSERT_NE(p, nullptr);
        ASSERT_EQ(p->size, 8);
        EXPECT_EQ(p->epoch, epoch);
        for (int i = 0; i < 8; ++i) {
          const int j = r * 8 + i;
          EXPECT_EQ(p->rows[i], w->rows[j]) << "epoch " << epoch << " batch " << k << " rank " << r;
          EXPECT_EQ(p->host_labels[i], w->host_labels[j]);
          EXPECT_EQ(0, std::memcmp(&p->host_draws[i], &w->host_draws[j], sizeof(fer::AugmentDraw)));
        }
        parts[size_t(r)]->release();
      }
      whole.release();
    }
    EXPECT_EQ(whole.next(), nullptr);
    for (auto& p : parts) EXPECT_EQ(p->next(), nullptr);
  }
}

TEST_F(ShardedBatches, ResidentSlicesAreTheOneProcessBatches) {
  std::shared_ptr<fer::Backend> be = fer::make_cpu_backend();
  auto held = std::make_shared<fer::loaders::ResidentData>(data_, data_.train_rows, be);
  fer::loaders::ResidentBatches whole(*held, data_.train_rows, opt_);
  fer::loaders::BatchStreamOptions o = opt_;
  o.shard = 1;
  o.shards = 2;
  fer::loaders::ResidentBatches half(*held, data_.train_rows, o);
  const size_t px = size_t(48 * 48);
  std::vector<uint8_t> wi(24 * px), hi(12 * px);
  std::vector<int32_t> wl(24), hl(12);
  std::vector<fer::AugmentDraw> wd(24), hd(12);
  for (int k = 0; k < 4; ++k) {
    ASSERT_EQ(whole.gather(1, k, wi.data(), wl.data(), wd.data()), 24);
    ASSERT_EQ(half.gather(1, k, hi.data(), hl.data(), hd.data()), 12);
    EXPECT_EQ(0, std::memcmp(hi.data(), wi.data() + 12 * px, 12 * px)) << "batch " << k;
    EXPECT_EQ(std::vector<int32_t>(wl.begin() + 12, wl.end()), hl) << "batch " << k;
    EXPECT_EQ(0, std::memcmp(hd.data(), wd.data() + 12, 12 * sizeof(fer::AugmentDraw))) << "batch " << k;
  }
}

TEST(ShardOptions, RefusesWhatCannotSplitEvenly) {
  fer::loaders::BatchStreamOptions o;
  o.batch_size = 10;
  o.shards = 3;
  EXPECT_THROW(fer::loaders::check_shard(o), std::invalid_argument);
  o.batch_size = 12;
  o.drop_last = false;
  EXPECT_THROW(fer::loaders::check_shard(o), std::invalid_argument);
  o.drop_last = true;
  EXPECT_NO_THROW(fer::loaders::check_shard(o));
  o.shard = 3;
  EXPECT_THROW(fer::loaders::check_shard(o), std::invalid_argument);
}

// Synchronized BatchNormalization over one rank (the sum over ranks is the identity) is plain
// BatchNormalization: the same loss, gradients and moving statistics, to float rounding (the
// synchronized path shifts its sums by the moving mean, the plain one by the first row).
TEST(SyncBatchNorm, OneRankEqualsPlainBatchNormalization) {
  fer::test_files::TempDir dir("fer_syncbn");
  const std::string cfg_text =
      fer::distributed::testing::small_config(dir / "unused.csv", 16, 1, true);
  const fer::models::RunConfig config = fer::models::parse_run_config(cfg_text, "small.toml");
  std::shared_ptr<fer::Backend> be = fer::make_cpu_backend();
  auto plain = fer::models::build_graph(config), synced = fer::models::build_graph(config);
  int calls = 0;
  synced->set_channel_sum([&](double*, int) { ++calls; });
  std::vector<uint8_t> images(16 * 48 * 48);
  std::vector<int32_t> labels(16);
  for (size_t i = 0; i < images.size(); ++i) images[i] = uint8_t((i * 37 + i / 48) % 251);
  for (int i = 0; i < 16; ++i) labels[size_t(i)] = i % 6;
  std::vector<std::vector<float>> grads, states;
  for (auto* g : {plain.get(), synced.get()}) {
    g->plan(be, 16);
    g->initialize(3);
    for (uint64_t step = 0; step < 2; ++step) {  // the second step starts from moved statistics
      g->set_batch_from_host(16, images.data(), labels.data(), nullptr);
      g->forward(16, true, step);
      g->loss(16, true);
      g->backward(16, step);
    }
    grads.push_back(g->download_grads());
    states.push_back(g->download_state());
  }
  EXPECT_EQ(calls, 2 * 2) << "one sum in forward and one in backward per step";
  ASSERT_EQ(grads[0].size(), grads[1].size());
  double d = 0, n = 0;
  for (size_t i = 0; i < grads[0].size(); ++i) {
    d += (double(grads[0][i]) - grads[1][i]) * (double(grads[0][i]) - grads[1][i]);
    n += double(grads[0][i]) * grads[0][i];
  }
  EXPECT_LE(std::sqrt(d / n), 1e-5) << "gradients";
  for (size_t i = 0; i < states[0].size(); ++i) EXPECT_NEAR(states[1][i], states[0][i], 1e-6f * (1 + std::fabs(states[0][i])));
}

}  // namespace
