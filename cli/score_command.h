// `flowlik score MODEL --data FILE.npy`: parse -> load -> run -> report.
#pragma once

#include <CLI/CLI.hpp>

#include "cli/ci_outputs.h"
#include "cli/scoring.h"

namespace flowlik::cli {

struct ScoreCommandArguments {
  std::string model;
  ScoreArguments scoring;
  std::string per_sample;
  std::optional<std::string> shard;  // "I/N"
  bool resume = false;
  std::string baseline;                   // a previous report to gate against
  std::optional<double> target_stderr;    // bpd: advise samples, draws and probes that reach it
  int64_t check_solve = 0;                // samples re-solved in float64 at a tighter tolerance
  std::optional<double> max_solve_error;  // bpd: the gate on the measured mean |solve error|
  bool round_trip = false;  // decode each sample's prior point back and report the error
  GateArguments gate;
};

CLI::App* add_score_command(CLI::App& app, ScoreCommandArguments& args);

struct ScoreOutcome {
  RunReport report;   // gates included
  int exit_code = 0;  // 0, or the gate's failure
};
// Everything `score` does but its console summary: checks, loads (`data` if given, else --data),
// scores, writes every output and evaluates the gates. Throws flowlik::Error for bad input.
ScoreOutcome execute_score(const ScoreCommandArguments& args, const Data* data = nullptr,
                           const ProgressSink& on_progress = {});
// Returns the process exit code; throws flowlik::Error for bad input.
int run_score(const ScoreCommandArguments& args);

}  // namespace flowlik::cli
