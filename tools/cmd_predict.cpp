// fer_gpu predict --checkpoint FILE IMAGE... | --csv FILE [--json] [--annotate DIR] [--no-detect] [--device cuda|cpu]
// For each face: the top emotion and every class probability. The model is rebuilt from the
// config the checkpoint carries. Images (PNG, JPEG, BMP, PGM) are read in grayscale after their
// EXIF orientation is applied (loaders/image_io.h); a photo is searched for faces (loaders/faces.h:
// box, crop, area resize), while an image of the model's input size, or any image with
// --no-detect, is taken as one face crop (resized as Keras' load_img does, nearest neighbour); a
// CSV is a Kaggle-layout file (labelled or "pixels" only); with labels, the accuracy over the file
// is printed too.
// An image that cannot be read does not stop the others: every readable image is predicted, each
// unreadable one is reported by path with the reason (stderr, and a "failed" list in --json), and
// the exit status is 2 when any image failed (0 when all were predicted). A photo without a face
// is said ("no face found", a "no_face" list in --json) and is not a failure.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <set>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/error.h"
#include "engine/training/evaluate.h"
#include "engine/training/fileio.h"
#include "engine/training/run_setup.h"
#include "loaders/faces.h"
#include "loaders/image_io.h"
#include "tools/commands.h"

namespace {

struct PredictArgs {
  std::string precision;  // empty: the device's default (fp32 on the CPU, tf32 on CUDA)
  std::string checkpoint, csv, device;
  std::vector<std::string> images;
  bool json = false;
  int batch_size = 64;
  // Faces in photos.
  bool no_detect = false;
  double face_margin = fer::loaders::kFaceMargin;
  std::string annotate_dir;
};

// Where a prediction row came from: a whole image, or face `face` (1-based) of a photo.
struct RowSource {
  std::string path;
  int face = 0;
  fer::loaders::FaceBox box;
  size_t image = 0;  // index of the input image (ImageInput) it came from
};

using Json = nlohmann::ordered_json;

// A probability in --json: rounded to 6 decimal places (printed as the shortest decimal that
// reads back, e.g. 0.123457), as the text output rounds to 3.
double six_places(double p) { return std::round(p * 1e6) / 1e6; }

// One input image, or why it cannot be used. Everything done to one image happens here (read,
// orient, convert, find the faces or take it as a crop, resize), so a failure to read it is
// reported like the others and does not stop the run.
struct ImageInput {
  std::string source;                          // the path as given
  std::string error;                           // "PATH: cannot read image: REASON" when unreadable
  bool photo = false;                          // searched for faces (not taken as one crop)
  std::vector<fer::loaders::FaceCrop> faces;   // [h, w] crops; empty for a photo without a face
  fer::loaders::GrayImage image;               // the upright image, kept only for --annotate
  bool ok() const { return error.empty(); }
};

// Throws fer::UserError only when the face detector itself cannot run (OpenCV or its cascade
// missing): that is not a property of one image, so it ends the run with the detector's message.
ImageInput read_input_image(const PredictArgs& a, const std::string& path, int h, int w) {
  ImageInput in;
  in.source = path;
  fer::loaders::GrayImage img;
  if (!fer::loaders::try_read_gray_image(path, &img, &in.error)) return in;
  in.photo = !(a.no_detect || (img.height == h && img.width == w));
  if (!in.photo) {
    fer::loaders::FaceCrop whole;
    whole.box = whole.crop = fer::loaders::FaceBox{0, 0, img.width, img.height};
    whole.pixels.resize(size_t(h) * size_t(w));
    fer::loaders::resize_nearest(img.pixels.data(), img.height, img.width, whole.pixels.data(), h, w);
    in.faces.push_back(std::move(whole));
  } else {
    fer::loaders::FaceFinderOptions options;
    options.margin = a.face_margin;
    try {
      in.faces = fer::loaders::find_faces(img, h, w, options);
    } catch (const fer::UserError& e) {
      throw fer::UserError(path + " is " + std::to_string(img.width) + "x" + std::to_string(img.height) + ", not a " +
                           std::to_string(w) + "x" + std::to_string(h) + " face crop: " + e.what());
    }
  }
  if (!a.annotate_dir.empty()) in.image = std::move(img);
  return in;
}

std::string failed_list(const std::vector<const ImageInput*>& failed) {
  std::string out;
  for (size_t i = 0; i < failed.size(); ++i) out += (i ? "\n  " : "") + failed[i]->error;
  return out;
}

// The faces of the readable inputs as a Dataset of unlabeled rows at the model's input size, in
// argument order (one row per crop, one per face found in a photo); *sources says where each row
// came from (RowSource::image indexes `inputs`).
fer::loaders::Dataset images_as_dataset(const std::vector<ImageInput>& inputs, int h, int w,
                                        std::vector<RowSource>* sources) {
  fer::loaders::Dataset d;
  d.height = h;
  d.width = w;
  d.labeled = false;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const ImageInput& in = inputs[i];
    for (size_t f = 0; f < in.faces.size(); ++f) {
      d.pixels.insert(d.pixels.end(), in.faces[f].pixels.begin(), in.faces[f].pixels.end());
      d.labels.push_back(-1);
      d.fer_ids.push_back(fer::loaders::kNoLabel);
      d.usage.push_back(fer::loaders::Usage::test);
      sources->push_back({in.source, in.photo ? int(f) + 1 : 0, in.faces[f].box, i});
    }
  }
  return d;
}

