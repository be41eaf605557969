// Bad configs are refused with a message naming the file, the line and the key.
#include <gtest/gtest.h>

#include <string>

#include "engine/error.h"
#include "models/run_config.h"
#include "tests/common/user_error.h"

namespace {

const char* kHeader = R"([model]
name = "tiny"
classes = 6

[data]
drop_classes = [1]
)";

// Returns the UserError message for a config text, failing the test if it parses.
std::string error_of(const std::string& text) {
  return fer::test_errors::user_error_of([&] { fer::models::parse_run_config(text, "bad.toml"); },
                                         "config was accepted:\n" + text);
}

std::string layers(const std::string& body) { return std::string(kHeader) + body; }

const char* kTail = R"(
[[layers]]
type = "Flatten"

[[layers]]
type = "Dense"
units = 6
activation = "softmax"
)";

TEST(ConfigErrors, UnknownLayerType) {
  const std::string msg = error_of(layers("\n[[layers]]\ntype = \"Conv3D\"\n") + kTail);
  EXPECT_NE(msg.find("bad.toml:9: layers[0]: key 'type': unknown layer type \"Conv3D\""), std::string::npos) << msg;
  EXPECT_NE(msg.find("Conv2D"), std::string::npos) << "lists the known types: " << msg;
}

TEST(ConfigErrors, UnknownKeyIsATypo) {
  const std::string msg =
      error_of(layers("\n[[layers]]\ntype = \"Conv2D\"\nfilters = 4\nkernel_size = 3\nactivaton = \"relu\"\n") + kTail);
  EXPECT_NE(msg.find("bad.toml:12: layers[0] (Conv2D): unknown key 'activaton'"), std::string::npos) << msg;
}

TEST(ConfigErrors, UnknownKeyInRecipe) {
  const std::string msg = error_of(std::string(kHeader) + "\n[train]\nlearning_rat = 0.1\n" + kTail);
  EXPECT_NE(msg.find("bad.toml:9: [train]: unknown key 'learning_rat'"), std::string::npos) << msg;
}

TEST(ConfigErrors, UnknownTopLevelTable) {
  const std::string msg = error_of(std::string(kHeader) + "\n[trian]\nepochs = 3\n" + kTail);
  EXPECT_NE(msg.find("unknown key 'trian'"), std::string::npos) << msg;
}

TEST(ConfigErrors, MissingRequiredKey) {
  const std::string msg = error_of(layers("\n[[layers]]\ntype = \"Conv2D\"\nkernel_size = 3\n") + kTail);
  EXPECT_NE(msg.find("bad.toml:8: layers[0] (Conv2D): key 'filters': is required"), std::string::npos) << msg;
}

TEST(ConfigErrors, WrongValueType) {
  const std::string msg =
      error_of(layers("\n[[layers]]\ntype = \"Conv2D\"\nfilters = \"32\"\nkernel_size = 3\n") + kTail);
  EXPECT_NE(msg.find("bad.toml:10: layers[0] (Conv2D): key 'filters': expected an integer, got a string"),
            std::string::npos)
      << msg;
  const std::string msg2 = error_of(std::string(kHeader) + "\n[train]\nbatch_size = 12.5\n" + kTail);
  EXPECT_NE(msg2.find("bad.toml:9: [train]: key 'batch_size': expected an integer"), std::string::npos) << msg2;
}

TEST(ConfigErrors, BadChoice) {
  const std::string msg = error_of(
      layers("\n[[layers]]\ntype = \"Conv2D\"\nfilters = 4\nkernel_size = 3\npadding = \"full\"\n") + kTail);
  EXPECT_NE(msg.find("key 'padding': \"full\" is not one of \"valid\", \"same\""), std::string::npos) << msg;
}

TEST(ConfigErrors, PoolingATinyMap) {
  std::string body = "\n[[layers]]\ntype = \"Conv2D\"\nfilters = 4\nkernel_size = 48\n";
  body += "\n[[layers]]\ntype = \"MaxPooling2D\"\npool_size = 2\n";
  const std::string msg = error_of(layers(body) + kTail);
  EXPECT_NE(msg.find("bad.toml:13: layers (MaxPooling2D 'max_pooling2d'): "), std::string::npos) << msg;
  EXPECT_NE(msg.find("cannot pool the 1x1 map with pool_size 2x2"), std::string::npos) << msg;
}

TEST(ConfigErrors, KernelLargerThanInput) {
  const std::string msg = error_of(layers("\n[[layers]]\ntype = \"Conv2D\"\nfilters = 4\nkernel_size = 49\n") + kTail);
  EXPECT_NE(msg.find("bad.toml:8: layers (Conv2D 'conv2d')"), std::string::npos) << msg;
}

