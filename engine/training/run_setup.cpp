#include "engine/training/run_setup.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include <toml++/toml.h>

#include "engine/error.h"
#include "engine/training/fileio.h"

namespace fer::training {

namespace {
constexpr const char* kSampleRelative = "data/sample/fer2013_sample.csv";
}

std::string bundled_sample_path() {
  if (path_exists(kSampleRelative)) return kSampleRelative;
#ifdef FER_SOURCE_TREE
  const std::string in_tree = std::string(FER_SOURCE_TREE) + "/" + kSampleRelative;
  if (path_exists(in_tree)) return in_tree;
#endif
  return "";
}

DataChoice choose_data(const std::string& config_data_path, const std::optional<std::string>& cli_path,
                       const std::string& config_file) {
  DataChoice c;
  if (cli_path) {
    if (!path_exists(*cli_path)) {
      throw UserError("--data " + *cli_path + ": no such file or folder (expected a Kaggle FER2013 CSV or an image-folder root)");
    }
    c.path = *cli_path;
    return c;
  }
  if (path_exists(config_data_path)) {
    c.path = config_data_path;
    return c;
  }
  const std::string sample = bundled_sample_path();
  if (sample.empty()) {
    throw UserError(config_file + ": [data] path \"" + config_data_path +
                    "\" does not exist and the bundled sample (" + kSampleRelative +
                    ") was not found either; download FER2013 and pass --data PATH");
  }
  c.path = sample;
  c.is_sample = true;
  c.missing_path = config_data_path;
  return c;
}

std::string sample_banner(const DataChoice& choice, int64_t rows) {
  const std::string bar(78, '=');
  std::ostringstream o;
  o << bar << "\n"
    << "  FER2013 not found at " << choice.missing_path << ": training on the BUNDLED SAMPLE\n"
    << "  (" << choice.path << ", " << rows << " faces). It shows the pipeline works;\n"
    << "  its accuracy means nothing.\n"
    << "  For real training download fer2013.csv from the Kaggle challenge \"Challenges in\n"
    << "  Representation Learning: Facial Expression Recognition Challenge\" and put it at\n"
    << "  " << choice.missing_path << " (or pass --data PATH; image folders work too).\n"
    << bar << "\n";
  return o.str();
}

loaders::DatasetOptions dataset_options(const models::RunConfig& config, const std::string& data_path) {
  using loaders::Usage;
  loaders::DatasetOptions o;
  o.drop_classes = config.data.drop_classes;
  o.cache = cache_mode_for(data_path);
  auto map_usage = [](const std::string& s) {
    if (s == "Training") return Usage::training;
    if (s == "PublicTest") return Usage::public_test;
    return Usage::private_test;
  };
  o.train_usages.clear();
  o.validation_usages.clear();
  for (const auto& s : config.data.train_usage) o.train_usages.push_back(map_usage(s));
  for (const auto& s : config.data.validation_usage) o.validation_usages.push_back(map_usage(s));
  // An image-folder root has train/ (Training) and test/ (no public/private split): the test
  // folder validates whenever the config validates on a test split.
  if (is_directory(data_path)) {
    const bool val_test = std::any_of(o.validation_usages.begin(), o.validation_usages.end(),
                                      [](Usage u) { return u != Usage::training; });
    if (val_test) o.validation_usages.push_back(Usage::test);
  }
  return o;
}

loaders::CacheMode cache_mode_for(const std::string& data_path) {
  std::error_code ec;
  if (std::filesystem::is_regular_file(data_path, ec)) {
    const auto size = std::filesystem::file_size(data_path, ec);
    if (!ec && size < (32u << 20)) return loaders::CacheMode::off;
  }
  return loaders::CacheMode::read_write;
}

std::vector<std::string> class_names_of(const models::RunConfig& config) {
  std::vector<std::string> names;
  const auto& all = loaders::fer_class_names();
  for (int id = 0; id < loaders::kNumFerClasses; ++id) {
    if (std::find(config.data.drop_classes.begin(), config.data.drop_classes.end(), id) ==
        config.data.drop_classes.end()) {
      names.emplace_back(all[size_t(id)]);
    }
  }
  return names;
}

std::shared_ptr<Backend> make_backend(const std::string& requested, std::string* notice,
                                      std::optional<Precision> precision, int cuda_device) {
  if (!requested.empty() && requested != "cpu" && requested != "cuda") {
    throw UserError("--device " + requested + ": expected cuda or cpu");
  }
  std::string why;
  if (requested == "cpu") {
    std::shared_ptr<Backend> be = make_cpu_backend();
    if (notice) *notice = "device: " + be->description();
    return be;
  }
  const bool have_cuda = cuda_device_available(&why);
  if (requested == "cuda" && !have_cuda) {
    throw UserError("--device cuda: no usable CUDA device (" + why + "); use --device cpu");
  }
  if (have_cuda) {
    BackendOptions options;
    options.allow_tf32 = precision != Precision::fp32;
    std::shared_ptr<Backend> be = make_cuda_backend(cuda_device, options);
    if (notice) *notice = "device: " + be->description();
    return be;
  }
  std::shared_ptr<Backend> be = make_cpu_backend();
  if (notice) *notice = "device: " + be->description() + " (no CUDA device: " + why + ")";
  return be;
}

std::string toml_string(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

namespace {

// Byte offset of (line, column) in text; toml++ counts columns in code points, from 1.
size_t offset_of(const std::string& text, uint32_t line, uint32_t column) {
  size_t at = 0;
  for (uint32_t l = 1; l < line; ++l) {
    const size_t nl = text.find('\n', at);
    if (nl == std::string::npos) return text.size();
    at = nl + 1;
  }
  for (uint32_t c = 1; c < column && at < text.size();) {
    ++at;
    while (at < text.size() && (static_cast<unsigned char>(text[at]) & 0xC0) == 0x80) ++at;
    ++c;
  }
  return at;
}

size_t end_of_line(const std::string& text, size_t at) {
  const size_t nl = text.find('\n', at);
  return nl == std::string::npos ? text.size() : nl + 1;
}

struct Edit {
  size_t begin, end;
  std::string replacement;
};

}  // namespace

std::string apply_config_overrides(const std::string& text, const std::string& origin,
                                   const std::vector<ConfigOverride>& overrides) {
  if (overrides.empty()) return text;
  toml::table root;
  try {
    root = toml::parse(text, std::string_view(origin));
  } catch (const toml::parse_error& e) {
    throw UserError(origin + ":" + std::to_string(e.source().begin.line) + ": invalid TOML: " +
                    std::string(e.description()));
  }
  std::vector<Edit> edits;
  std::string appended;
  std::map<std::string, std::string> new_tables;  // table -> lines to append under a new header
  std::vector<std::string> new_table_order;
  for (const ConfigOverride& o : overrides) {
    toml::node* tnode = root.get(o.table);
    if (!tnode) {
      if (!new_tables.count(o.table)) new_table_order.push_back(o.table);
      new_tables[o.table] += o.key + " = " + o.literal + "\n";
      continue;
    }
    toml::table* table = tnode->as_table();
    if (!table || table->is_inline()) {
      throw UserError(origin + ": cannot apply the command-line value of " + o.table + "." + o.key +
                      ": [" + o.table + "] must be a plain table");
    }
    if (toml::node* value = table->get(o.key)) {
      const auto& src = value->source();
      const size_t b = offset_of(text, src.begin.line, src.begin.column);
      const size_t e = offset_of(text, src.end.line, src.end.column);
      if (b >= e || e > text.size()) {
        throw UserError(origin + ": cannot locate " + o.table + "." + o.key + " to apply the command-line value");
      }
      edits.push_back({b, e, o.literal});
    } else {
      const auto& src = table->source();
      const size_t header = offset_of(text, src.begin.line, src.begin.column);
      const size_t after = end_of_line(text, header);
      std::string line = o.key + " = " + o.literal + "\n";
      if (after == text.size() && !text.empty() && text.back() != '\n') line = "\n" + line;
      edits.push_back({after, after, line});
    }
  }
  std::sort(edits.begin(), edits.end(), [](const Edit& a, const Edit& b) { return a.begin > b.begin; });
  std::string out = text;
  for (const Edit& e : edits) out.replace(e.begin, e.end - e.begin, e.replacement);
  for (const std::string& t : new_table_order) {
    if (!out.empty() && out.back() != '\n') out += "\n";
    out += "\n[" + t + "]\n" + new_tables[t];
  }
  return out;
}

}  // namespace fer::training
