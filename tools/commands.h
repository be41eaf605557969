#pragma once
// Each subcommand lives in tools/cmd_<name>.cpp and registers itself with FER_COMMAND; main.cpp
// adds every registered command to the root app. A callback throws fer::UserError for a user's
// mistake (main prints it and exits 2) or fer::tools::Exit to end with a specific status.
#include <functional>
#include <vector>

#include <CLI/CLI.hpp>

namespace fer::tools {

using CommandAdder = std::function<void(CLI::App&)>;

struct Exit {
  int status;
};

std::vector<CommandAdder>& command_registry();

struct CommandRegistration {
  explicit CommandRegistration(CommandAdder adder) { command_registry().push_back(std::move(adder)); }
};

}  // namespace fer::tools

#define FER_COMMAND_CONCAT2(a, b) a##b
#define FER_COMMAND_CONCAT(a, b) FER_COMMAND_CONCAT2(a, b)
#define FER_COMMAND(adder) \
  static ::fer::tools::CommandRegistration FER_COMMAND_CONCAT(fer_command_, __LINE__){adder}