// --annotate: each readable image as DIR/<name>.png with its face boxes and top emotions drawn.
void write_annotations(const PredictArgs& a, const std::vector<ImageInput>& inputs,
                       const std::vector<RowSource>& sources, const std::vector<std::string>& labels) {
  std::error_code ec;
  std::filesystem::create_directories(a.annotate_dir, ec);
  if (ec) throw fer::UserError("--annotate " + a.annotate_dir + ": cannot create the folder: " + ec.message());
  std::set<std::string> used;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].ok()) continue;
    std::vector<fer::loaders::FaceBox> boxes;
    std::vector<std::string> texts;
    for (size_t r = 0; r < sources.size(); ++r) {
      if (sources[r].image != i) continue;
      boxes.push_back(sources[r].box);
      texts.push_back(r < labels.size() ? labels[r] : "");
    }
    // photo.jpg -> photo.png; a second photo.* (another folder) -> photo-2.png.
    const std::string stem = std::filesystem::path(inputs[i].source).stem().string();
    std::string name = stem + ".png";
    for (int k = 2; used.count(name); ++k) name = stem + "-" + std::to_string(k) + ".png";
    used.insert(name);
    fer::loaders::write_annotated_png((std::filesystem::path(a.annotate_dir) / name).string(), inputs[i].image, boxes,
                                      texts);
  }
}

// A CSV's rows resized to the model input when it is not 48x48.
fer::loaders::Dataset resized(const fer::loaders::Dataset& in, int h, int w) {
  if (in.height == h && in.width == w) return in;
  fer::loaders::Dataset d = in;
  d.height = h;
  d.width = w;
  d.pixels.assign(size_t(in.size()) * size_t(h) * size_t(w), 0);
  for (int64_t r = 0; r < in.size(); ++r) {
    fer::loaders::resize_nearest(in.image(r), in.height, in.width, d.pixels.data() + size_t(r) * size_t(h) * size_t(w), h, w);
  }
  return d;
}

