#include "models/onnx_export.h"

#include <stdexcept>

#include <nlohmann/json.hpp>

#include "engine/error.h"

#ifdef FER_HAVE_ONNX
#include <onnx/checker.h>
#include <onnx/common/version.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>
#endif

namespace fer {

std::vector<std::pair<std::string, std::string>> onnx_metadata(const OnnxGraphDraft& d, const OnnxModelInfo& info) {
  // classes and input_shape are JSON arrays (read with json.loads / JSON.parse); names from image
  // folders need not be valid UTF-8: replaced, not thrown on.
  const std::string classes =
      nlohmann::json(info.class_names).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  nlohmann::json shape_json = nlohmann::json::array({"N"});
  for (int v : d.input_hwc) shape_json.push_back(v);
  const std::string shape = shape_json.dump();
  const bool image = d.input_hwc.size() == 3;
  const std::string hw = image ? std::to_string(d.input_hwc[0]) + "x" + std::to_string(d.input_hwc[1]) : "";
  std::vector<std::pair<std::string, std::string>> m = {
      {"fer_gpu.model", info.model_name},
      {"classes", classes},
      {"input_name", d.input},
      {"input_layout", image ? "NHWC" : "NC"},
      {"input_shape", shape},
      {"input_color", "grayscale (8-bit luma, PIL convert(\"L\"): L = (299 R + 587 G + 114 B) / 1000)"},
      {"input_scale", "float32 value = pixel * (1/255): 8-bit gray 0..255 to [0, 1], no mean subtraction"},
      {"input_resize", image ? "a face crop resized to " + hw +
                                   " (fer_gpu predict: detected face box plus margin, area interpolation; "
                                   "images of exactly " + hw + " as they are)"
                             : "none"},
      {"output_name", d.output},
      {"output", "softmax probabilities [N, " + std::to_string(d.classes) + "], index i is classes[i]"},
      {"opset", std::to_string(kOnnxOpset)},
  };
  if (!info.source.empty()) m.emplace_back("source", info.source);
  return m;
}

#ifdef FER_HAVE_ONNX

bool onnx_export_available() { return true; }

std::string onnx_library_version() { return onnx::LAST_RELEASE_VERSION; }

namespace {

void set_tensor_type(onnx::ValueInfoProto* v, const std::string& name, const std::vector<int64_t>& dims) {
  v->set_name(name);
  auto* t = v->mutable_type()->mutable_tensor_type();
  t->set_elem_type(onnx::TensorProto::FLOAT);
  auto* shape = t->mutable_shape();
  shape->add_dim()->set_dim_param("N");  // dynamic batch
  for (int64_t d : dims) shape->add_dim()->set_dim_value(d);
}

}  // namespace

std::string serialize_onnx(const OnnxGraphDraft& d, const OnnxModelInfo& info) {
  onnx::ModelProto model;
  model.set_ir_version(kOnnxIrVersion);
  model.set_producer_name("fer_gpu");
  model.set_model_version(1);
  model.set_doc_string("fer_gpu " + info.model_name + ": facial-expression classifier, inference graph " +
                       "(Dropout removed, BatchNormalization with its moving statistics, softmax output). " +
                       "See metadata_props for the input convention and the class order.");
  auto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOnnxOpset);
  for (const auto& [key, value] : onnx_metadata(d, info)) {
    auto* p = model.add_metadata_props();
    p->set_key(key);
    p->set_value(value);
  }

  onnx::GraphProto* g = model.mutable_graph();
  g->set_name(info.model_name.empty() ? "fer_gpu" : info.model_name);
  std::vector<int64_t> in_dims(d.input_hwc.begin(), d.input_hwc.end());
  if (in_dims.empty()) throw std::logic_error("serialize_onnx: flat-input models are not written");
  set_tensor_type(g->add_input(), d.input, in_dims);
  set_tensor_type(g->add_output(), d.output, {d.classes});

  for (const OnnxInitializer& init : d.initializers) {
    onnx::TensorProto* t = g->add_initializer();
    t->set_name(init.name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (int64_t v : init.dims) t->add_dims(v);
    // raw_data is little-endian float32, the layout of the host buffers (x86-64, aarch64).
    t->set_raw_data(std::string(reinterpret_cast<const char*>(init.values.data()), init.values.size() * sizeof(float)));
  }
  for (const OnnxNode& n : d.nodes) {
    onnx::NodeProto* p = g->add_node();
    p->set_op_type(n.op_type);
    p->set_name(n.name);
    for (const auto& in : n.inputs) p->add_input(in);
    p->add_output(n.output);
    for (const OnnxAttribute& a : n.attributes) {
      onnx::AttributeProto* attr = p->add_attribute();
      attr->set_name(a.name);
      switch (a.kind) {
        case OnnxAttribute::Kind::integer:
          attr->set_type(onnx::AttributeProto::INT);
          attr->set_i(a.i);
          break;
        case OnnxAttribute::Kind::integers:
          attr->set_type(onnx::AttributeProto::INTS);
          for (int64_t v : a.ints) attr->add_ints(v);
          break;
        case OnnxAttribute::Kind::real:
          attr->set_type(onnx::AttributeProto::FLOAT);
          attr->set_f(a.f);
          break;
      }
    }
  }

  try {
    onnx::checker::check_model(model);
    // What onnx.checker.check_model(full_check=True) adds: shape inference on a copy that throws
    // on any node error or type mismatch, and must agree with the declared output [N, classes].
    onnx::ModelProto inferred = model;
    onnx::shape_inference::InferShapes(inferred, onnx::OpSchemaRegistry::Instance(),
                                       onnx::ShapeInferenceOptions(/*check_type=*/true, /*error_mode=*/1));
  } catch (const std::exception& e) {
    throw std::logic_error(std::string("the exported ONNX graph fails the ONNX checker (a bug in a layer's ONNX form): ") +
                           e.what());
  }
  std::string bytes;
  if (!model.SerializeToString(&bytes)) throw std::logic_error("protobuf could not serialise the ONNX model");
  return bytes;
}

#else

bool onnx_export_available() { return false; }

std::string onnx_library_version() { return ""; }

std::string serialize_onnx(const OnnxGraphDraft&, const OnnxModelInfo&) {
  throw UserError("this fer_gpu was built without ONNX: install libonnx-dev and libprotobuf-dev "
                  "(tools/scripts/install_deps.sh does) and rebuild to use fer_gpu export");
}

#endif

}  // namespace fer
