#pragma once
// Checkpoints with random weights for the export tests: every parameter drawn away from its
// Keras initial value (biases and BatchNormalization's gamma, beta, moving mean and variance
// included), so a form that mixes up channels, drops a bias or uses batch statistics changes the
// probabilities. Kernels stay glorot-uniform scaled, so activations neither explode nor vanish and
// the softmax does not saturate.
#include <cmath>
#include <random>
#include <string>

#include "engine/training/checkpoint.h"
#include "engine/training/fileio.h"
#include "engine/training/run_setup.h"
#include "models/run_config.h"

namespace fer::testing {

// Host weights [params, state] in the graph's flat layout, from std::mt19937(seed).
inline void random_weights(const Graph& graph, uint32_t seed, std::vector<float>* params, std::vector<float>* state) {
  std::mt19937 rng(seed);
  params->assign(size_t(graph.trainable_count()), 0.0f);
  state->assign(size_t(graph.non_trainable_count()), 0.0f);
  for (const ParamEntry& p : graph.all_params()) {
    float* dst = (p.spec.trainable ? params->data() : state->data()) + p.offset;
    float lo = -0.1f, hi = 0.1f;  // biases
    if (p.spec.init == Init::glorot_uniform) {
      hi = float(std::sqrt(6.0 / double(p.spec.fan_in + p.spec.fan_out)));
      lo = -hi;
    } else if (p.spec.name == "gamma" || p.spec.name == "moving_variance") {
      lo = 0.5f;
      hi = 1.5f;
    } else if (p.spec.name == "beta" || p.spec.name == "moving_mean") {
      lo = -0.3f;
      hi = 0.3f;
    }
    std::uniform_real_distribution<float> u(lo, hi);
    for (int64_t j = 0; j < p.spec.size(); ++j) dst[j] = u(rng);
  }
}

// A weights-only checkpoint of `config_path`'s model with random_weights(seed), as eval, predict
// and export read it.
inline void write_random_checkpoint(const std::string& config_path, const std::string& out, uint32_t seed) {
  const models::RunConfig config = models::load_run_config(config_path);
  auto graph = models::build_graph(config);
  training::Checkpoint c;
  c.model_name = config.model.name;
  c.arch_hash = models::architecture_hash(*graph);
  c.class_names = training::class_names_of(config);
  c.config_text = config.source_text;
  c.config_origin = config_path;
  c.tensors = training::tensor_table(*graph);
  c.trainable_count = graph->trainable_count();
  c.state_count = graph->non_trainable_count();
  random_weights(*graph, seed, &c.params, &c.state);
  c.optimizer_kind = 0;  // Adam, no steps taken
  c.optimizer_state.assign(size_t(2 * c.trainable_count), 0.0f);
  c.position.seed = seed;
  c.position.batch_size = 1;
  c.device = "random weights (tests/export)";
  c.created = training::local_timestamp(false);
  training::write_checkpoint(out, c);
}

}  // namespace fer::testing
