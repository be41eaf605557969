#include "models/summary.h"

#include <sstream>

namespace fer::models {

std::string with_thousands(int64_t value) {
  std::string digits = std::to_string(value < 0 ? -value : value);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return value < 0 ? "-" + out : out;
}

namespace {
std::string pad(std::string s, size_t width) {
  if (s.size() < width) s.append(width - s.size(), ' ');
  return s;
}
}  // namespace

std::string keras_summary(const Graph& graph, const std::string& model_name) {
  const std::string thin(65, '_'), thick(65, '=');
  std::ostringstream out;
  out << "Model: \"" << model_name << "\"\n" << thin << "\n";
  out << pad(" Layer (type)", 29) << pad("Output Shape", 26) << "Param #\n" << thick << "\n";
  for (int i = 0; i < graph.num_layers(); ++i) {
    int64_t count = 0;
    for (const ParamEntry& p : graph.params_of_layer(i)) count += p.spec.size();
    const std::string label = " " + graph.layer(i).name() + " (" + graph.layer(i).type() + ")";
    out << pad(label, 29) << pad(graph.output_shape(i).str(), 26) << count << "\n";
    if (i + 1 < graph.num_layers()) out << "\n";
  }
  out << thick << "\n";
  out << "Total params: " << with_thousands(graph.trainable_count() + graph.non_trainable_count()) << "\n";
  out << "Trainable params: " << with_thousands(graph.trainable_count()) << "\n";
  out << "Non-trainable params: " << with_thousands(graph.non_trainable_count()) << "\n";
  out << thin << "\n";
  return out.str();
}

}  // namespace fer::models
