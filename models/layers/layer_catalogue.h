#pragma once
// The layer types a config may name, each built from its [[layers]] table. Adding a layer type:
// one file in models/layers/ with its factory, one line in layer_catalogue.cpp, its kernels, its tests.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/layer.h"
#include "models/table_reader.h"

namespace fer::models {

struct LayerType {
  const char* type;       // Keras class name, as written in configs: "Conv2D"
  const char* base_name;  // Keras' automatic layer name: "conv2d", then "conv2d_1", ...
  std::function<std::unique_ptr<Layer>(TableReader&)> make;
};

const std::vector<LayerType>& layer_catalogue();
const LayerType* find_layer_type(const std::string& type);

// Parses an activation name ("relu", "linear", "softmax") read from key `key`.
Act parse_activation(TableReader& reader, const std::string& key, Act fallback);
const char* activation_name(Act act);

std::unique_ptr<Layer> make_conv2d(TableReader& r);
std::unique_ptr<Layer> make_dense(TableReader& r);
std::unique_ptr<Layer> make_batch_norm(TableReader& r);
std::unique_ptr<Layer> make_activation(TableReader& r);
std::unique_ptr<Layer> make_max_pooling2d(TableReader& r);
std::unique_ptr<Layer> make_average_pooling2d(TableReader& r);
std::unique_ptr<Layer> make_global_average_pooling2d(TableReader& r);
std::unique_ptr<Layer> make_dropout(TableReader& r);
std::unique_ptr<Layer> make_flatten(TableReader& r);

}  // namespace fer::models
