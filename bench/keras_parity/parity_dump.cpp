// parity_dump: runs fer_gpu's own CPU graph on a batch given from outside and writes every tensor
// the Keras parity harness (bench/keras_parity/keras_parity.py) compares, as .npy files plus a
// manifest.json describing the flat parameter layout.
//
//   parity_dump model CONFIG --images RAW_U8 --labels RAW_I32 --n N --steps S --seed K --out DIR
//       Builds CONFIG's graph on the CPU backend, initialises it with seed K (Keras initialisers
//       from Philox), then for step t = 0..S-1 on the same batch: training forward (BN batch
//       statistics, dropout masks from Philox), loss, backward, one Adam step of the config's
//       optimizer. Writes:
//         manifest.json             layers, parameter entries (layer, name, shape in fer_gpu's
//                                   layout, offset, trainable), losses per step, seed, n
//         params_init.npy, state_init.npy       flat trainable / non-trainable buffers
//         params_<t>.npy, state_<t>.npy         the same before step t (params_0 = params_init)
//         probs_<t>.npy             [N, classes] softmax of step t's training forward
//         grads_<t>.npy             flat gradient of step t (mean loss over the batch)
//         mask_<t>_<layer>.npy      [N, ...] dropout multiplier of layer <layer> in step t
//                                   (0 or 1/(1-rate)), recomputed exactly as the layer does it
//         params_final.npy, state_final.npy     after S Adam steps
//         probs_eval.npy            softmax of an inference forward after the S steps (moving
//                                   statistics, no dropout)
//       Options: --init-params RAW_F32 / --init-state RAW_F32 start from these flat buffers
//       instead of the initialisation; --first-step K numbers the first step K (dropout masks).
//   parity_dump augment --images RAW_U8 --draws RAW_F32 --n N --h H --w W --out DIR
//       draws: N rows of 4 float32 (shear in DEGREES, zx, zy, flip 0/1), Keras'
//       apply_transform parameters. Converts them as kernels/common/augment.h does and writes
//       augmented.npy ([N, H, W] float32, rescaled by 1/255 like the training input).
//
// Layouts (what the harness converts): Conv2D kernel [filters, kh, kw, in] (OHWI; Keras HWIO),
// Dense kernel [in, units] (as Keras), Flatten order (H, W, C) (as Keras channels_last).
// Raw inputs: images N*H*W uint8 row-major, labels N int32 little-endian.
// Exit status 2 with a message on bad arguments or unreadable files.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/backend.h"
#include "engine/graph.h"
#include "engine/optimizer.h"
#include "kernels/common/augment.h"
#include "kernels/common/philox.h"
#include "models/run_config.h"

namespace {

struct ArgError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Writes a little-endian C-order .npy (format 1.0) of float32 with the given shape.
void write_npy(const std::string& path, const float* data, const std::vector<int64_t>& shape) {
  std::ostringstream dict;
  dict << "{'descr': '<f4', 'fortran_order': False, 'shape': (";
  int64_t count = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    dict << shape[i] << (shape.size() == 1 || i + 1 < shape.size() ? "," : "");
    count *= shape[i];
  }
  dict << "), }";
  std::string header = dict.str();
  const size_t unpadded = 10 + header.size() + 1;  // magic(6) + version(2) + len(2) + dict + \n
  header.append((64 - unpadded % 64) % 64, ' ');
  header.push_back('\n');
  std::ofstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot write " + path);
  const char magic[8] = {'\x93', 'N', 'U', 'M', 'P', 'Y', 1, 0};
  f.write(magic, 8);
  const uint16_t len = uint16_t(header.size());
  f.write(reinterpret_cast<const char*>(&len), 2);
  f.write(header.data(), std::streamsize(header.size()));
  f.write(reinterpret_cast<const char*>(data), std::streamsize(count * sizeof(float)));
  if (!f) throw std::runtime_error("write failed: " + path);
}

template <class T>
std::vector<T> read_raw(const std::string& path, size_t count) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw ArgError("cannot read " + path);
  std::vector<T> v(count);
  f.read(reinterpret_cast<char*>(v.data()), std::streamsize(count * sizeof(T)));
  if (size_t(f.gcount()) != count * sizeof(T)) {
    throw ArgError(path + ": expected " + std::to_string(count * sizeof(T)) + " bytes");
  }
  return v;
}

struct Args {
  std::map<std::string, std::string> kv;
  std::string get(const std::string& k) const {
    auto it = kv.find(k);
    if (it == kv.end()) throw ArgError("missing --" + k);
    return it->second;
  }
  long long num(const std::string& k) const { return std::stoll(get(k)); }
};

