// Inverted dropout: training scales kept values by 1/(1-rate); inference passes x through.
// The mask comes from Philox(seed, stream) and is recomputed in backward, never stored; row r of
// this call draws at row first_row + r of the stream (a data-parallel rank's place in the global
// batch: LayerIO::first_row), so ranks and one process mask the same image the same way.
#include "models/layers/layer_catalogue.h"
#include "models/onnx_form.h"

namespace fer::models {
namespace {

class Dropout final : public Layer {
 public:
  explicit Dropout(float rate) : rate_(rate) {}
  const char* type() const override { return "Dropout"; }
  Shape infer(const Shape& in) override {
    size_ = in.size();
    return in;
  }
  void forward(const LayerIO& io) override {
    const int64_t n = int64_t(io.batch) * size_;
    if (io.training && rate_ > 0.0f) {
      io.backend->dropout_forward(n, rate_, io.seed, io.stream_id, first(io), io.x, io.y);
    } else {
      io.backend->copy(io.y, io.x, size_t(n) * sizeof(float));
    }
  }
  void backward(const LayerIO& io) override {
    if (!io.dx) return;
    const int64_t n = int64_t(io.batch) * size_;
    if (rate_ > 0.0f) {
      io.backend->dropout_backward(n, rate_, io.seed, io.stream_id, first(io), io.dy, io.dx);
    } else {
      io.backend->copy(io.dx, io.dy, size_t(n) * sizeof(float));
    }
  }
  // Inference passes x through: the exported graph has no Dropout node.
  std::string to_onnx(OnnxLayerForm& f) const override { return f.x; }

  int64_t forward_flops(int batch) const override { return int64_t(batch) * size_; }
  int64_t backward_flops(int batch) const override { return forward_flops(batch); }

 private:
  uint64_t first(const LayerIO& io) const { return uint64_t(io.first_row) * uint64_t(size_); }
  float rate_;
  int64_t size_ = 0;
};

}  // namespace

std::unique_ptr<Layer> make_dropout(TableReader& r) {
  auto rate = r.get_number("rate");
  if (!rate) r.fail("rate", "is required");
  if (*rate < 0.0 || *rate >= 1.0) r.fail("rate", "must be in [0, 1)");
  return std::make_unique<Dropout>(float(*rate));
}

}  // namespace fer::models
