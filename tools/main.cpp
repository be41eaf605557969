#include <cstdio>
#include <exception>

#include <CLI/CLI.hpp>

#include "engine/error.h"
#include "tools/commands.h"

namespace fer::tools {
std::vector<CommandAdder>& command_registry() {
  static std::vector<CommandAdder> registry;
  return registry;
}
}  // namespace fer::tools

int main(int argc, char** argv) {
  CLI::App app{"fer_gpu: CUDA-accelerated training of the FER2013 expression CNNs (models 4-8)"};
  app.require_subcommand(1);
  for (const auto& add : fer::tools::command_registry()) add(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  } catch (const fer::tools::Exit& e) {
    return e.status;
  } catch (const fer::UserError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  } catch (const fer::DeviceError& e) {
    std::fprintf(stderr, "device error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "internal error: %s\n", e.what());
    return 1;
  }
  return 0;
}
