// What `score` and `compare` share: the scoring options, their validation, and scoring one model on a
// dataset into per-sample results and a report.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <fstream>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "estimators/trace_factory.h"
#include "io/output_file.h"
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
  int64_t dequant_draws = 1;  // M uniform dequantization draws per sample, combined by logmeanexp
  std::string solver = "dopri5";
  double rtol = 1e-5;
  double atol = 1e-5;
  std::string error_norm = "rms";
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

// One model loaded with its contract and the preprocessing of the data, ready to be scored.
struct PreparedModel {
  std::string path;
  std::unique_ptr<VelocityField> field;
  std::unique_ptr<Preprocessing> preprocessing;
  std::string sha256;
  SolverSpec solver;  // the run's solver over the contract's flow-time interval
};

// Loads the model with its contract and resolves the preprocessing of `data` for it. Throws flowlik::Error
// for bad input, before any sample is scored.
PreparedModel prepare_model(const std::string& model_path, const ScoreArguments& args, const RunSetup& setup,
                            const Dataset& data);

// The files a run reads, by the option that named them: the model and a manifest beside it, the data,
// the labels.
std::vector<NamedFile> run_inputs(std::span<const std::string> models, const ScoreArguments& args);

// Before any work: no output names an input or another output, and every output can be created (the
// report named "report" in messages, the others "file"). Throws UsageError or OutputError.
void check_run_outputs(std::span<const NamedFile> inputs, std::span<const NamedFile> outputs);

// What makes two runs' per-sample values the same quantity: model and data digests, contract,
// preprocessing, seed, solver and estimator options (not the batch size or thread count, which change
// how fast a run is, not what it measures), and the shard. Recorded in the per-sample file; --resume
// refuses a file written under another identity.
nlohmann::json run_identity(const PreparedModel& model, const ScoreArguments& args, const RunSetup& setup,
                            const Dataset& data, const std::string& data_sha256);

// Names the first field (as a dotted key) where two identities differ, with both values; empty when equal.
std::string identity_difference(const nlohmann::json& recorded, const nlohmann::json& current);

// Throws UsageError naming the field when `other` sees the data differently from `first` (preprocessing
// or contract shape and data fields): paired differences of such models mean nothing.
void check_same_data_view(const PreparedModel& first, const PreparedModel& other);

// One model scored on a dataset. Owns what its report points to.
struct ModelRun {
  std::unique_ptr<VelocityField> field;
  std::unique_ptr<Preprocessing> preprocessing;
  std::vector<SampleResult> results;
  ScoreRun score;
};

// Scores data[indices] (calling on_sample as each completes) and summarizes those together with `done`,
// results of earlier runs (--resume). The summary of a run with no ok sample has ok = 0 and NaN means; the
// caller writes its outputs and then ends with all_failed_error.
ModelRun score_model(PreparedModel model, const ScoreArguments& args, const RunSetup& setup,
                     const Dataset& data, const std::string& data_sha256, std::span<const int64_t> indices,
                     std::vector<SampleResult> done, const SampleSink& on_sample);
// Every index of the dataset, in order.
std::vector<int64_t> all_indices(const Dataset& data);

void print_summary(const ScoreRun& run);
// Writes the JSON report whole or not at all (io/output_file.h).
void write_report(const std::string& path, const nlohmann::json& report);

}  // namespace flowlik::cli