void add_predict(CLI::App& app) {
  auto* cmd = app.add_subcommand("predict", "Predict the emotion of faces with a trained checkpoint");
  auto a = std::make_shared<PredictArgs>();
  cmd->add_option("--checkpoint", a->checkpoint, "Checkpoint file (best.ckpt or last.ckpt of a run)")->required();
  cmd->add_option("images", a->images, "Face images (PNG, JPEG, BMP, PGM); any size, colour is converted to gray");
  auto* csv = cmd->add_option("--csv", a->csv, "A Kaggle-layout CSV (emotion,pixels,Usage or pixels only)");
  cmd->add_flag("--json", a->json, "Print JSON instead of text");
  cmd->add_option("--precision", a->precision,
                  "fp32, tf32 (CUDA) or bf16 for the forward passes (default: the device's: tf32 on CUDA, fp32 on the CPU)")
      ->check(CLI::IsMember({"fp32", "tf32", "bf16"}));
  auto* device = cmd->add_option("--device", a->device, "cuda or cpu (default: cuda when a GPU is present)")
                     ->check(CLI::IsMember({"cuda", "cpu"}));
  cmd->add_option("--batch-size", a->batch_size, "Images per forward pass")->check(CLI::PositiveNumber);
  cmd->add_flag("--no-detect", a->no_detect, "Take every image as one face crop (no face detection)");
  cmd->add_option("--face-margin", a->face_margin, "Margin added around each detected face box, as a fraction of its side")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--annotate", a->annotate_dir, "Write each image with its face boxes and emotions drawn into this folder");
  cmd->callback([=] {
    using namespace fer::training;
    if (a->images.empty() && !*csv) throw fer::UserError("predict needs IMAGE files or --csv FILE");
    if (!a->images.empty() && *csv) throw fer::UserError("give either IMAGE files or --csv FILE, not both");
    LoadedModel model = load_model(a->checkpoint, "");
    const auto& in_shape = model.graph->input_shape().dims;
    const int h = in_shape[0], w = in_shape[1];

    fer::loaders::Dataset ds;
    std::vector<std::string> sources;
    std::vector<RowSource> faces;           // per row, for images
    std::vector<ImageInput> inputs;
    std::vector<const ImageInput*> failed;  // unreadable images, in argument order
    std::vector<std::string> no_face;       // photos without a face, in argument order
    if (!a->annotate_dir.empty() && *csv) throw fer::UserError("--annotate draws on image files, not on --csv rows");
    if (*csv) {
      if (!path_exists(a->csv)) throw fer::UserError("--csv " + a->csv + ": no such file");
      if (is_directory(a->csv)) throw fer::UserError("--csv " + a->csv + ": is a directory, expected a CSV file");
      fer::loaders::DatasetOptions options;  // every row, every class
      options.cache = cache_mode_for(a->csv);
      ds = resized(fer::loaders::load_dataset(a->csv, options), h, w);
      for (int64_t r = 0; r < ds.size(); ++r) sources.push_back(a->csv + " row " + std::to_string(r + 1));
    } else {
      for (const std::string& path : a->images) inputs.push_back(read_input_image(*a, path, h, w));
      for (const ImageInput& in : inputs) {
        if (!in.ok()) {
          failed.push_back(&in);  // reported after the predictions
        } else if (in.photo && in.faces.empty()) {
          no_face.push_back(in.source);
          if (!a->json) std::printf("%s: no face found\n", in.source.c_str());
        }
      }
      ds = images_as_dataset(inputs, h, w, &faces);
      for (const RowSource& f : faces) sources.push_back(f.path);
    }
    if (ds.size() == 0 && no_face.empty() && (failed.empty() || !a->json)) {
      if (!failed.empty()) {
        throw fer::UserError("nothing to predict: none of the " + std::to_string(failed.size()) +
                             " image(s) could be read:\n  " + failed_list(failed));
      }
      throw fer::UserError("nothing to predict: no faces were read");
    }
    std::vector<int64_t> rows(size_t(ds.size()));
    for (int64_t r = 0; r < ds.size(); ++r) rows[size_t(r)] = r;

    // Labels of a labelled CSV, as names (its own FER ids; the model may leave classes out).
    std::vector<std::string> truth(rows.size());
    if (ds.labeled) {
      for (size_t r = 0; r < rows.size(); ++r) {
        const uint8_t id = ds.fer_ids[r];
        truth[r] = id < fer::loaders::kNumFerClasses ? fer::loaders::fer_class_names()[id] : "";
      }
    }
    // With no face to classify (unreadable images, photos without faces) nothing runs, but the
    // output still lists them.
    EvalOutput ev;
    if (ds.size() > 0) {
      const int batch = int(std::min<int64_t>(a->batch_size, ds.size()));
      std::string notice;
      const std::optional<fer::Precision> precision =
          a->precision.empty() ? std::nullopt : fer::parse_precision(a->precision);
      auto backend = make_backend(*device ? a->device : "", &notice, precision);
      if (!a->json) std::printf("%s\n", notice.c_str());
      place_model(model, backend, batch, int(ds.size() % batch), precision);
      ev = evaluate_rows(*model.graph, ds, rows, false, true);
    }
    const auto& names = model.class_names;
    const int k = int(names.size());
    int64_t labelled = 0, right = 0;
    std::vector<std::string> drawn;  // "happy 0.82" per row, for --annotate
    Json doc;  // --json: the whole document, printed at the end
    if (a->json) {
      doc["checkpoint"] = a->checkpoint;
      doc["model"] = model.config.model.name;
      doc["classes"] = names;
      doc["predictions"] = Json::array();
    } else {
      std::printf("%s: %s, %zu face(s)\n", a->checkpoint.c_str(), model.config.model.name.c_str(), rows.size());
    }
    for (size_t i = 0; i < rows.size(); ++i) {
      const float* p = ev.probabilities.data() + i * size_t(k);
      const int top = ev.predictions.predicted[i];
      if (!truth[i].empty()) {
        ++labelled;
        right += truth[i] == names[size_t(top)];
      }
      const RowSource* face = i < faces.size() && faces[i].face > 0 ? &faces[i] : nullptr;
      char conf[32];
      std::snprintf(conf, sizeof conf, " %.2f", p[top]);
      drawn.push_back(names[size_t(top)] + conf);
      if (a->json) {
        Json row;
        row["source"] = sources[i];
        if (face) {
          row["face"] = face->face;
          row["box"] = Json{{"x", face->box.x}, {"y", face->box.y}, {"w", face->box.width}, {"h", face->box.height}};
        }
        row["top"] = names[size_t(top)];
        row["confidence"] = six_places(p[top]);
        if (!truth[i].empty()) row["label"] = truth[i];
        Json probabilities;
        for (int c = 0; c < k; ++c) probabilities[names[size_t(c)]] = six_places(p[c]);
        row["probabilities"] = std::move(probabilities);
        doc["predictions"].push_back(std::move(row));
      } else {
        std::printf("%s", sources[i].c_str());
        if (face) {
          std::printf(" face %d at x %d y %d w %d h %d", face->face, face->box.x, face->box.y, face->box.width,
                      face->box.height);
        }
        std::printf(": %s %.3f", names[size_t(top)].c_str(), p[top]);
        if (!truth[i].empty()) std::printf(" (label %s)", truth[i].c_str());
        std::printf("  [");
        for (int c = 0; c < k; ++c) std::printf("%s%s %.3f", c ? ", " : "", names[size_t(c)].c_str(), p[c]);
        std::printf("]\n");
      }
    }
    if (a->json) {
      doc["failed"] = Json::array();
      for (const ImageInput* f : failed) doc["failed"].push_back(Json{{"source", f->source}, {"error", f->error}});
      if (!no_face.empty()) doc["no_face"] = no_face;
      if (labelled) {
        doc["labelled"] = labelled;
        doc["accuracy"] = six_places(double(right) / double(labelled));
      }
      // Paths and class names need not be valid UTF-8: replaced, not thrown on.
      std::printf("%s\n", doc.dump(2, ' ', false, Json::error_handler_t::replace).c_str());
    } else if (labelled) {
      std::printf("accuracy over %lld labelled faces: %.4f\n", static_cast<long long>(labelled),
                  double(right) / double(labelled));
    }
    if (!a->annotate_dir.empty()) write_annotations(*a, inputs, faces, drawn);
    if (!failed.empty()) {
      std::fflush(stdout);
      std::fprintf(stderr, "error: %zu of %zu images could not be read:\n", failed.size(), inputs.size());
      std::fprintf(stderr, "  %s\n", failed_list(failed).c_str());
      throw fer::tools::Exit{2};
    }
  });
}

}  // namespace

FER_COMMAND(add_predict);
