#pragma once
#include <string>

#include "engine/graph.h"

namespace fer::models {

// Keras' model.summary() table: layer (type), output shape, parameter count, then the totals.
std::string keras_summary(const Graph& graph, const std::string& model_name);
// 4589318 -> "4,589,318"
std::string with_thousands(int64_t value);

}  // namespace fer::models
