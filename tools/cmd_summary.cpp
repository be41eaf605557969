// fer_gpu summary CONFIG: Keras-style model summary with Keras' parameter counts.
#include <cstdio>

#include "models/run_config.h"
#include "models/summary.h"
#include "tools/commands.h"

namespace {

void add_summary(CLI::App& app) {
  auto* cmd = app.add_subcommand("summary", "Print a Keras-style summary of a model config");
  auto config = std::make_shared<std::string>();
  cmd->add_option("config", *config, "Model config (TOML), e.g. configs/model5.toml")->required();
  cmd->callback([config] {
    const fer::models::RunConfig run = fer::models::load_run_config(*config);
    auto graph = fer::models::build_graph(run);
    std::fputs(fer::models::keras_summary(*graph, run.model.name).c_str(), stdout);
  });
}

}  // namespace

FER_COMMAND(add_summary);
