#include "engine/training/evaluate.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "engine/nvtx.h"

namespace fer::training {

ConfusionMatrix EvalOutput::confusion(int classes) const {
  ConfusionMatrix m(classes);
  for (size_t i = 0; i < predictions.rows.size(); ++i) m.add(predictions.truth[i], predictions.predicted[i]);
  return m;
}

EvalOutput evaluate_rows(Graph& graph, const loaders::Dataset& data, const std::vector<int64_t>& rows,
                         bool with_loss, bool keep_probabilities, loaders::ResidentBatches* resident) {
  NvtxRange range("evaluate");
  EvalOutput out;
  const int classes = graph.classes();
  const int batch = graph.max_batch();
  const int64_t pixels = data.image_bytes();
  if (resident) {
    const int64_t expected = (int64_t(rows.size()) + batch - 1) / batch;
    if (resident->size() != int64_t(rows.size()) || resident->batches_per_epoch() != expected ||
        resident->batch_size(0) != int(std::min<size_t>(size_t(batch), rows.size())) || resident->augment()) {
      throw std::logic_error("evaluate_rows: the resident batches do not match the rows and the graph's batch");
    }
  }
  std::vector<uint8_t> images(resident ? 0 : size_t(batch) * size_t(pixels));
  std::vector<int32_t> labels(resident ? 0 : static_cast<size_t>(batch));
  graph.take_metrics();  // start from zero
  out.predictions.rows = rows;
  out.predictions.truth.reserve(rows.size());
  out.predictions.predicted.reserve(rows.size());
  out.predictions.confidence.reserve(rows.size());
  if (keep_probabilities) out.probabilities.reserve(rows.size() * size_t(classes));
  for (size_t start = 0; start < rows.size(); start += size_t(batch)) {
    const int n = int(std::min<size_t>(size_t(batch), rows.size() - start));
    for (int i = 0; i < n; ++i) {
      const int64_t r = rows[start + size_t(i)];
      const int32_t label = data.labels[size_t(r)];
      out.predictions.truth.push_back(label);
      if (resident) continue;
      std::memcpy(images.data() + size_t(i) * size_t(pixels), data.image(r), size_t(pixels));
      labels[size_t(i)] = label < 0 ? 0 : label;
    }
    if (resident) {
      resident->load(graph, 0, int64_t(start / size_t(batch)));
    } else {
      graph.set_batch_from_host(n, images.data(), labels.data(), nullptr);
    }
    graph.forward(n, false, 0);
    if (with_loss) graph.loss(n, false);
    const std::vector<float> probs = graph.probabilities(n);
    for (int i = 0; i < n; ++i) {
      const float* p = probs.data() + size_t(i) * size_t(classes);
      const int best = int(std::max_element(p, p + classes) - p);
      out.predictions.predicted.push_back(best);
      out.predictions.confidence.push_back(p[best]);
    }
    if (keep_probabilities) out.probabilities.insert(out.probabilities.end(), probs.begin(), probs.end());
  }
  if (with_loss) out.metrics = graph.take_metrics();
  return out;
}

}  // namespace fer::training

#include "engine/error.h"
#include "engine/training/run_setup.h"

namespace fer::training {

LoadedModel load_model(const std::string& checkpoint_path, const std::string& config_path) {
  LoadedModel m;
  m.checkpoint = read_checkpoint(checkpoint_path, /*weights_only=*/true);
  const Checkpoint& c = m.checkpoint;
  if (config_path.empty()) {
    m.config = models::parse_run_config(c.config_text, checkpoint_path + " (its embedded config)",
                                        models::ConfigUse::model_only);
  } else {
    m.config = models::load_run_config(config_path);
  }
  m.graph = models::build_graph(m.config);
  const uint64_t hash = models::architecture_hash(*m.graph);
  if (config_path.empty() && hash != c.arch_hash) {
    throw UserError(checkpoint_path + ": corrupt checkpoint: its embedded config does not describe its weights");
  }
  check_checkpoint_matches(c, checkpoint_path, *m.graph, hash, m.config.model.name,
                           config_path.empty() ? checkpoint_path + " (embedded config)" : config_path);
  m.class_names = c.class_names;
  if (int(m.class_names.size()) != m.graph->classes()) {
    m.class_names = class_names_of(m.config);
  }
  return m;
}

void place_model(LoadedModel& model, std::shared_ptr<Backend> backend, int batch, int tail,
                 std::optional<Precision> precision) {
  std::vector<int> other;
  if (tail > 0 && tail < batch) other.push_back(tail);
  model.graph->plan(std::move(backend), batch, other, precision);
  model.graph->upload_params(model.checkpoint.params);
  model.graph->upload_state(model.checkpoint.state);
}

}  // namespace fer::training
