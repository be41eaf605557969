// fer_gpu data PATH: load and validate a FER2013 data set (Kaggle CSV or image folders) and print
// rows per split and per class, the cache status and how long the load took.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "engine/error.h"
#include "loaders/dataset.h"
#include "loaders/text_util.h"
#include "tools/commands.h"

namespace {

using fer::loaders::Dataset;
using fer::loaders::with_thousands;

struct DataArgs {
  std::string path;
  std::vector<std::string> drop;
  std::string cache_dir;
  bool no_cache = false;
  bool rebuild_cache = false;
  bool alphabetical = false;
  int threads = 0;
};

void print_table(const Dataset& d) {
  const int k = d.num_classes();
  std::vector<std::string> head{"split", "usage"};
  for (const auto& name : d.class_names) head.push_back(name);
  head.push_back("total");
  std::vector<std::vector<std::string>> rows;

  auto add_row = [&](const std::string& split, const std::string& usage,
                     const std::vector<int64_t>& row_ids) {
    std::vector<std::string> r{split, usage};
    const std::vector<int64_t> counts = d.class_counts(row_ids);
    for (int c = 0; c < k; ++c) r.push_back(d.labeled ? with_thousands(counts[size_t(c)]) : "-");
    r.push_back(with_thousands(int64_t(row_ids.size())));
    rows.push_back(std::move(r));
  };
  std::vector<int64_t> unused;
  for (int u = 0; u < fer::loaders::kNumUsages; ++u) {
    const auto usage = fer::loaders::Usage(u);
    const std::vector<int64_t> ids = d.rows_with_usage(usage);
    if (ids.empty()) continue;
    const bool in_train = !ids.empty() && std::binary_search(d.train_rows.begin(), d.train_rows.end(), ids[0]);
    const bool in_val =
        !ids.empty() && std::binary_search(d.validation_rows.begin(), d.validation_rows.end(), ids[0]);
    add_row(in_train ? "train" : (in_val ? "validation" : "(unused)"), fer::loaders::usage_name(usage),
            ids);
  }
  add_row("train", "total", d.train_rows);
  add_row("validation", "total", d.validation_rows);

  std::vector<size_t> width(head.size());
  for (size_t c = 0; c < head.size(); ++c) {
    width[c] = head[c].size();
    for (const auto& r : rows) width[c] = std::max(width[c], r[c].size());
  }
  auto print_row = [&](const std::vector<std::string>& r) {
    std::string line;
    for (size_t c = 0; c < r.size(); ++c) {
      const std::string& cell = r[c];
      const std::string pad(width[c] - cell.size(), ' ');
      line += c < 2 ? cell + pad : pad + cell;  // text left, numbers right
      if (c + 1 < r.size()) line += "  ";
    }
    std::printf("%s\n", line.c_str());
  };
  print_row(head);
  size_t total_width = 0;
  for (size_t c = 0; c < width.size(); ++c) total_width += width[c] + (c ? 2 : 0);
  const size_t per_usage = rows.size() - 2;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (i == per_usage) std::printf("%s\n", std::string(total_width, '-').c_str());
    print_row(rows[i]);
  }
}

void run_data(const DataArgs& a) {
  fer::loaders::DatasetOptions opt;
  for (const std::string& s : a.drop) {
    const int id = fer::loaders::parse_fer_class(s);
    if (id < 0) {
      throw fer::UserError("--drop-classes: '" + s +
                           "' is not a FER2013 class (0..6 or angry, disgust, fear, happy, sad, "
                           "surprise, neutral)");
    }
    opt.drop_classes.push_back(id);
  }
  opt.cache_dir = a.cache_dir;
  opt.cache = a.no_cache ? fer::loaders::CacheMode::off
                         : (a.rebuild_cache ? fer::loaders::CacheMode::rebuild
                                            : fer::loaders::CacheMode::read_write);
  opt.class_order =
      a.alphabetical ? fer::loaders::ClassOrder::alphabetical : fer::loaders::ClassOrder::fer_id;
  opt.threads = a.threads;
  const Dataset d = fer::loaders::load_dataset(a.path, opt);

  const char* kind =
      d.format == fer::loaders::SourceFormat::csv ? "Kaggle CSV, columns " : "image folders: ";
  std::printf("source     %s (%s%s)\n", d.source.c_str(), kind, d.layout.c_str());
  std::string dropped;
  for (const int id : opt.drop_classes) {
    dropped += std::string(dropped.empty() ? "" : ", ") + fer::loaders::fer_class_names()[size_t(id)];
  }
  std::printf("images     %s of %dx%d%s", with_thousands(d.size()).c_str(), d.height, d.width,
              d.labeled ? "" : ", unlabeled (fine for predict; training needs labels)");
  if (!dropped.empty()) {
    std::printf(", %s rows dropped (%s)", with_thousands(d.dropped_rows).c_str(), dropped.c_str());
  }
  std::printf("\nclasses    %d:", d.num_classes());
  for (int c = 0; c < d.num_classes(); ++c) {
    std::printf(" %d=%s", c, d.class_names[size_t(c)].c_str());
  }
  std::printf("\n");
  const auto& r = d.report;
  std::printf("cache      %s", fer::loaders::cache_status_name(r.cache_status));
  if (!r.cache_path.empty()) std::printf(" %s", r.cache_path.c_str());
  if (!r.cache_message.empty()) std::printf(" (%s)", r.cache_message.c_str());
  std::printf("\nload time  %.3f s", r.seconds);
  if (r.parse_seconds > 0) {
    std::printf(" (%s %.3f s)",
                d.format == fer::loaders::SourceFormat::csv ? "parsing" : "decoding",
                r.parse_seconds);
  }
  std::printf("\n\n");
  print_table(d);
}

void add_data(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "data", "Validate a FER2013 data set (Kaggle CSV or image folders) and print its counts");
  auto args = std::make_shared<DataArgs>();
  cmd->add_option("path", args->path,
                  "fer2013.csv-style file, or a folder with train/<class>/ and test/<class>/")
      ->required();
  cmd->add_option("--drop-classes", args->drop,
                  "FER classes to drop, by id or name (e.g. 1 or disgust); comma-separated")
      ->delimiter(',');
  cmd->add_option("--cache-dir", args->cache_dir,
                  "Folder for the binary cache (default: beside the data, PATH.fercache)");
  cmd->add_flag("--no-cache", args->no_cache, "Neither read nor write the binary cache");
  cmd->add_flag("--rebuild-cache", args->rebuild_cache, "Ignore an existing cache and rewrite it");
  cmd->add_flag("--alphabetical", args->alphabetical,
                "Number classes alphabetically (Keras flow_from_directory order)");
  cmd->add_option("--threads", args->threads, "Parser threads (0: all cores)");
  cmd->callback([args] { run_data(*args); });
}

}  // namespace

FER_COMMAND(add_data);
