// `flowlik compare A.pt B.pt [C.pt ...] --data X`: every model scored with the same dequantization
// noise and probes (common random numbers), and the paired difference of each pair with its
// standard error.
#pragma once

#include <CLI/CLI.hpp>

#include "cli/ci_outputs.h"
#include "cli/scoring.h"

namespace flowlik::cli {

struct CompareArguments {
  std::vector<std::string> models;
  ScoreArguments scoring;
  GateArguments gate;  // each later model against the first
};

CLI::App* add_compare_command(CLI::App& app, CompareArguments& args);
int run_compare(const CompareArguments& args);

}  // namespace flowlik::cli
