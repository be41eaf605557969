// Conv2D: NHWC input, OHWI kernel, bias, optional activation applied in place on the output.
#include <algorithm>

#include "engine/error.h"
#include "models/layers/layer_catalogue.h"
#include "models/onnx_form.h"

namespace fer::models {
namespace {

class Conv2D final : public Layer {
 public:
  Conv2D(int filters, std::pair<int, int> kernel, std::pair<int, int> strides, bool same, Act act)
      : filters_(filters), kernel_(kernel), strides_(strides), same_(same), act_(act) {}

  const char* type() const override { return "Conv2D"; }

  Shape infer(const Shape& in) override {
    if (in.rank() != 3) {
      throw UserError("Conv2D '" + name() + "' needs an (h, w, c) input, got " + in.str());
    }
    ConvShape& s = shape_;
    s.h = in.dims[0];
    s.w = in.dims[1];
    s.c = in.dims[2];
    s.k = filters_;
    s.kh = kernel_.first;
    s.kw = kernel_.second;
    s.stride_h = strides_.first;
    s.stride_w = strides_.second;
    if (same_) {
      s.oh = (s.h + s.stride_h - 1) / s.stride_h;
      s.ow = (s.w + s.stride_w - 1) / s.stride_w;
      s.pad_top = std::max((s.oh - 1) * s.stride_h + s.kh - s.h, 0) / 2;
      s.pad_left = std::max((s.ow - 1) * s.stride_w + s.kw - s.w, 0) / 2;
    } else {
      if (s.h < s.kh || s.w < s.kw) {
        throw UserError("Conv2D '" + name() + "': a " + std::to_string(s.kh) + "x" +
                        std::to_string(s.kw) + " kernel does not fit the " + in.str() +
                        " input with padding \"valid\"");
      }
      s.oh = (s.h - s.kh) / s.stride_h + 1;
      s.ow = (s.w - s.kw) / s.stride_w + 1;
      s.pad_top = s.pad_left = 0;
    }
    return Shape{{s.oh, s.ow, s.k}};
  }

  std::vector<ParamSpec> param_specs() const override {
    const ConvShape& s = shape_;
    return {{"kernel", {s.k, s.kh, s.kw, s.c}, Init::glorot_uniform, true, s.kh * s.kw * s.c,
             s.kh * s.kw * s.k},
            {"bias", {s.k}, Init::zeros, true}};
  }

  size_t workspace_bytes(Backend& backend, int batch, kernels::MathType math) const override {
    return backend.conv2d_workspace_bytes(at_batch(batch, math));
  }

  void forward(const LayerIO& io) override {
    const ConvShape s = at_batch(io.batch, io.math);
    io.backend->conv2d_forward(s, io.x, (*io.params)[0], (*io.params)[1], io.y, io.workspace);
    if (act_ != Act::linear) io.backend->activation_forward(act_, s.y_size(), s.k, io.y, io.y);
  }

  void backward(const LayerIO& io) override {
    const ConvShape s = at_batch(io.batch, io.math);
    if (act_ != Act::linear) io.backend->activation_backward(act_, s.y_size(), s.k, io.y, io.dy, io.dy);
    io.backend->conv2d_backward(s, io.x, (*io.params)[0], io.dy, io.dx, (*io.grads)[0],
                                (*io.grads)[1], io.workspace);
  }

  // Conv (OIHW kernel, explicit pads: TensorFlow's "same" puts the odd pixel at the bottom/right)
  // then the activation.
  std::string to_onnx(OnnxLayerForm& f) const override {
    const ConvShape& s = shape_;
    const std::vector<float> ohwi = f.param("kernel");
    std::vector<float> oihw(ohwi.size());
    for (int o = 0; o < s.k; ++o)
      for (int y = 0; y < s.kh; ++y)
        for (int x = 0; x < s.kw; ++x)
          for (int i = 0; i < s.c; ++i)
            oihw[((size_t(o) * s.c + i) * s.kh + y) * s.kw + x] = ohwi[((size_t(o) * s.kh + y) * s.kw + x) * s.c + i];
    const std::string w = f.initializer("kernel", {s.k, s.c, s.kh, s.kw}, std::move(oihw));
    const std::string b = f.initializer("bias", {s.k}, f.param("bias"));
    int64_t pad_bottom = 0, pad_right = 0;
    if (same_) {
      pad_bottom = std::max((s.oh - 1) * s.stride_h + s.kh - s.h, 0) - s.pad_top;
      pad_right = std::max((s.ow - 1) * s.stride_w + s.kw - s.w, 0) - s.pad_left;
    }
    const std::string y = f.node("Conv", {f.x, w, b},
                                 {OnnxAttribute::integers("kernel_shape", {s.kh, s.kw}),
                                  OnnxAttribute::integers("strides", {s.stride_h, s.stride_w}),
                                  OnnxAttribute::integers("pads", {s.pad_top, s.pad_left, pad_bottom, pad_right}),
                                  OnnxAttribute::integers("dilations", {1, 1}), OnnxAttribute::integer("group", 1)},
                                 "Conv");
    return f.activation(act_, y);
  }

  bool ends_in_softmax() const override { return act_ == Act::softmax; }
  void emit_logits() override { act_ = Act::linear; }
  int64_t forward_flops(int batch) const override {
    const ConvShape s = at_batch(batch);
    return s.flops() + s.y_size();
  }

 private:
  ConvShape at_batch(int n, kernels::MathType math = kernels::MathType::f32) const {
    ConvShape s = shape_;
    s.n = n;
    s.math = math;
    return s;
  }
  int filters_;
  std::pair<int, int> kernel_, strides_;
  bool same_;
  Act act_;
  ConvShape shape_;
};

}  // namespace

std::unique_ptr<Layer> make_conv2d(TableReader& r) {
  const int64_t filters = r.require_int("filters");
  if (filters < 1) r.fail("filters", "must be at least 1");
  auto kernel = r.get_int_pair("kernel_size");
  if (!kernel) r.fail("kernel_size", "is required");
  if (kernel->first < 1 || kernel->second < 1) r.fail("kernel_size", "must be at least 1");
  auto strides = r.get_int_pair("strides").value_or(std::pair<int, int>(1, 1));
  if (strides.first < 1 || strides.second < 1) r.fail("strides", "must be at least 1");
  const bool same = r.get_choice("padding", {"valid", "same"}, "valid") == "same";
  const Act act = parse_activation(r, "activation", Act::linear);
  return std::make_unique<Conv2D>(int(filters), *kernel, strides, same, act);
}

}  // namespace fer::models
