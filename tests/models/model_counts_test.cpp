// Every numbered model builds from its config and has exactly Keras' parameter counts.
#include <gtest/gtest.h>

#include "models/run_config.h"
#include "models/summary.h"

namespace {

struct Expected {
  const char* config;
  int64_t total, trainable, non_trainable;
  int classes;
};

class ModelCounts : public ::testing::TestWithParam<Expected> {};

TEST_P(ModelCounts, MatchKeras) {
  const Expected e = GetParam();
  const auto run = fer::models::load_run_config(std::string(FER_SOURCE_DIR) + "/configs/" + e.config);
  auto graph = fer::models::build_graph(run);
  EXPECT_EQ(graph->trainable_count() + graph->non_trainable_count(), e.total);
  EXPECT_EQ(graph->trainable_count(), e.trainable);
  EXPECT_EQ(graph->non_trainable_count(), e.non_trainable);
  EXPECT_EQ(graph->classes(), e.classes);
  const std::string summary = fer::models::keras_summary(*graph, run.model.name);
  EXPECT_NE(summary.find("Total params: " + fer::models::with_thousands(e.total)), std::string::npos) << summary;
  // The recipe every config carries: Adam 1e-3, batch 128, 50 epochs, the original augmentation.
  EXPECT_EQ(run.train.batch_size, 128);
  EXPECT_EQ(run.train.epochs, 50);
  EXPECT_FLOAT_EQ(run.train.optimizer.learning_rate, 1e-3f);
  EXPECT_FLOAT_EQ(run.augment.shear_range, 0.2f);
  EXPECT_FLOAT_EQ(run.augment.zoom_range, 0.2f);
  EXPECT_TRUE(run.augment.horizontal_flip);
  EXPECT_EQ(run.data.validation_usage, (std::vector<std::string>{"PublicTest", "PrivateTest"}));
  EXPECT_EQ(run.data.drop_classes.size(), e.classes == 6 ? 1u : 0u);
}

INSTANTIATE_TEST_SUITE_P(
    Keras, ModelCounts,
    ::testing::Values(Expected{"model4.toml", 4589318, 4589318, 0, 6},
                      Expected{"model5.toml", 2345991, 2345799, 192, 7},
                      Expected{"model5-v2.toml", 2344966, 2344774, 192, 6},
                      Expected{"model6.toml", 1914951, 1914951, 0, 7},
                      Expected{"model7.toml", 4478727, 4474759, 3968, 7},
                      Expected{"model8.toml", 4478214, 4474246, 3968, 6}),
    [](const auto& info) {
      std::string name = info.param.config;
      name = name.substr(0, name.find('.'));
      for (char& c : name)
        if (c == '-') c = '_';
      return name;
    });

TEST(Summary, KerasLayout) {
  const auto run = fer::models::load_run_config(std::string(FER_SOURCE_DIR) + "/configs/model4.toml");
  auto graph = fer::models::build_graph(run);
  const std::string s = fer::models::keras_summary(*graph, run.model.name);
  EXPECT_NE(s.find(" conv2d (Conv2D)             (None, 46, 46, 32)        320"), std::string::npos) << s;
  EXPECT_NE(s.find(" conv2d_1 (Conv2D)           (None, 44, 44, 64)        18496"), std::string::npos) << s;
  EXPECT_NE(s.find(" flatten (Flatten)           (None, 4096)              0"), std::string::npos) << s;
  EXPECT_NE(s.find(" dense_1 (Dense)             (None, 6)                 6150"), std::string::npos) << s;
  EXPECT_NE(s.find("Non-trainable params: 0"), std::string::npos) << s;
}

}  // namespace