TEST(ConfigErrors, OutputUnitsMustMatchClasses) {
  const std::string msg =
      error_of(layers("\n[[layers]]\ntype = \"Flatten\"\n\n[[layers]]\ntype = \"Dense\"\nunits = 7\nactivation = \"softmax\"\n"));
  EXPECT_NE(msg.find("outputs (None, 7) but the model has 6 classes"), std::string::npos) << msg;
  EXPECT_NE(msg.find("bad.toml:11:"), std::string::npos) << msg;
}

// Dropout streams are numbered step * 4096 + layer (kernels/common/philox.h), so a model with
// 4,096 or more layers would draw the next step's masks: refused when the config is read.
TEST(ConfigErrors, TooManyLayersForTheDropoutStreams) {
  std::string body;
  for (int i = 0; i < 4094; ++i) body += "\n[[layers]]\ntype = \"Activation\"\nactivation = \"relu\"\n";
  const std::string msg = error_of(layers(body) + kTail);  // 4,096 layers
  EXPECT_NE(msg.find("the model has 4096 layers; at most 4095 are supported"), std::string::npos) << msg;
  EXPECT_NE(msg.find("bad.toml"), std::string::npos) << msg;
}

TEST(ConfigErrors, LastLayerMustBeSoftmax) {
  const std::string msg = error_of(layers("\n[[layers]]\ntype = \"Flatten\"\n\n[[layers]]\ntype = \"Dense\"\nunits = 6\n"));
  EXPECT_NE(msg.find("must end in a softmax"), std::string::npos) << msg;
}

TEST(ConfigErrors, DenseNeedsFlatInput) {
  const std::string msg = error_of(layers("\n[[layers]]\ntype = \"Dense\"\nunits = 6\nactivation = \"softmax\"\n"));
  EXPECT_NE(msg.find("needs a flat input"), std::string::npos) << msg;
}

TEST(ConfigErrors, ClassCountMustMatchDroppedClasses) {
  const std::string msg = error_of("[model]\nname = \"x\"\nclasses = 6\n" + std::string(kTail));
  EXPECT_NE(msg.find("[data]: key 'drop_classes': leaves 7 of FER2013's 7 classes but [model] classes = 6"),
            std::string::npos)
      << msg;
}

TEST(ConfigErrors, InvalidToml) {
  const std::string msg = error_of(std::string(kHeader) + "\n[train\nepochs = 3\n");
  EXPECT_NE(msg.find("bad.toml:8: invalid TOML"), std::string::npos) << msg;
}

TEST(ConfigErrors, MissingModelTable) {
  const std::string msg = error_of(std::string(kTail));
  EXPECT_NE(msg.find("missing the [model] table"), std::string::npos) << msg;
}

TEST(ConfigErrors, DuplicateLayerName) {
  const std::string msg = error_of(
      layers("\n[[layers]]\ntype = \"Flatten\"\nname = \"f\"\n\n[[layers]]\ntype = \"Flatten\"\nname = \"f\"\n") + kTail);
  EXPECT_NE(msg.find("bad.toml:14: layers[1] (Flatten): key 'name': another layer is already named \"f\""),
            std::string::npos)
      << msg;
}

TEST(ConfigErrors, OutOfRangeValues) {
  EXPECT_NE(error_of(layers("\n[[layers]]\ntype = \"Dropout\"\nrate = 1.5\n") + kTail).find("key 'rate': must be in [0, 1)"),
            std::string::npos);
  EXPECT_NE(error_of(std::string(kHeader) + "\n[train]\nepochs = 0\n" + kTail).find("key 'epochs': must be at least 1"),
            std::string::npos);
  EXPECT_NE(error_of(std::string(kHeader) + "\n[augment]\nzoom_range = -0.2\n" + kTail).find("key 'zoom_range'"),
            std::string::npos);
}

TEST(ConfigErrors, MissingFile) {
  const std::string what =
      fer::test_errors::user_error_of([] { fer::models::load_run_config("/nonexistent/model.toml"); }, "accepted a missing file");
  EXPECT_NE(what.find("/nonexistent/model.toml: cannot open"), std::string::npos) << what;
}

