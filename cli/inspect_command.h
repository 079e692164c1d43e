// `flowlik inspect MODEL`: the contract in effect and where each field came from, the parameters,
// and a smoke run (one batch through the velocity; one sample integrated, with its NFE and time).
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "flowlik/options.h"

namespace flowlik::cli {

struct InspectArguments {
  std::string model;
  ModelOptions options;              // --dtype, --device and the contract's overrides
  std::optional<std::string> shape;  // "8,8"; else the manifest's
  bool json = false;
};

CLI::App* add_inspect_command(CLI::App& app, InspectArguments& args);
struct InspectOutcome {
  nlohmann::json report;  // what --json prints
  std::string text;       // what it prints otherwise
  int exit_code = 0;      // 0, or the model's failure in the smoke run
};
// Everything `inspect` does but printing. Throws flowlik::Error for bad input.
InspectOutcome execute_inspect(const InspectArguments& args);
int run_inspect(const InspectArguments& args);

}  // namespace flowlik::cli
