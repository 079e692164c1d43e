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

struct CompareOutcome {
  CompareReport report;  // gates included
  int exit_code = 0;     // 0, or a gate's failure
};
// Everything `compare` does but its console table: checks, loads (`data` if given, else --data),
// scores, writes every output and evaluates the gates. Throws flowlik::Error for bad input.
CompareOutcome execute_compare(const CompareArguments& args, const Data* data = nullptr,
                               const ProgressSink& on_progress = {});
int run_compare(const CompareArguments& args);

}  // namespace flowlik::cli
