// MaxPooling2D, AveragePooling2D ("valid" padding) and GlobalAveragePooling2D.
#include "engine/error.h"
#include "models/layers/layer_catalogue.h"
#include "models/onnx_form.h"

namespace fer::models {
namespace {

class Pool2D final : public Layer {
 public:
  // pool {0,0} means the whole map (GlobalAveragePooling2D).
  Pool2D(const char* type, PoolMode mode, std::pair<int, int> pool, std::pair<int, int> strides)
      : type_(type), mode_(mode), pool_(pool), strides_(strides) {}
  const char* type() const override { return type_; }

  Shape infer(const Shape& in) override {
    if (in.rank() != 3) {
      throw UserError(std::string(type_) + " '" + name() + "' needs an (h, w, c) input, got " + in.str());
    }
    const bool global = pool_.first == 0;
    PoolShape& s = shape_;
    s.h = in.dims[0];
    s.w = in.dims[1];
    s.c = in.dims[2];
    s.ph = global ? s.h : pool_.first;
    s.pw = global ? s.w : pool_.second;
    s.stride_h = global ? 1 : strides_.first;
    s.stride_w = global ? 1 : strides_.second;
    if (s.h < s.ph || s.w < s.pw) {
      throw UserError(std::string(type_) + " '" + name() + "': cannot pool the " +
                      std::to_string(s.h) + "x" + std::to_string(s.w) + " map with pool_size " +
                      std::to_string(s.ph) + "x" + std::to_string(s.pw) + " (padding \"valid\")");
    }
    s.oh = (s.h - s.ph) / s.stride_h + 1;
    s.ow = (s.w - s.pw) / s.stride_w + 1;
    return global ? Shape{{s.c}} : Shape{{s.oh, s.ow, s.c}};
  }

  void forward(const LayerIO& io) override {
    io.backend->pool2d_forward(at_batch(io.batch), mode_, io.x, io.y);
  }
  void backward(const LayerIO& io) override {
    if (io.dx) io.backend->pool2d_backward(at_batch(io.batch), mode_, io.x, io.y, io.dy, io.dx);
  }
  // MaxPool / AveragePool without padding ("valid"), or GlobalAveragePool then Flatten to the
  // (channels) vector Keras' GlobalAveragePooling2D returns.
  std::string to_onnx(OnnxLayerForm& f) const override {
    if (pool_.first == 0) {
      const std::string g = f.node("GlobalAveragePool", {f.x}, {}, "GlobalAveragePool");
      return f.node("Flatten", {g}, {OnnxAttribute::integer("axis", 1)}, "Flatten");
    }
    const PoolShape& s = shape_;
    return f.node(mode_ == PoolMode::max ? "MaxPool" : "AveragePool", {f.x},
                  {OnnxAttribute::integers("kernel_shape", {s.ph, s.pw}),
                   OnnxAttribute::integers("strides", {s.stride_h, s.stride_w}),
                   OnnxAttribute::integers("pads", {0, 0, 0, 0})},
                  mode_ == PoolMode::max ? "MaxPool" : "AveragePool");
  }

  int64_t forward_flops(int batch) const override {
    return at_batch(batch).y_size() * shape_.ph * shape_.pw;
  }
  int64_t backward_flops(int batch) const override { return forward_flops(batch); }

 private:
  PoolShape at_batch(int n) const {
    PoolShape s = shape_;
    s.n = n;
    return s;
  }
  const char* type_;
  PoolMode mode_;
  std::pair<int, int> pool_, strides_;
  PoolShape shape_;
};

std::unique_ptr<Layer> make_pool(TableReader& r, const char* type, PoolMode mode) {
  auto pool = r.get_int_pair("pool_size").value_or(std::pair<int, int>(2, 2));
  if (pool.first < 1 || pool.second < 1) r.fail("pool_size", "must be at least 1");
  auto strides = r.get_int_pair("strides").value_or(pool);  // Keras: strides default to pool_size
  if (strides.first < 1 || strides.second < 1) r.fail("strides", "must be at least 1");
  if (r.get_choice("padding", {"valid", "same"}, "valid") == "same") {
    r.fail("padding", "only \"valid\" pooling is supported");
  }
  return std::make_unique<Pool2D>(type, mode, pool, strides);
}

}  // namespace

std::unique_ptr<Layer> make_max_pooling2d(TableReader& r) {
  return make_pool(r, "MaxPooling2D", PoolMode::max);
}
std::unique_ptr<Layer> make_average_pooling2d(TableReader& r) {
  return make_pool(r, "AveragePooling2D", PoolMode::average);
}
std::unique_ptr<Layer> make_global_average_pooling2d(TableReader& r) {
  return std::make_unique<Pool2D>("GlobalAveragePooling2D", PoolMode::average,
                                  std::pair<int, int>(0, 0), std::pair<int, int>(1, 1));
}

}  // namespace fer::models
