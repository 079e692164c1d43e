// `flowlik score MODEL --data FILE.npy`: parse -> load -> run -> report.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <optional>
#include <string>

#include "likelihood/contract.h"

namespace flowlik::cli {

// The options exactly as given on the command line; validated once, in run_score, before any work.
struct ScoreArguments {
  std::string model;
  std::string data;
  ContractOptions contract;
  std::optional<int64_t> levels;
  std::optional<std::string> scale;
  std::string solver = "dopri5";
  double rtol = 1e-5;
  double atol = 1e-5;
  int64_t steps = 100;
  int64_t max_nfe = 100000;
  std::string trace = "exact";
  std::string noise = "rademacher";
  int64_t probes = 1;
  int64_t max_rows = 1 << 14;
  uint64_t seed = 0;
  std::string dtype = "float32";
  std::string device = "cpu";
  int64_t batch_size = 32;
  int threads = 0;  // 0: LibTorch's default
  std::string output;
  std::string per_sample;
  bool quiet = false;
};

CLI::App* add_score_command(CLI::App& app, ScoreArguments& args);
// Returns the process exit code; throws flowlik::Error for bad input.
int run_score(const ScoreArguments& args);

}  // namespace flowlik::cli