// A monitor and a mode that contradict each other (the original project's [checkpoint] val_loss
// with mode "max" kept the worst epoch as best) are refused at the mode's line, for every callback
// that has the pair; kHeader + kTail end at line 14, so the appended table's mode is on line 18.
TEST(ConfigErrors, ModeContradictingTheMonitorIsRefusedInEveryCallback) {
  struct Case {
    const char* table;
    const char* monitor;
    const char* mode;
    const char* why;
  };
  const Case cases[] = {
      {"[checkpoint]", "val_loss", "max", "a loss improves when it falls, so the mode is \"min\""},
      {"[checkpoint]", "accuracy", "min", "an accuracy improves when it rises, so the mode is \"max\""},
      {"[callbacks.reduce_lr_on_plateau]", "val_accuracy", "min", "so the mode is \"max\""},
      {"[callbacks.reduce_lr_on_plateau]", "loss", "max", "so the mode is \"min\""},
      {"[callbacks.early_stopping]", "val_loss", "max", "so the mode is \"min\""},
      {"[callbacks.early_stopping]", "val_accuracy", "min", "so the mode is \"max\""},
  };
  for (const Case& c : cases) {
    const std::string text = layers(kTail) + "\n" + c.table + "\nmonitor = \"" + c.monitor + "\"\nmode = \"" + c.mode + "\"\n";
    const std::string msg = error_of(text);
    const std::string where = std::string("bad.toml:18: ") + c.table + ": key 'mode': \"" + c.mode +
                              "\" contradicts monitor = \"" + c.monitor + "\"";
    EXPECT_NE(msg.find(where), std::string::npos) << msg;
    EXPECT_NE(msg.find(c.why), std::string::npos) << msg;
    // Rebuilding a model from a checkpoint's embedded config does not run callbacks: tolerated there.
    EXPECT_NO_THROW(fer::models::parse_run_config(text, "embedded.toml", fer::models::ConfigUse::model_only)) << text;
  }
}

// Absent (or "auto") modes are inferred from the monitor as Keras' mode="auto"; agreeing explicit
// modes are accepted as written.
TEST(ConfigErrors, ModeIsInferredFromTheMonitorWhenAbsent) {
  const auto run = fer::models::parse_run_config(
      layers(kTail) + "\n[checkpoint]\nmonitor = \"val_loss\"\n\n[callbacks.reduce_lr_on_plateau]\nmonitor = \"val_accuracy\"\n"
                      "\n[callbacks.early_stopping]\nmonitor = \"loss\"\nmode = \"auto\"\n",
      "ok.toml");
  EXPECT_EQ(run.checkpoint.mode, "auto");
  EXPECT_EQ(fer::models::resolve_mode(run.checkpoint.monitor, run.checkpoint.mode), "min");
  EXPECT_EQ(fer::models::resolve_mode(run.reduce_lr.monitor, run.reduce_lr.mode), "max");
  EXPECT_EQ(fer::models::resolve_mode(run.early_stopping.monitor, run.early_stopping.mode), "min");
  const auto agreeing = fer::models::parse_run_config(
      layers(kTail) + "\n[checkpoint]\nmonitor = \"val_loss\"\nmode = \"min\"\n", "ok.toml");
  EXPECT_EQ(agreeing.checkpoint.mode, "min");
  // The default checkpoint monitor is val_accuracy, maximised.
  const auto plain = fer::models::parse_run_config(layers(kTail), "ok.toml");
  EXPECT_EQ(fer::models::resolve_mode(plain.checkpoint.monitor, plain.checkpoint.mode), "max");
}

TEST(ConfigErrors, TerminateOnCollapseKeys) {
  const auto run = fer::models::parse_run_config(
      layers(kTail) + "\n[callbacks.terminate_on_collapse]\nsingle_class_patience = 3\n", "ok.toml");
  EXPECT_TRUE(run.terminate_on_collapse.enabled);
  EXPECT_TRUE(run.terminate_on_collapse.loss_explosion);
  EXPECT_EQ(run.terminate_on_collapse.single_class_patience, 3);
  EXPECT_FALSE(fer::models::parse_run_config(layers(kTail), "ok.toml").terminate_on_collapse.enabled);
  const std::string nothing =
      error_of(layers(kTail) + "\n[callbacks.terminate_on_collapse]\nloss_explosion = false\n");
  EXPECT_NE(nothing.find("bad.toml:16: [callbacks.terminate_on_collapse]: stops on nothing"), std::string::npos)
      << nothing;
  const std::string negative =
      error_of(layers(kTail) + "\n[callbacks.terminate_on_collapse]\nsingle_class_patience = -1\n");
  EXPECT_NE(negative.find("bad.toml:17: [callbacks.terminate_on_collapse]: key 'single_class_patience': must be at least 0"),
            std::string::npos)
      << negative;
}

TEST(ConfigErrors, GoodConfigParses) {
  const auto run = fer::models::parse_run_config(layers(kTail) + "\n[callbacks.early_stopping]\npatience = 3\n", "ok.toml");
  EXPECT_EQ(run.model.layers.size(), 2u);
  EXPECT_EQ(run.model.layers[1].name, "dense");
  EXPECT_TRUE(run.early_stopping.enabled);
  EXPECT_EQ(run.early_stopping.patience, 3);
  EXPECT_FALSE(run.reduce_lr.enabled);
}

}  // namespace
