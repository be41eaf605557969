// fer_gpu eval CONFIG --checkpoint FILE [--data PATH] [--split test|train] [--device cuda|cpu]
//                     [--batch-size B]
// Loss, accuracy, per-class precision/recall/F1 and the confusion matrix (class names) of a
// checkpoint on the config's validation ("test": PublicTest + PrivateTest by default) or training
// split. The checkpoint must be of the config's model.
#include <cstdio>
#include <memory>
#include <string>

#include "engine/error.h"
#include "engine/training/evaluate.h"
#include "engine/training/run_setup.h"
#include "tools/commands.h"

namespace {

struct EvalArgs {
  std::string precision;  // empty: the device's default (fp32 on the CPU, tf32 on CUDA)
  std::string config, checkpoint, data, split = "test", device;
  int batch_size = 0;
};

std::string join(const std::vector<std::string>& v, const char* sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + v[i];
  return out;
}

void add_eval(CLI::App& app) {
  auto* cmd = app.add_subcommand("eval", "Evaluate a checkpoint: loss, accuracy, per-class scores, confusion matrix");
  auto a = std::make_shared<EvalArgs>();
  cmd->add_option("config", a->config, "The model config the checkpoint was trained with")->required();
  cmd->add_option("--checkpoint", a->checkpoint, "Checkpoint file (best.ckpt or last.ckpt of a run)")->required();
  auto* data = cmd->add_option("--data", a->data, "FER2013 CSV or image-folder root (default: the config's [data] path)");
  cmd->add_option("--split", a->split, "test (the config's validation_usage) or train")
      ->check(CLI::IsMember({"test", "train"}));
  cmd->add_option("--precision", a->precision,
                  "fp32, tf32 (CUDA) or bf16 for the forward passes (default: the device's: tf32 on CUDA, fp32 on the CPU)")
      ->check(CLI::IsMember({"fp32", "tf32", "bf16"}));
  auto* device = cmd->add_option("--device", a->device, "cuda or cpu (default: cuda when a GPU is present)")
                     ->check(CLI::IsMember({"cuda", "cpu"}));
  cmd->add_option("--batch-size", a->batch_size, "Batch size (default: the config's)");
  cmd->callback([=] {
    using namespace fer::training;
    LoadedModel model = load_model(a->checkpoint, a->config);
    const DataChoice choice = choose_data(model.config.data.path,
                                          *data ? std::optional<std::string>(a->data) : std::nullopt, a->config);
    fer::loaders::DatasetOptions options = dataset_options(model.config, choice.path);
    const fer::loaders::Dataset ds = fer::loaders::load_dataset(choice.path, options);
    ds.require_labels("evaluation");
    if (ds.num_classes() != model.graph->classes()) {
      throw fer::UserError(choice.path + ": the data has " + std::to_string(ds.num_classes()) +
                           " classes after drop_classes, the model " + std::to_string(model.graph->classes()));
    }
    if (choice.is_sample) std::fputs(sample_banner(choice, ds.size()).c_str(), stdout);
    const bool train = a->split == "train";
    const std::vector<int64_t>& rows = train ? ds.train_rows : ds.validation_rows;
    if (rows.empty()) throw fer::UserError(choice.path + ": no rows in the " + a->split + " split");
    if (a->batch_size < 0) throw fer::UserError("--batch-size must be at least 1");
    const int batch = int(std::min<int64_t>(a->batch_size > 0 ? a->batch_size : model.config.train.batch_size,
                                            int64_t(rows.size())));
    std::string notice;
    const std::optional<fer::Precision> precision =
        a->precision.empty() ? std::nullopt : fer::parse_precision(a->precision);
    auto backend = make_backend(*device ? a->device : "", &notice, precision);
    std::printf("%s\n", notice.c_str());
    place_model(model, backend, batch, int(int64_t(rows.size()) % batch), precision);
    const EvalOutput ev = evaluate_rows(*model.graph, ds, rows, true, false);
    const std::vector<std::string>& names = model.class_names;
    const ConfusionMatrix cm = ev.confusion(model.graph->classes());
    const auto& usages = train ? model.config.data.train_usage : model.config.data.validation_usage;
    std::printf("%s (%s, epoch %zu) on %s, split %s (%s): %zu images\n", model.config.model.name.c_str(),
                a->checkpoint.c_str(), model.checkpoint.history.epochs.size(), choice.path.c_str(), a->split.c_str(),
                join(usages, " + ").c_str(), rows.size());
    std::printf("loss %.4f  accuracy %.4f\n\n", ev.metrics.mean_loss(), ev.metrics.accuracy());
    std::fputs(cm.format_scores(names).c_str(), stdout);
    std::printf("\nconfusion matrix (rows: true class, columns: predicted)\n");
    std::fputs(cm.format_matrix(names).c_str(), stdout);
  });
}

}  // namespace

FER_COMMAND(add_eval);
