#include "models/run_config.h"

#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <toml++/toml.h>

#include "engine/error.h"
#include "models/layers/layer_catalogue.h"
#include "models/table_reader.h"

namespace fer::models {

struct ParsedToml {
  toml::table root;
  std::string origin;
};

namespace {

const std::vector<std::string> kMonitors = {"loss", "accuracy", "val_loss", "val_accuracy"};
const std::vector<std::string> kModes = {"auto", "min", "max"};

float positive_float(TableReader& r, const std::string& key, float fallback, bool allow_zero = false) {
  const double v = r.get_number(key).value_or(fallback);
  if (v < 0.0 || (!allow_zero && v == 0.0)) r.fail(key, allow_zero ? "must not be negative" : "must be positive");
  return float(v);
}

int positive_int(TableReader& r, const std::string& key, int fallback, int minimum = 1) {
  const int64_t v = r.get_int(key).value_or(fallback);
  if (v < minimum || v > (1 << 30)) r.fail(key, "must be at least " + std::to_string(minimum));
  return int(v);
}

void parse_model(TableReader& r, ModelSpec& m) {
  m.name = r.require_string("name");
  if (auto shape = r.get_int_list("input_shape")) {
    if (shape->size() != 3 || (*shape)[0] < 1 || (*shape)[1] < 1 || (*shape)[2] != 1) {
      r.fail("input_shape", "must be [height, width, 1] (FER2013 faces are grayscale)");
    }
    m.input_shape = {int((*shape)[0]), int((*shape)[1]), 1};
  }
  m.classes = int(r.require_int("classes"));
  if (m.classes < 2 || m.classes > 7) r.fail("classes", "must be between 2 and 7");
  r.finish();
}

void parse_train(TableReader& r, TrainSpec& t) {
  const std::string opt = r.get_choice("optimizer", {"adam", "sgd"}, "adam");
  OptimizerConfig& o = t.optimizer;
  o.kind = opt == "adam" ? OptimizerConfig::Kind::adam : OptimizerConfig::Kind::sgd;
  o.learning_rate = positive_float(r, "learning_rate", opt == "adam" ? 1e-3f : 1e-2f);
  if (opt == "adam") {
    o.beta1 = float(r.get_number("beta_1").value_or(0.9));
    o.beta2 = float(r.get_number("beta_2").value_or(0.999));
    if (o.beta1 < 0 || o.beta1 >= 1) r.fail("beta_1", "must be in [0, 1)");
    if (o.beta2 < 0 || o.beta2 >= 1) r.fail("beta_2", "must be in [0, 1)");
    o.epsilon = positive_float(r, "epsilon", 1e-7f);
  } else {
    o.momentum = float(r.get_number("momentum").value_or(0.0));
    if (o.momentum < 0 || o.momentum >= 1) r.fail("momentum", "must be in [0, 1)");
    o.nesterov = r.get_bool("nesterov").value_or(false);
  }
  r.get_choice("loss", {"categorical_crossentropy"}, "categorical_crossentropy");
  t.batch_size = positive_int(r, "batch_size", 128);
  t.epochs = positive_int(r, "epochs", 50);
  const int64_t seed = r.get_int("seed").value_or(1);
  if (seed < 0) r.fail("seed", "must not be negative");
  t.seed = uint64_t(seed);
  t.drop_last = r.get_bool("drop_last").value_or(true);
  if (r.has("precision")) t.precision = parse_precision(r.get_choice("precision", {"fp32", "tf32", "bf16"}, "fp32"));
  r.finish();
}

void parse_usage_list(TableReader& r, const std::string& key, std::vector<std::string>& out) {
  if (auto v = r.get_string_list(key)) {
    if (v->empty()) r.fail(key, "must name at least one split");
    for (const auto& s : *v) {
      if (s != "Training" && s != "PublicTest" && s != "PrivateTest") {
        r.fail(key, "\"" + s + "\" is not a FER2013 split (Training, PublicTest, PrivateTest)");
      }
    }
    out = *v;
  }
}

void parse_data(TableReader& r, DataSpec& d, int classes) {
  d.path = r.get_string("path").value_or(d.path);
  if (auto drop = r.get_int_list("drop_classes")) {
    std::set<int64_t> seen;
    for (int64_t id : *drop) {
      if (id < 0 || id > 6) r.fail("drop_classes", "FER2013 class ids are 0..6, got " + std::to_string(id));
      if (!seen.insert(id).second) r.fail("drop_classes", "lists class " + std::to_string(id) + " twice");
      d.drop_classes.push_back(int(id));
    }
  }
  parse_usage_list(r, "train_usage", d.train_usage);
  parse_usage_list(r, "validation_usage", d.validation_usage);
  d.resident = r.get_choice("resident", {"auto", "on", "off"}, d.resident);
  const int kept = 7 - int(d.drop_classes.size());
  if (kept != classes) {
    r.fail("drop_classes", "leaves " + std::to_string(kept) + " of FER2013's 7 classes but [model] classes = " +
                               std::to_string(classes));
  }
  r.finish();
}

void parse_augment(TableReader& r, AugmentSpec& a) {
  a.shear_range = positive_float(r, "shear_range", 0.0f, true);
  a.zoom_range = positive_float(r, "zoom_range", 0.0f, true);
  if (a.zoom_range >= 1.0f) r.fail("zoom_range", "must be below 1");
  a.horizontal_flip = r.get_bool("horizontal_flip").value_or(false);
  r.finish();
}

// Reads `monitor` and `mode` of a callback table. An absent mode (or "auto") is inferred from the
// monitored quantity as Keras' mode="auto" does; an explicit mode that contradicts the quantity (a
// loss maximised, an accuracy minimised) is refused at the mode key's line: Keras accepts it
// silently and then keeps the worst epoch as the best (the original project's own mistake).
// With ConfigUse::model_only a contradiction is kept as written: the callbacks will not run.
void parse_monitor_and_mode(TableReader& r, std::string& monitor, std::string& mode, ConfigUse use) {
  monitor = r.get_choice("monitor", kMonitors, monitor);
  mode = r.get_choice("mode", kModes, mode);
  const std::string inferred = resolve_mode(monitor, "auto");
  if (use == ConfigUse::training && mode != "auto" && mode != inferred) {
    const bool is_loss = inferred == "min";
    r.fail("mode", "\"" + mode + "\" contradicts monitor = \"" + monitor + "\": " +
                       (is_loss ? "a loss improves when it falls" : "an accuracy improves when it rises") +
                       ", so the mode is \"" + inferred + "\"; write mode = \"" + inferred +
                       "\" or leave mode out (\"auto\" infers it from the monitor)");
  }
}

void parse_checkpoint(TableReader& r, CheckpointSpec& c, ConfigUse use) {
  parse_monitor_and_mode(r, c.monitor, c.mode, use);
  r.finish();
}

void parse_callbacks(TableReader& r, const std::string& file, ReduceLrSpec& lr, EarlyStoppingSpec& es,
                     TerminateOnCollapseSpec& tc, ConfigUse use) {
  if (const toml::table* t = r.get_table("reduce_lr_on_plateau")) {
    TableReader c(*t, file, "[callbacks.reduce_lr_on_plateau]");
    lr.enabled = true;
    parse_monitor_and_mode(c, lr.monitor, lr.mode, use);
    lr.factor = positive_float(c, "factor", lr.factor);
    if (lr.factor >= 1.0f) c.fail("factor", "must be below 1");
    lr.patience = positive_int(c, "patience", lr.patience, 0);
    lr.min_delta = positive_float(c, "min_delta", lr.min_delta, true);
    lr.cooldown = positive_int(c, "cooldown", lr.cooldown, 0);
    lr.min_lr = positive_float(c, "min_lr", lr.min_lr, true);
    c.finish();
  }
  if (const toml::table* t = r.get_table("early_stopping")) {
    TableReader c(*t, file, "[callbacks.early_stopping]");
    es.enabled = true;
    parse_monitor_and_mode(c, es.monitor, es.mode, use);
    es.patience = positive_int(c, "patience", es.patience, 0);
    es.min_delta = positive_float(c, "min_delta", es.min_delta, true);
    es.restore_best_weights = c.get_bool("restore_best_weights").value_or(false);
    c.finish();
  }
  if (const toml::table* t = r.get_table("terminate_on_collapse")) {
    TableReader c(*t, file, "[callbacks.terminate_on_collapse]");
    tc.enabled = true;
    tc.loss_explosion = c.get_bool("loss_explosion").value_or(tc.loss_explosion);
    tc.single_class_patience = positive_int(c, "single_class_patience", tc.single_class_patience, 0);
    if (!tc.loss_explosion && tc.single_class_patience == 0) {
      c.fail_table("stops on nothing: set loss_explosion = true or single_class_patience to at least 1");
    }
    c.finish();
  }
  r.finish();
}

// Runs `parse` on the sub-table `key` of root when present (an empty table otherwise).
template <typename F>
void with_table(TableReader& root, const std::string& key, const std::string& file, F&& parse) {
  static const toml::table empty;
  const toml::table* t = root.get_table(key);
  TableReader r(t ? *t : empty, file, "[" + key + "]");
  parse(r);
}

struct BuiltLayers {
  std::vector<std::unique_ptr<Layer>> layers;
  std::vector<LayerSpec> specs;
};

BuiltLayers make_layers(const toml::table& root, const std::string& file) {
  BuiltLayers out;
  const toml::node* node = root.get("layers");
  if (!node) throw UserError(file + ":1: missing the layer table: add [[layers]] sections");
  const toml::array* layers = node->as_array();
  if (!layers || !layers->is_array_of_tables()) {
    throw UserError(file + ":" + std::to_string(node->source().begin.line) +
                    ": 'layers' must be an array of tables, written as [[layers]] sections");
  }
  if (layers->empty()) throw UserError(file + ": the layer table is empty");
  std::map<std::string, int> counts;
  std::set<std::string> names;
  for (size_t i = 0; i < layers->size(); ++i) {
    const toml::table& t = *(*layers)[i].as_table();
    std::string context = "layers[" + std::to_string(i) + "]";
    TableReader r(t, file, context);
    const std::string type = r.require_string("type");
    const LayerType* lt = find_layer_type(type);
    if (!lt) {
      std::string known;
      for (const LayerType& k : layer_catalogue()) known += (known.empty() ? "" : ", ") + std::string(k.type);
      r.fail("type", "unknown layer type \"" + type + "\" (known: " + known + ")");
    }
    TableReader lr(t, file, context + " (" + type + ")");
    lr.get_string("type");
    std::string name;
    if (auto given = lr.get_string("name")) {
      name = *given;
      if (name.empty()) lr.fail("name", "must not be empty");
    } else {
      const int k = counts[lt->base_name]++;
      name = k == 0 ? lt->base_name : std::string(lt->base_name) + "_" + std::to_string(k);
    }
    if (!names.insert(name).second) lr.fail("name", "another layer is already named \"" + name + "\"");
    std::unique_ptr<Layer> layer = lt->make(lr);
    lr.finish();
    layer->set_name(name);
    out.layers.push_back(std::move(layer));
    out.specs.push_back({type, name, int(t.source().begin.line)});
  }
  return out;
}

std::unique_ptr<Graph> graph_from(const ParsedToml& parsed, const ModelSpec& model) {
  BuiltLayers built = make_layers(parsed.root, parsed.origin);
  // Shape errors name the layer; prefix the config line of that layer.
  std::vector<std::unique_ptr<Layer>> layers = std::move(built.layers);
  try {
    return std::make_unique<Graph>(std::move(layers), Shape{model.input_shape}, model.classes);
  } catch (const UserError& e) {
    const std::string what = e.what();
    for (const LayerSpec& s : built.specs) {
      if (what.find("'" + s.name + "'") != std::string::npos) {
        throw UserError(parsed.origin + ":" + std::to_string(s.line) + ": layers (" + s.type + " '" +
                        s.name + "'): " + what);
      }
    }
    throw UserError(parsed.origin + ": " + what);
  }
}

}  // namespace

RunConfig parse_run_config(const std::string& text, const std::string& origin, ConfigUse use) {
  auto parsed = std::make_shared<ParsedToml>();
  parsed->origin = origin;
  try {
    parsed->root = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    throw UserError(origin + ":" + std::to_string(e.source().begin.line) + ": invalid TOML: " +
                    std::string(e.description()));
  }
  RunConfig c;
  c.path = origin;
  c.source_text = text;
  TableReader root(parsed->root, origin, "top level");
  with_table(root, "model", origin, [&](TableReader& r) {
    if (!root.has("model")) r.fail_table("missing the [model] table (name, classes)");
    parse_model(r, c.model);
  });
  with_table(root, "train", origin, [&](TableReader& r) { parse_train(r, c.train); });
  with_table(root, "data", origin, [&](TableReader& r) { parse_data(r, c.data, c.model.classes); });
  with_table(root, "augment", origin, [&](TableReader& r) { parse_augment(r, c.augment); });
  with_table(root, "checkpoint", origin, [&](TableReader& r) { parse_checkpoint(r, c.checkpoint, use); });
  with_table(root, "callbacks", origin,
             [&](TableReader& r) { parse_callbacks(r, origin, c.reduce_lr, c.early_stopping, c.terminate_on_collapse, use); });
  root.mark_read("layers");  // read by make_layers below
  root.finish();
  c.parsed = parsed;
  graph_from(*parsed, c.model);  // validates every layer and the shapes now, not at step 0
  c.model.layers = make_layers(parsed->root, origin).specs;
  return c;
}

RunConfig load_run_config(const std::string& path, ConfigUse use) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UserError(path + ": cannot open the config file");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw UserError(path + ": cannot read the config file");
  return parse_run_config(text.str(), path, use);
}

