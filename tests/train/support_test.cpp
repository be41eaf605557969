// The pieces around the loop: metrics, history files, config overrides, report helpers, data
// choice.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "engine/training/fileio.h"
#include "engine/training/history.h"
#include "engine/training/metrics.h"
#include "engine/training/report.h"
#include "engine/training/run_setup.h"
#include "models/run_config.h"
#include "tests/train/train_test_util.h"

namespace {

using namespace fer::training;
using namespace fer::training::testing;

TEST(ConfusionMatrix, ScoresAsScikitLearn) {
  ConfusionMatrix m(3);
  // truth 0: 3 rows (2 right, 1 -> 1); truth 1: 2 rows (1 right, 1 -> 2); truth 2: 1 row right.
  m.add(0, 0), m.add(0, 0), m.add(0, 1), m.add(1, 1), m.add(1, 2), m.add(2, 2);
  m.add(-1, 0);  // unlabeled: ignored
  EXPECT_EQ(m.total(), 6);
  EXPECT_EQ(m.correct(), 4);
  EXPECT_DOUBLE_EQ(m.accuracy(), 4.0 / 6.0);
  const auto s = m.scores();
  EXPECT_DOUBLE_EQ(s[0].precision, 1.0);
  EXPECT_DOUBLE_EQ(s[0].recall, 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(s[0].f1, 0.8);
  EXPECT_DOUBLE_EQ(s[1].precision, 0.5);
  EXPECT_DOUBLE_EQ(s[1].recall, 0.5);
  EXPECT_DOUBLE_EQ(s[2].precision, 0.5);
  EXPECT_DOUBLE_EQ(s[2].recall, 1.0);
  EXPECT_EQ(s[0].support, 3);
  const ClassScores macro = m.macro_average();
  EXPECT_DOUBLE_EQ(macro.recall, (2.0 / 3.0 + 0.5 + 1.0) / 3.0);
  const ClassScores weighted = m.weighted_average();
  EXPECT_DOUBLE_EQ(weighted.recall, m.accuracy());  // support-weighted recall is accuracy

  ConfusionMatrix never(2);  // a class never predicted and never present scores 0, not NaN
  never.add(0, 0);
  EXPECT_EQ(never.scores()[1].precision, 0.0);
  EXPECT_EQ(never.scores()[1].f1, 0.0);

  const std::string table = m.format_matrix({"angry", "fear", "happy"});
  EXPECT_NE(table.find("true\\pred"), std::string::npos);
  EXPECT_NE(table.find("happy"), std::string::npos);
  const std::string scores = m.format_scores({"angry", "fear", "happy"});
  EXPECT_NE(scores.find("precision"), std::string::npos);
  EXPECT_NE(scores.find("weighted avg"), std::string::npos);
}

TEST(History, CsvAndJsonRoundTripNumbers) {
  History h;
  EpochRecord r;
  r.epoch = 1;
  r.loss = 1.0 / 3.0;
  r.accuracy = 0.25;
  r.val_loss = NAN;
  r.val_accuracy = 0.1;
  r.lr = double(1e-3f);
  r.train_images = 100;
  r.train_seconds = 2.0;
  h.epochs.push_back(r);
  const std::string csv = h.to_csv();
  EXPECT_EQ(csv.substr(0, csv.find('\n')),
            "epoch,loss,accuracy,val_loss,val_accuracy,lr,steps,seconds,train_seconds,val_seconds,images_per_second,"
            "loader_stall_seconds,val_predicted_classes,val_only_class,loss_exploded");
  EXPECT_NE(csv.find("1,0.3333333333333333,0.25,nan,0.1,0.001,"), std::string::npos) << csv;
  EXPECT_EQ(std::stod("0.3333333333333333"), 1.0 / 3.0);  // shortest round-trip text
  EXPECT_EQ(csv.substr(csv.size() - 6), ",0,,0\n") << csv;  // collapse signs not recorded
  // history.json parsed back: the same numbers, NaN as null (JSON has no NaN).
  const nlohmann::json json = nlohmann::json::parse(h.to_json());
  EXPECT_EQ(json["columns"].size(), 15u);
  EXPECT_EQ(json["columns"][14], "loss_exploded");
  ASSERT_EQ(json["epochs"].size(), 1u);
  const nlohmann::json& e = json["epochs"][0];
  EXPECT_EQ(e["epoch"], 1);
  EXPECT_EQ(e["loss"].get<double>(), 1.0 / 3.0);
  EXPECT_TRUE(e["val_loss"].is_null()) << e;
  EXPECT_EQ(e["lr"].get<double>(), 0.001) << e;  // the float's shortest decimal, as in the CSV
  EXPECT_EQ(e["images_per_second"].get<double>(), 50.0);
  EXPECT_TRUE(e["val_only_class"].is_null()) << e;
  EXPECT_EQ(e["loss_exploded"], false);

  // A collapsed epoch: one class predicted (a folder-named class with a comma and a quote is
  // quoted as RFC 4180 and JSON require), loss exploded.
  h.epochs[0].val_predicted_classes = 1;
  h.epochs[0].val_only_class = "happy, \"mostly\"\t\x01";
  h.epochs[0].loss_exploded = true;
  const std::string csv2 = h.to_csv();
  EXPECT_EQ(csv2.substr(csv2.size() - 27), ",1,\"happy, \"\"mostly\"\"\t\x01\",1\n") << csv2;
  const nlohmann::json e2 = nlohmann::json::parse(h.to_json())["epochs"][0];
  EXPECT_EQ(e2["val_predicted_classes"], 1);
  EXPECT_EQ(e2["val_only_class"], "happy, \"mostly\"\t\x01");
  EXPECT_EQ(e2["loss_exploded"], true);
  // Non-finite timings and learning rate are null too.
  h.epochs[0].lr = INFINITY;
  h.epochs[0].seconds = NAN;
  const nlohmann::json e3 = nlohmann::json::parse(h.to_json())["epochs"][0];
  EXPECT_TRUE(e3["lr"].is_null() && e3["seconds"].is_null()) << e3;
}

TEST(ConfigOverrides, KeepTheTextAndChangeOnlyTheValues) {
  const std::string text =
      "# my model\n[model]\nname = \"m\" # the name\n\n[train]\nepochs = 50   # fifty\nbatch_size = 1_28\n\n"
      "[[layers]]\ntype = \"Dense\"\n";
  const std::string out = apply_config_overrides(
      text, "m.toml",
      {{"train", "epochs", "2"}, {"train", "seed", "9"}, {"data", "path", toml_string("my \"data\".csv")}});
  EXPECT_NE(out.find("epochs = 2   # fifty\n"), std::string::npos) << out;  // comment kept
  EXPECT_NE(out.find("[train]\nseed = 9\n"), std::string::npos) << out;    // new key under its header
  EXPECT_NE(out.find("\n[data]\npath = \"my \\\"data\\\".csv\"\n"), std::string::npos) << out;
  EXPECT_NE(out.find("# my model\n"), std::string::npos);
  EXPECT_NE(out.find("batch_size = 1_28"), std::string::npos);
}

TEST(ConfigOverrides, ResolvedRealConfigParsesWithTheNewValues) {
  const std::string path = source_dir() + "/configs/model5.toml";
  const auto original = fer::models::load_run_config(path);
  const std::string out = apply_config_overrides(original.source_text, path,
                                                 {{"train", "epochs", "3"},
                                                  {"train", "batch_size", "32"},
                                                  {"train", "seed", "11"},
                                                  {"data", "path", toml_string("/tmp/some where.csv")}});
  const auto resolved = fer::models::parse_run_config(out, path);
  EXPECT_EQ(resolved.train.epochs, 3);
  EXPECT_EQ(resolved.train.batch_size, 32);
  EXPECT_EQ(resolved.train.seed, 11u);
  EXPECT_EQ(resolved.data.path, "/tmp/some where.csv");
  EXPECT_EQ(resolved.model.name, "model5");
  EXPECT_EQ(resolved.train.optimizer.learning_rate, original.train.optimizer.learning_rate);
  auto a = fer::models::build_graph(original);
  auto b = fer::models::build_graph(resolved);
  EXPECT_EQ(fer::models::architecture_hash(*a), fer::models::architecture_hash(*b));
}

TEST(ReportHelpers, EscapingBase64AndPng) {
  EXPECT_EQ(html_escape("<a href=\"x\">&'</a>"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;");
  EXPECT_EQ(base64_encode("Man"), "TWFu");
  EXPECT_EQ(base64_encode("Ma"), "TWE=");
  EXPECT_EQ(base64_encode("M"), "TQ==");
  EXPECT_EQ(base64_encode(""), "");
  std::vector<uint8_t> px(48 * 48);
  for (size_t i = 0; i < px.size(); ++i) px[i] = uint8_t(i);
  const std::string png = encode_png_gray(px.data(), 48, 48);
  ASSERT_GT(png.size(), 8u);
  EXPECT_EQ(png.substr(1, 3), "PNG");
}

TEST(ReportHelpers, RendersWithoutAnyEpoch) {
  ReportInput in;
  in.model_name = "m<1>";
  const std::string html = render_report(in);
  EXPECT_NE(html.find("m&lt;1&gt;"), std::string::npos);
  EXPECT_NE(html.find("No epoch has completed yet"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);
}

TEST(DataChoice, CommandLinePathMustExistAndSampleStandsInForAMissingDefault) {
  const std::string msg = user_error_of([] { choose_data("data/fer2013.csv", std::string("/no/such.csv"), "c.toml"); });
  EXPECT_NE(msg.find("--data /no/such.csv"), std::string::npos) << msg;
  const DataChoice c = choose_data("/definitely/not/here.csv", std::nullopt, "c.toml");
  EXPECT_TRUE(c.is_sample);
  EXPECT_EQ(c.missing_path, "/definitely/not/here.csv");
  EXPECT_TRUE(exists(c.path));
  const std::string banner = sample_banner(c, 108);
  EXPECT_NE(banner.find("BUNDLED SAMPLE"), std::string::npos);
  EXPECT_NE(banner.find("Kaggle"), std::string::npos);
  const DataChoice real = choose_data(sample_csv(), std::nullopt, "c.toml");
  EXPECT_FALSE(real.is_sample);
}

TEST(FileIo, AtomicWriteReplacesAndLeavesNoTemporary) {
  TempDir dir;
  write_file_atomic(dir / "f.txt", "one");
  write_file_atomic(dir / "f.txt", "two");
  EXPECT_EQ(read_text(dir / "f.txt"), "two");
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) n += e.is_regular_file();
  EXPECT_EQ(n, 1);
  const std::string msg = user_error_of([&] { write_file_atomic(dir / "no/such/dir/f.txt", "x"); });
  EXPECT_NE(msg.find("no/such/dir/f.txt"), std::string::npos) << msg;
  EXPECT_EQ(format_double(0.1), "0.1");
  EXPECT_EQ(format_float(1e-3f), "0.001");
}

}  // namespace
