// fer_gpu export CHECKPOINT --format onnx -o model.onnx
// Writes the model of a checkpoint as an inference graph other runtimes load (onnxruntime,
// OpenCV's DNN module, TensorRT): Dropout removed, BatchNormalization with its moving statistics,
// softmax probabilities out, a dynamic batch dimension, class names and the input convention in
// the metadata. The file is built with libonnx, passes onnx::checker before it is written, and is
// written atomically: a refused model or a failed write leaves no file (and an old one intact).
#include <cstdio>
#include <memory>
#include <string>

#include "engine/error.h"
#include "engine/training/evaluate.h"
#include "engine/training/fileio.h"
#include "models/onnx_export.h"
#include "models/onnx_form.h"
#include "tools/commands.h"

namespace {

struct ExportArgs {
  std::string checkpoint, format = "onnx", output;
};

void add_export(CLI::App& app) {
  auto* cmd = app.add_subcommand("export", "Export a checkpoint's model for other runtimes (ONNX)");
  auto a = std::make_shared<ExportArgs>();
  cmd->add_option("checkpoint", a->checkpoint, "Checkpoint file (best.ckpt or last.ckpt of a run)")->required();
  cmd->add_option("--format", a->format, "Output format (onnx: opset 13, checked by onnxruntime and OpenCV's DNN in the tests)")
      ->check(CLI::IsMember({"onnx"}));
  cmd->add_option("-o,--output", a->output, "File to write, e.g. model.onnx")->required();
  cmd->callback([a] {
    using namespace fer::training;
    if (!fer::onnx_export_available()) {
      // Before reading anything: the message is the same for every checkpoint.
      fer::serialize_onnx({}, {});
    }
    if (is_directory(a->output)) throw fer::UserError("-o " + a->output + ": is a directory, expected a file name such as model.onnx");
    LoadedModel model = load_model(a->checkpoint, "");
    fer::OnnxModelInfo info;
    info.model_name = model.config.model.name;
    info.class_names = model.class_names;
    info.source = a->checkpoint;
    fer::OnnxGraphDraft draft;
    try {
      draft = fer::draft_onnx_graph(*model.graph, model.checkpoint.params, model.checkpoint.state);
    } catch (const fer::UserError& e) {
      throw fer::UserError(a->checkpoint + ": " + e.what());
    }
    const std::string bytes = fer::serialize_onnx(draft, info);
    write_file_atomic(a->output, bytes);

    std::string ops;
    for (const std::string& op : draft.op_types()) ops += (ops.empty() ? "" : ", ") + op;
    std::string classes;
    for (const std::string& c : info.class_names) classes += (classes.empty() ? "" : ", ") + c;
    const auto& hwc = draft.input_hwc;
    std::printf("wrote %s (%zu bytes): %s, ONNX opset %d, checked with onnx::checker %s\n", a->output.c_str(),
                bytes.size(), info.model_name.c_str(), fer::kOnnxOpset, fer::onnx_library_version().c_str());
    std::printf("  input  %s: float32 [N, %d, %d, %d] NHWC, grayscale pixel * (1/255)\n", draft.input.c_str(), hwc[0],
                hwc[1], hwc[2]);
    std::printf("  output %s: float32 [N, %d] softmax probabilities of %s\n", draft.output.c_str(), draft.classes,
                classes.c_str());
    std::printf("  ops: %s\n", ops.c_str());
  });
}

}  // namespace

FER_COMMAND(add_export);