std::unique_ptr<Graph> build_graph(const RunConfig& config) {
  if (!config.parsed) throw std::logic_error("build_graph on a RunConfig that was not parsed");
  return graph_from(*config.parsed, config.model);
}

uint64_t architecture_hash(const Graph& graph) {
  uint64_t h = 1469598103934665603ULL;  // FNV-1a
  auto mix = [&](const std::string& s) {
    for (unsigned char ch : s) {
      h ^= ch;
      h *= 1099511628211ULL;
    }
    h ^= 0xff;
    h *= 1099511628211ULL;
  };
  mix(graph.input_shape().str());
  for (int i = 0; i < graph.num_layers(); ++i) {
    mix(graph.layer(i).type());
    mix(graph.layer(i).name());
    mix(graph.output_shape(i).str());
    for (const ParamEntry& p : graph.params_of_layer(i)) {
      mix(p.spec.name);
      for (int d : p.spec.shape) mix(std::to_string(d));
    }
  }
  return h;
}

std::string resolve_mode(const std::string& monitor, const std::string& mode) {
  if (mode != "auto") return mode;
  // Keras' rule for mode="auto": accuracy-like quantities are maximised, everything else (the
  // losses) minimised.
  return monitor.find("accuracy") != std::string::npos ? "max" : "min";
}

}  // namespace fer::models
