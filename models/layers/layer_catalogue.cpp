#include "models/layers/layer_catalogue.h"

namespace fer::models {

const std::vector<LayerType>& layer_catalogue() {
  static const std::vector<LayerType> types = {
      {"Conv2D", "conv2d", make_conv2d},
      {"Dense", "dense", make_dense},
      {"BatchNormalization", "batch_normalization", make_batch_norm},
      {"Activation", "activation", make_activation},
      {"MaxPooling2D", "max_pooling2d", make_max_pooling2d},
      {"AveragePooling2D", "average_pooling2d", make_average_pooling2d},
      {"GlobalAveragePooling2D", "global_average_pooling2d", make_global_average_pooling2d},
      {"Dropout", "dropout", make_dropout},
      {"Flatten", "flatten", make_flatten},
  };
  return types;
}

const LayerType* find_layer_type(const std::string& type) {
  for (const LayerType& t : layer_catalogue())
    if (type == t.type) return &t;
  return nullptr;
}

Act parse_activation(TableReader& reader, const std::string& key, Act fallback) {
  const std::string name = reader.get_choice(key, {"linear", "relu", "softmax"}, activation_name(fallback));
  if (name == "relu") return Act::relu;
  if (name == "softmax") return Act::softmax;
  return Act::linear;
}

const char* activation_name(Act act) {
  switch (act) {
    case Act::relu: return "relu";
    case Act::softmax: return "softmax";
    default: return "linear";
  }
}

}  // namespace fer::models
