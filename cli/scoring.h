// What `score` and `compare` share: the scoring options, their validation, and scoring one model on a
// dataset into per-sample results and a report.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "estimators/trace_factory.h"
#include "likelihood/contract.h"
#include "likelihood/report.h"
#include "likelihood/score.h"

namespace flowlik::cli {

// The options exactly as given on the command line; validated once, in run_score, before any work.
struct ScoreArguments {
  std::string data;
  std::string labels;  // class labels for a conditional model
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
  std::string history;  // SQLite file to append each model's result to
  std::string html;     // self-contained HTML report
  bool quiet = false;
};

// Every scoring option but the model(s) and --per-sample.
void add_scoring_options(CLI::App& command, ScoreArguments& args);

// The options turned into typed values, once, before any work.
struct RunSetup {
  SolverSpec solver;
  TraceSpec trace_spec;
  std::unique_ptr<TraceEstimator> trace;
  torch::TensorOptions tensor_options;
};
RunSetup parse_run_setup(const ScoreArguments& args);

// --data, and --labels if given. Throws DataError naming the file.
Dataset load_scoring_data(const ScoreArguments& args);

// One model scored on a dataset. Owns what its report points to.
struct ModelRun {
  std::unique_ptr<VelocityField> field;
  std::unique_ptr<Preprocessing> preprocessing;
  std::vector<SampleResult> results;
  ScoreRun score;
};

// Loads the model with its contract, scores data[indices] (calling on_sample as each completes), and
// summarizes those together with `done`, results of earlier runs (--resume). Throws flowlik::Error for bad
// input, Error(kAllFailed) when no sample could be scored.
ModelRun score_model(const std::string& model_path, const ScoreArguments& args, const RunSetup& setup,
                     const Dataset& data, std::span<const int64_t> indices, std::vector<SampleResult> done,
                     const SampleSink& on_sample);
// Every index of the dataset, in order.
std::vector<int64_t> all_indices(const Dataset& data);

void print_summary(const ScoreRun& run);
// Opened before any work is done, so an unwritable path fails at once rather than after hours of scoring.
std::optional<std::ofstream> open_report(const std::string& path);
void write_report(std::ofstream& out, const std::string& path, const nlohmann::json& report);

}  // namespace flowlik::cli
