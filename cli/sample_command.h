// `flowlik sample MODEL -n N --samples FILE.npy`: points drawn from the prior and carried forward
// to the data, each with the log-density the model gives it, computed in the same solve.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <optional>
#include <string>

#include "cli/scoring.h"

namespace flowlik::cli {

struct SampleArguments {
  std::string model;
  int64_t count = 0;         // -n
  ScoreArguments scoring;    // solver, trace, seed, dtype, device, outputs (no data)
  std::string samples;       // .npy [N, *shape] in the model's space
  std::string data_samples;  // .npy [N, *shape] in the data's space (uint8 levels)
  std::string per_sample;
  std::string labels;                // .npy [N]: the class of each sample, for a conditional model
  std::optional<std::string> shard;  // "I/N"
};

CLI::App* add_sample_command(CLI::App& app, SampleArguments& args);
// Returns the process exit code; throws flowlik::Error for bad input.
int run_sample(const SampleArguments& args);

}  // namespace flowlik::cli
