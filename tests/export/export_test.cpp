// ONNX export: each layer's form as data, the refusal of a layer without one, the file libonnx
// writes (checker, metadata, dynamic batch), OpenCV's DNN module running it against fer_gpu's own
// forward pass, and `fer_gpu export` as users run it (atomic: nothing half-written).
// The onnxruntime comparison through `fer_gpu predict` is tests/export/onnxruntime_check.py.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <string>

#include "engine/error.h"
#include "engine/graph.h"
#include "loaders/dataset.h"
#include "models/layers/layer_catalogue.h"
#include "models/onnx_export.h"
#include "models/onnx_form.h"
#include "models/run_config.h"
#include "models/table_reader.h"
#include "engine/training/run_setup.h"
#include "engine/backend.h"
#include "tests/common/temp_files.h"
#include "tests/common/user_error.h"
#include "tests/export/random_checkpoint.h"

#ifdef FER_HAVE_ONNX
#include <onnx/onnx_pb.h>
#endif
#ifdef FER_TEST_OPENCV_DNN
#include <opencv2/core.hpp>
#include <opencv2/dnn.hpp>
#endif

namespace {

using fer::test_files::TempDir;

std::string src(const std::string& rel) { return std::string(FER_SOURCE_DIR) + "/" + rel; }

const std::vector<std::string> kNumberedConfigs = {"configs/model4.toml", "configs/model5.toml", "configs/model5-v2.toml",
                                                   "configs/model6.toml", "configs/model7.toml", "configs/model8.toml"};
const std::vector<std::string> kEveryLayerConfigs = {"tests/export/every_layer_a.toml", "tests/export/every_layer_b.toml"};

struct Model {
  std::unique_ptr<fer::Graph> graph;
  std::vector<float> params, state;
  fer::models::RunConfig config;
};

Model random_model(const std::string& config_rel, uint32_t seed) {
  Model m;
  m.config = fer::models::load_run_config(src(config_rel));
  m.graph = fer::models::build_graph(m.config);
  fer::testing::random_weights(*m.graph, seed, &m.params, &m.state);
  return m;
}

const fer::OnnxNode* find_node(const fer::OnnxGraphDraft& d, const std::string& name) {
  for (const auto& n : d.nodes)
    if (n.name == name) return &n;
  return nullptr;
}

const fer::OnnxAttribute* attr(const fer::OnnxNode& n, const std::string& name) {
  for (const auto& a : n.attributes)
    if (a.name == name) return &a;
  return nullptr;
}

// The metadata's JSON values parse back whatever the class names hold (folder names may carry
// quotes, backslashes, control characters).
TEST(OnnxMetadata, JsonValuesParseBack) {
  fer::OnnxGraphDraft draft;
  draft.input_hwc = {48, 40, 1};
  draft.classes = 3;
  fer::OnnxModelInfo info;
  info.class_names = {"happy \"mostly\"", "back\\slash", "tab\there\n"};
  std::map<std::string, std::string> meta;
  for (const auto& [k, v] : fer::onnx_metadata(draft, info)) meta[k] = v;
  EXPECT_EQ(nlohmann::json::parse(meta["classes"]), nlohmann::json(info.class_names)) << meta["classes"];
  EXPECT_EQ(nlohmann::json::parse(meta["input_shape"]), nlohmann::json::array({"N", 48, 40, 1}));
}

TEST(OnnxForm, TheTwoTestModelsCoverEveryCatalogueLayerType) {
  std::set<std::string> used;
  for (const auto& rel : kEveryLayerConfigs) {
    Model m = random_model(rel, 1);
    for (int i = 0; i < m.graph->num_layers(); ++i) used.insert(m.graph->layer(i).type());
  }
  for (const auto& t : fer::models::layer_catalogue()) {
    EXPECT_TRUE(used.count(t.type)) << t.type << " is in the catalogue but in neither export test model: add it";
  }
}

TEST(OnnxForm, InferenceGraphOfEveryLayerTypeInOrder) {
  Model a = random_model(kEveryLayerConfigs[0], 1);
  const fer::OnnxGraphDraft d = fer::draft_onnx_graph(*a.graph, a.params, a.state);
  std::vector<std::string> ops;
  for (const auto& n : d.nodes) ops.push_back(n.op_type);
  // Dropout leaves nothing; the last Dense emits logits and the writer's Softmax follows.
  const std::vector<std::string> expected = {"Transpose", "Conv",    "Relu",      "BatchNormalization",
                                             "AveragePool", "Conv",  "Relu",      "MaxPool",
                                             "Transpose",   "Flatten", "Gemm",    "Relu",
                                             "BatchNormalization",     "Gemm",    "Softmax"};
  EXPECT_EQ(ops, expected);
  EXPECT_EQ(d.nodes.front().inputs[0], "input");
  EXPECT_EQ(d.nodes.back().output, "probabilities");
  for (size_t i = 1; i < d.nodes.size(); ++i) {
    EXPECT_EQ(d.nodes[i].inputs[0], d.nodes[i - 1].output) << "node " << d.nodes[i].name << " is not chained";
  }
  EXPECT_EQ(d.nodes.front().attributes[0].ints, (std::vector<int64_t>{0, 3, 1, 2}));
  const auto* flatten_t = find_node(d, "flatten/Transpose");
  ASSERT_NE(flatten_t, nullptr);
  EXPECT_EQ(attr(*flatten_t, "perm")->ints, (std::vector<int64_t>{0, 2, 3, 1})) << "Keras flattens (h, w, c)";

  Model b = random_model(kEveryLayerConfigs[1], 1);
  const fer::OnnxGraphDraft db = fer::draft_onnx_graph(*b.graph, b.params, b.state);
  ops.clear();
  for (const auto& n : db.nodes) ops.push_back(n.op_type);
  EXPECT_EQ(ops, (std::vector<std::string>{"Transpose", "Conv", "Relu", "Conv", "Softmax", "GlobalAveragePool",
                                           "Flatten", "Gemm", "Softmax"}));
  EXPECT_EQ(attr(*find_node(db, "conv2d_1/Softmax"), "axis")->i, 1) << "softmax over the channels of NCHW";
}

TEST(OnnxForm, ConvKernelIsOihwAndSamePaddingPutsTheOddPixelLast) {
  Model a = random_model(kEveryLayerConfigs[0], 3);
  const fer::OnnxGraphDraft d = fer::draft_onnx_graph(*a.graph, a.params, a.state);
  const fer::OnnxNode* conv = find_node(d, "conv2d/Conv");
  ASSERT_NE(conv, nullptr);
  // 48 -> 24 with a 3x3 kernel at stride 2 needs one padding pixel: TensorFlow puts it last.
  EXPECT_EQ(attr(*conv, "pads")->ints, (std::vector<int64_t>{0, 0, 1, 1}));
  EXPECT_EQ(attr(*conv, "strides")->ints, (std::vector<int64_t>{2, 2}));
  const fer::OnnxNode* conv1 = find_node(d, "conv2d_1/Conv");
  EXPECT_EQ(attr(*conv1, "kernel_shape")->ints, (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(attr(*conv1, "strides")->ints, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(attr(*conv1, "pads")->ints, (std::vector<int64_t>{0, 0, 0, 0}));

  // conv2d_1 kernel: fer_gpu OHWI [5, 3, 2, 4] -> ONNX OIHW [5, 4, 3, 2].
  const auto& entries = a.graph->params_of_layer(3);
  const float* ohwi = a.params.data() + entries[0].offset;
  const fer::OnnxInitializer* w = nullptr;
  for (const auto& init : d.initializers)
    if (init.name == "conv2d_1/kernel") w = &init;
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->dims, (std::vector<int64_t>{5, 4, 3, 2}));
  for (int o = 0; o < 5; ++o)
    for (int y = 0; y < 3; ++y)
      for (int x = 0; x < 2; ++x)
        for (int i = 0; i < 4; ++i)
          ASSERT_EQ(w->values[size_t(((o * 4 + i) * 3 + y) * 2 + x)], ohwi[((o * 3 + y) * 2 + x) * 4 + i]);
}

// A layer type the exporter does not know: an identity with no ONNX form.
class MysteryLayer final : public fer::Layer {
 public:
  const char* type() const override { return "Mystery"; }
  fer::Shape infer(const fer::Shape& in) override { return in; }
  bool aliases_input() const override { return true; }
  void forward(const fer::LayerIO&) override {}
  void backward(const fer::LayerIO&) override {}
};

TEST(OnnxForm, ALayerWithoutAFormIsRefusedByNameAndType) {
  toml::table softmax{{"activation", "softmax"}};
  fer::models::TableReader reader(softmax, "inline", "layers[1] (Activation)");
  std::vector<std::unique_ptr<fer::Layer>> layers;
  layers.push_back(std::make_unique<MysteryLayer>());
  layers.back()->set_name("mystery_1");
  layers.push_back(fer::models::find_layer_type("Activation")->make(reader));
  layers.back()->set_name("activation");
  fer::Graph graph(std::move(layers), fer::Shape{{3}}, 3);
  const std::string what = fer::test_errors::user_error_of([&] { fer::draft_onnx_graph(graph, {}, {}); },
                                                          "a layer without an ONNX form was exported");
  EXPECT_NE(what.find("layer 'mystery_1' (Mystery) has no ONNX form"), std::string::npos) << what;
  EXPECT_NE(what.find("nothing was written"), std::string::npos) << what;
}

TEST(OnnxForm, WeightsOfAnotherModelAreRefused) {
  Model a = random_model(kEveryLayerConfigs[0], 1);
  a.params.pop_back();
  EXPECT_THROW(fer::draft_onnx_graph(*a.graph, a.params, a.state), fer::UserError);
}

#ifdef FER_HAVE_ONNX

TEST(OnnxExport, CheckedModelWithMetadataAndDynamicBatch) {
  Model m = random_model("configs/model5-v2.toml", 2);
  const fer::OnnxGraphDraft d = fer::draft_onnx_graph(*m.graph, m.params, m.state);
  fer::OnnxModelInfo info{"model5-v2", fer::training::class_names_of(m.config), "test.ckpt"};
  const std::string bytes = fer::serialize_onnx(d, info);
  onnx::ModelProto model;
  ASSERT_TRUE(model.ParseFromString(bytes));
  EXPECT_EQ(model.ir_version(), fer::kOnnxIrVersion);
  ASSERT_EQ(model.opset_import_size(), 1);
  EXPECT_EQ(model.opset_import(0).version(), fer::kOnnxOpset);
  EXPECT_EQ(model.producer_name(), "fer_gpu");
  std::map<std::string, std::string> meta;
  for (const auto& p : model.metadata_props()) meta[p.key()] = p.value();
  EXPECT_EQ(nlohmann::json::parse(meta["classes"]),
            nlohmann::json::array({"angry", "fear", "happy", "sad", "surprise", "neutral"}));
  EXPECT_EQ(meta["input_layout"], "NHWC");
  EXPECT_EQ(nlohmann::json::parse(meta["input_shape"]), nlohmann::json::array({"N", 48, 48, 1}));
  EXPECT_NE(meta["input_scale"].find("1/255"), std::string::npos);
  EXPECT_EQ(meta["fer_gpu.model"], "model5-v2");
  EXPECT_EQ(meta["source"], "test.ckpt");

  const auto& g = model.graph();
  ASSERT_EQ(g.input_size(), 1);
  const auto& in = g.input(0).type().tensor_type().shape();
  ASSERT_EQ(in.dim_size(), 4);
  EXPECT_EQ(in.dim(0).dim_param(), "N");
  EXPECT_EQ(in.dim(1).dim_value(), 48);
  EXPECT_EQ(in.dim(3).dim_value(), 1);
  const auto& out = g.output(0).type().tensor_type().shape();
  EXPECT_EQ(out.dim(0).dim_param(), "N");
  EXPECT_EQ(out.dim(1).dim_value(), 6);
  std::set<std::string> ops;
  for (const auto& n : g.node()) ops.insert(n.op_type());
  EXPECT_FALSE(ops.count("Dropout"));
  // Every weight is stored: the initializers hold exactly the model's parameters and statistics.
  int64_t stored = 0;
  for (const auto& t : g.initializer()) stored += int64_t(t.raw_data().size() / sizeof(float));
  EXPECT_EQ(stored, m.graph->trainable_count() + m.graph->non_trainable_count());
}

TEST(OnnxExport, AFormTheCheckerRejectsIsABugNotAFile) {
  Model m = random_model("configs/model4.toml", 2);
  fer::OnnxGraphDraft d = fer::draft_onnx_graph(*m.graph, m.params, m.state);
  d.nodes[1].op_type = "Convolution";  // not an ONNX operator
  EXPECT_THROW(fer::serialize_onnx(d, {"model4", {}, ""}), std::logic_error);
}

#else

TEST(OnnxExport, WithoutLibOnnxExportSaysHowToGetIt) {
  EXPECT_NE(fer::test_errors::user_error_of([] { fer::serialize_onnx({}, {}); }).find("libonnx-dev"), std::string::npos);
  GTEST_SKIP() << "built without libonnx: the ONNX file tests need it (install libonnx-dev libprotobuf-dev)";
}

#endif

// fer_gpu's own inference-mode forward pass on the CPU backend.
std::vector<float> fer_probabilities(Model& m, const std::vector<uint8_t>& images, int n) {
  m.graph->plan(fer::make_cpu_backend(), n);
  m.graph->upload_params(m.params);
  m.graph->upload_state(m.state);
  std::vector<int32_t> labels(size_t(n), 0);
  m.graph->set_batch_from_host(n, images.data(), labels.data(), nullptr);
  m.graph->forward(n, false, 0);
  return m.graph->probabilities(n);
}

// n faces of the bundled sample, 48x48 gray.
std::vector<uint8_t> sample_faces(int n) {
  fer::loaders::DatasetOptions options;
  options.cache = fer::loaders::CacheMode::off;
  const fer::loaders::Dataset ds = fer::loaders::load_dataset(src("data/sample/fer2013_sample.csv"), options);
  std::vector<uint8_t> out;
  for (int i = 0; i < n; ++i) {
    const uint8_t* img = ds.image(i * 7 % ds.size());
    out.insert(out.end(), img, img + 48 * 48);
  }
  return out;
}

#if defined(FER_HAVE_ONNX) && defined(FER_TEST_OPENCV_DNN)

// OpenCV's DNN module (what most webcam demos run) reads the file and gives fer_gpu's
// probabilities, for every numbered model and the two every-layer models, at batch 5 and 1.
TEST(OnnxExport, OpenCvDnnRunsTheFileAsFerGpuDoes) {
  cv::setNumThreads(1);
  std::vector<std::string> configs = kNumberedConfigs;
  configs.insert(configs.end(), kEveryLayerConfigs.begin(), kEveryLayerConfigs.end());
  const int n = 5;
  const std::vector<uint8_t> images = sample_faces(n);
  for (size_t k = 0; k < configs.size(); ++k) {
    SCOPED_TRACE(configs[k]);
    Model m = random_model(configs[k], uint32_t(10 + k));
    const fer::OnnxGraphDraft d = fer::draft_onnx_graph(*m.graph, m.params, m.state);
    const std::string bytes = fer::serialize_onnx(d, {m.config.model.name, fer::training::class_names_of(m.config), ""});
    const std::vector<float> expected = fer_probabilities(m, images, n);
    const int classes = m.graph->classes();

    cv::dnn::Net net = cv::dnn::readNetFromONNX(bytes.data(), bytes.size());
    ASSERT_FALSE(net.empty());
    for (int batch : {n, 1}) {
      const int sizes[] = {batch, 48, 48, 1};
      cv::Mat blob(4, sizes, CV_32F);
      for (int i = 0; i < batch * 48 * 48; ++i) blob.ptr<float>()[i] = float(images[size_t(i)]) * (1.0f / 255.0f);
      net.setInput(blob, "input");
      cv::Mat out = net.forward("probabilities");
      ASSERT_EQ(out.total(), size_t(batch * classes));
      double worst = 0.0, spread = 0.0;
      for (int i = 0; i < batch * classes; ++i) {
        worst = std::max(worst, std::abs(double(out.ptr<float>()[i]) - double(expected[size_t(i)])));
        spread = std::max(spread, std::abs(double(expected[size_t(i)]) - 1.0 / classes));
      }
      EXPECT_LE(worst, 1e-5) << "batch " << batch;
      EXPECT_GT(spread, 1e-3) << "probabilities are uniform: the comparison would prove nothing";
    }
  }
}

#else

TEST(OnnxExport, OpenCvDnnRunsTheFileAsFerGpuDoes) {
  GTEST_SKIP() << "built without libonnx or OpenCV's DNN module (libopencv-dnn-dev): OpenCV check skipped";
}

#endif

// ---- fer_gpu export as users run it ----

struct CliRun {
  int status = 0;
  std::string out;
};

CliRun fer_gpu(const std::string& args, const TempDir& dir) {
  const std::string log = dir / "cli.log";
  const int rc = std::system((std::string(FER_GPU_BINARY) + " " + args + " > " + log + " 2>&1").c_str());
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, fer::test_files::read_file(log)};
}

std::vector<std::string> files_in(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

TEST(ExportCli, RefusedInputsLeaveNothingHalfWritten) {
  TempDir dir;
  std::filesystem::create_directories(dir / "out");
  // An existing file at -o survives every refused export unchanged, and no temporary is left.
  fer::test_files::write_file(dir / "out/model.onnx", "previous export");
  fer::test_files::write_file(dir / "broken.ckpt", "FERGPUCK but not a checkpoint");
  CliRun r = fer_gpu("export " + dir / "broken.ckpt" + " -o " + dir / "out/model.onnx", dir);
  EXPECT_EQ(r.status, 2) << r.out;
  EXPECT_NE(r.out.find("broken.ckpt"), std::string::npos) << r.out;
  r = fer_gpu("export " + dir / "missing.ckpt" + " -o " + dir / "out/model.onnx", dir);
  EXPECT_EQ(r.status, 2) << r.out;
  fer::testing::write_random_checkpoint(src("configs/model6.toml"), dir / "m6.ckpt", 4);
  r = fer_gpu("export " + dir / "m6.ckpt" + " --format tflite -o " + dir / "out/model.onnx", dir);
  EXPECT_EQ(r.status, 2) << r.out;
  r = fer_gpu("export " + dir / "m6.ckpt" + " -o " + dir / "out", dir);
  EXPECT_EQ(r.status, 2) << r.out;
  EXPECT_EQ(fer::test_files::read_file(dir / "out/model.onnx"), "previous export");
  EXPECT_EQ(files_in(dir / "out"), std::vector<std::string>{"model.onnx"});
}

#ifdef FER_HAVE_ONNX
TEST(ExportCli, WritesTheCheckedFileAndSaysWhatIsInIt) {
  TempDir dir;
  fer::testing::write_random_checkpoint(src("configs/model6.toml"), dir / "m6.ckpt", 4);
  const CliRun r = fer_gpu("export " + dir / "m6.ckpt" + " --format onnx -o " + dir / "m6.onnx", dir);
  ASSERT_EQ(r.status, 0) << r.out;
  for (const char* key : {"ONNX opset 13", "checked with onnx::checker", "[N, 48, 48, 1] NHWC", "[N, 7]",
                          "angry, disgust, fear, happy, sad, surprise, neutral", "ops: Conv, Flatten, Gemm, MaxPool, Relu, Softmax, Transpose"}) {
    EXPECT_NE(r.out.find(key), std::string::npos) << key << " missing in\n" << r.out;
  }
  onnx::ModelProto model;
  ASSERT_TRUE(model.ParseFromString(fer::test_files::read_file(dir / "m6.onnx")));
  EXPECT_EQ(model.graph().name(), "model6");
}
#endif

}  // namespace