Args parse(int argc, char** argv, int first) {
  Args a;
  for (int i = first; i < argc; ++i) {
    std::string k = argv[i];
    if (k.rfind("--", 0) != 0 || i + 1 >= argc) throw ArgError("bad argument " + k);
    a.kv[k.substr(2)] = argv[++i];
  }
  return a;
}

int run_model(const Args& a) {
  const fer::models::RunConfig cfg = fer::models::load_run_config(a.get("config"));
  const int n = int(a.num("n"));
  const int steps = int(a.num("steps"));
  const uint64_t seed = uint64_t(a.num("seed"));
  const std::string out = a.get("out");
  auto graph = fer::models::build_graph(cfg);
  const fer::Shape& in = graph->input_shape();
  const int64_t pixels = in.size();
  const auto images = read_raw<uint8_t>(a.get("images"), size_t(n) * size_t(pixels));
  const auto labels = read_raw<int32_t>(a.get("labels"), size_t(n));

  std::shared_ptr<fer::Backend> backend = fer::make_cpu_backend();
  graph->plan(backend, n);
  graph->initialize(seed);
  // Optional starting point other than the initialisation (raw float32, fer_gpu's flat layout),
  // and the step the first step is numbered as (dropout masks depend on it).
  if (a.kv.count("init-params")) {
    graph->upload_params(read_raw<float>(a.kv.at("init-params"), size_t(graph->trainable_count())));
  }
  if (a.kv.count("init-state")) {
    graph->upload_state(read_raw<float>(a.kv.at("init-state"), size_t(graph->non_trainable_count())));
  }
  const uint64_t first_step = a.kv.count("first-step") ? uint64_t(std::stoll(a.kv.at("first-step"))) : 0;
  fer::Optimizer opt(backend, graph->param_layout(), cfg.train.optimizer);
  const int classes = graph->classes();

  auto save_flat = [&](const std::string& name, const std::vector<float>& v) {
    write_npy(out + "/" + name, v.data(), {int64_t(v.size())});
  };
  save_flat("params_init.npy", graph->download_params());
  save_flat("state_init.npy", graph->download_state());

  std::vector<double> losses;
  std::vector<float> ones, mask;
  for (int t = 0; t < steps; ++t) {
    const uint64_t step = first_step + uint64_t(t);
    save_flat("params_" + std::to_string(t) + ".npy", graph->download_params());
    save_flat("state_" + std::to_string(t) + ".npy", graph->download_state());
    graph->set_batch_from_host(n, images.data(), labels.data(), nullptr);
    graph->forward(n, true, step);
    graph->loss(n, true);
    graph->backward(n, step);
    losses.push_back(graph->take_metrics().mean_loss());
    std::vector<float> probs = graph->probabilities(n);
    write_npy(out + "/probs_" + std::to_string(t) + ".npy", probs.data(), {n, classes});
    save_flat("grads_" + std::to_string(t) + ".npy", graph->download_grads());
    // The dropout multipliers of this step: the layer's own kernel on a tensor of ones, with
    // the (seed, stream) the graph gives layer i at this step (Graph::io_for).
    for (int i = 0; i < graph->num_layers(); ++i) {
      if (std::string(graph->layer(i).type()) != "Dropout") continue;
      const fer::Shape& shp = graph->output_shape(i);
      const int64_t count = int64_t(n) * shp.size();
      float* dev_in = static_cast<float*>(backend->allocate(size_t(count) * sizeof(float)));
      float* dev_out = static_cast<float*>(backend->allocate(size_t(count) * sizeof(float)));
      backend->fill(dev_in, count, 1.0f);
      // The rate is not exposed by the layer: the harness passes the config's rates
      // (--dropout-rates "r0,r1,..." in layer order).
      const std::vector<float> rates = [&] {
        std::vector<float> r;
        std::stringstream ss(a.kv.count("dropout-rates") ? a.kv.at("dropout-rates") : "");
        std::string item;
        while (std::getline(ss, item, ',')) r.push_back(std::stof(item));
        return r;
      }();
      int which = 0;
      for (int j = 0; j < i; ++j) which += std::string(graph->layer(j).type()) == "Dropout";
      if (size_t(which) >= rates.size()) throw ArgError("--dropout-rates lists too few rates");
      backend->dropout_forward(count, rates[size_t(which)], graph->seed(),
                               fer::kernels::dropout_stream_id(step, uint64_t(i)), 0,
                               dev_in, dev_out);
      mask.assign(size_t(count), 0.0f);
      backend->synchronize();
      backend->copy_to_host(mask.data(), dev_out, size_t(count) * sizeof(float));
      backend->deallocate(dev_in);
      backend->deallocate(dev_out);
      std::vector<int64_t> shape{n};
      for (int d : shp.dims) shape.push_back(d);
      write_npy(out + "/mask_" + std::to_string(t) + "_" + std::to_string(i) + ".npy", mask.data(), shape);
    }
    opt.step(graph->params(), graph->grads());
  }
  save_flat("params_final.npy", graph->download_params());
  save_flat("state_final.npy", graph->download_state());
  graph->set_batch_from_host(n, images.data(), labels.data(), nullptr);
  graph->forward(n, false, first_step + uint64_t(steps));
  graph->loss(n, false);
  const double eval_loss = graph->take_metrics().mean_loss();
  std::vector<float> probs = graph->probabilities(n);
  write_npy(out + "/probs_eval.npy", probs.data(), {n, classes});

  // nlohmann/json writes NaN losses as null (JSON has no NaN) and escapes the names.
  using Json = nlohmann::ordered_json;
  Json manifest;
  manifest["config"] = cfg.path;
  manifest["n"] = n;
  manifest["seed"] = seed;
  manifest["steps"] = steps;
  manifest["classes"] = classes;
  manifest["eval_loss"] = eval_loss;
  manifest["losses"] = losses;
  manifest["layers"] = Json::array();
  for (int i = 0; i < graph->num_layers(); ++i) {
    Json params = Json::array();
    for (const fer::ParamEntry& p : graph->params_of_layer(i)) {
      params.push_back(Json{{"name", p.spec.name}, {"shape", p.spec.shape}, {"offset", p.offset}, {"trainable", p.spec.trainable}});
    }
    manifest["layers"].push_back(Json{{"index", i},
                                      {"type", graph->layer(i).type()},
                                      {"name", cfg.model.layers[size_t(i)].name},
                                      {"params", std::move(params)}});
  }
  std::ofstream m(out + "/manifest.json");
  m << manifest.dump(2) << "\n";
  if (!m) throw std::runtime_error("cannot write manifest.json");
  return 0;
}

