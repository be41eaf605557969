#pragma once
// ONNX export: the draft of models/onnx_form.h turned into an onnx::ModelProto with Debian's
// libonnx (protobuf), checked with onnx::checker and strict shape inference, and serialised.
// Builds without ONNX (FER_ONNX=OFF or libonnx-dev absent) keep the declarations; calls then
// throw UserError saying how to get it.
#include <string>
#include <utility>
#include <vector>

#include "models/onnx_form.h"

namespace fer {

// What the file says about itself besides the graph (ModelProto.metadata_props and doc_string).
struct OnnxModelInfo {
  std::string model_name;                // "model5-v2": the graph's name
  std::vector<std::string> class_names;  // output index order
  std::string source;                    // what it was exported from (checkpoint path)
};

// True when this fer_gpu was built with libonnx.
bool onnx_export_available();

// The metadata_props the exported file carries, in order (key, value). Keys:
//   fer_gpu.model, classes (JSON array, output index order), input_name, input_layout ("NHWC"),
//   input_shape (JSON, "N" the dynamic batch), input_color ("grayscale"), input_scale (float32
//   value = 8-bit pixel * (1/255), range [0, 1]), input_resize (how fer_gpu predict makes a crop),
//   output_name, output ("softmax probabilities [N, classes]"), opset, source.
std::vector<std::pair<std::string, std::string>> onnx_metadata(const OnnxGraphDraft& draft,
                                                               const OnnxModelInfo& info);

// Serialised ModelProto (opset kOnnxOpset, IR kOnnxIrVersion) of the draft: dynamic batch "N" on
// the input [N, h, w, c] and the output [N, classes]. Runs onnx::checker::check_model and shape
// inference with type checks and node errors on; a failure there is a bug in a layer's form and
// throws std::logic_error with the checker's message. Throws UserError without libonnx.
std::string serialize_onnx(const OnnxGraphDraft& draft, const OnnxModelInfo& info);

// The version of the ONNX library the checker came from ("1.12.0"), "" without libonnx.
std::string onnx_library_version();

}  // namespace fer