int run_augment(const Args& a) {
  const int n = int(a.num("n")), h = int(a.num("h")), w = int(a.num("w"));
  const auto images = read_raw<uint8_t>(a.get("images"), size_t(n) * size_t(h) * size_t(w));
  const auto raw = read_raw<float>(a.get("draws"), size_t(n) * 4);
  std::vector<fer::AugmentDraw> draws(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    // As kernels::augment_draw turns Keras' degrees into the radians it stores.
    draws[size_t(i)].shear_rad = float(double(raw[size_t(4 * i)]) * (3.14159265358979323846 / 180.0));
    draws[size_t(i)].zoom_x = raw[size_t(4 * i + 1)];
    draws[size_t(i)].zoom_y = raw[size_t(4 * i + 2)];
    draws[size_t(i)].flip = raw[size_t(4 * i + 3)] != 0.0f ? 1 : 0;
  }
  std::shared_ptr<fer::Backend> backend = fer::make_cpu_backend();
  const size_t px = size_t(n) * size_t(h) * size_t(w);
  auto* d_img = static_cast<uint8_t*>(backend->allocate(px));
  auto* d_draw = static_cast<fer::AugmentDraw*>(backend->allocate(size_t(n) * sizeof(fer::AugmentDraw)));
  auto* d_out = static_cast<float*>(backend->allocate(px * sizeof(float)));
  backend->copy_from_host(d_img, images.data(), px);
  backend->copy_from_host(d_draw, draws.data(), size_t(n) * sizeof(fer::AugmentDraw));
  backend->images_to_float(n, h, w, d_img, d_draw, d_out);
  std::vector<float> host(px);
  backend->synchronize();
  backend->copy_to_host(host.data(), d_out, px * sizeof(float));
  write_npy(a.get("out") + "/augmented.npy", host.data(), {n, h, w});
  backend->deallocate(d_img);
  backend->deallocate(d_draw);
  backend->deallocate(d_out);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc < 2) throw ArgError("usage: parity_dump model|augment --key value ...");
    const std::string mode = argv[1];
    const Args a = parse(argc, argv, 2);
    if (mode == "model") return run_model(a);
    if (mode == "augment") return run_augment(a);
    throw ArgError("unknown mode " + mode);
  } catch (const ArgError& e) {
    std::cerr << "parity_dump: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "parity_dump: " << e.what() << "\n";
    return 1;
  }
}
