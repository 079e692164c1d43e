// What `score` and `compare` share: the scoring options, their validation, and scoring one model on
// a dataset into per-sample results and a report.
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
#include "likelihood/model_run.h"
#include "likelihood/report.h"
#include "likelihood/score.h"

namespace flowlik::cli {

// The options exactly as given on the command line: the library's option structs, and what only the
// program has (files, threads, outputs). Validated once, in parse_run_setup, before any work.
struct ScoreArguments {
  std::string data;
  std::string labels;  // class labels for a conditional model
  ModelOptions model;  // --dtype, --device and the contract's overrides
  ScoreOptions score;  // solver, trace, data map, seed, batch size
  // --max-rows: "auto" (sized from the memory, cli/memory.h) or a number of rows.
  std::string max_rows = "auto";
  double memory_mb = 0.0;  // --memory: the exact trace's budget; 0: half of the memory available
  int threads = 0;         // 0: LibTorch's default
  std::string output;
  std::string history;  // SQLite file to append each model's result to
  std::string html;     // self-contained HTML report
  bool quiet = false;
  // --protocol: its name, and the options it lists that the command line set itself (which win).
  std::string protocol;
  std::vector<std::string> protocol_kept;
};

// What the options are for: scoring a dataset (score, compare), or generating samples (sample),
// which has no data to read or dequantize.
enum class OptionsFor { kData, kGenerated };

// Every scoring option but the model(s) and --per-sample (for kGenerated: less the data's file,
// labels, dequantization, protocol, history and HTML; --levels and --scale remain, for the samples
// in data space).
void add_scoring_options(CLI::App& command, ScoreArguments& args,
                         OptionsFor use = OptionsFor::kData);

// --protocol as the report records it: the protocol's name and source, and each of its settings
// with whether it was applied or an option given on the command line took its place. Null without
// --protocol.
nlohmann::json protocol_json(const ScoreArguments& args);

// The options turned into typed values, once, before any work: throws for a bad value, sets the
// thread count, and loads the CUDA backend if a CUDA device is asked for.
ScoreSetup parse_run_setup(const ScoreArguments& args);

// --max-rows auto (the default) for the exact trace: the rows per call that fit the memory budget,
// measured on each model (the fewest over them); the setup as it was for a number given or the
// Hutchinson trace. `how` (if given) receives how the value was chosen, for the report.
ScoreSetup fit_exact_rows_to_memory(const ScoreArguments& args, const ScoreSetup& setup,
                                    std::span<const PreparedModel> models,
                                    std::string* how = nullptr);

// The report's "options" less those that do not change any result (batch size, threads, the exact
// trace's rows per call): what two runs, or two shards, must agree on.
nlohmann::json result_options(nlohmann::json options);

// --data, and --labels if given. Throws DataError naming the file.
Dataset load_scoring_data(const ScoreArguments& args);

// Loads a model with its contract and prepares it for the data (flowlik::prepare_model). Throws
// flowlik::Error for bad input, before any sample is scored.
PreparedModel prepare_for_run(const std::string& model_path, const ScoreArguments& args,
                              const Dataset& data);

// The files a run reads, by the option that named them: the model and a manifest beside it, the
// data, the labels.
std::vector<NamedFile> run_inputs(std::span<const std::string> models, const ScoreArguments& args);

// Before any work: no output names an input or another output, and every output can be created (the
// report named "report" in messages, the others "file"). Throws UsageError or OutputError.
void check_run_outputs(std::span<const NamedFile> inputs, std::span<const NamedFile> outputs);

// What makes two runs' per-sample values the same quantity: model and data digests, contract,
// preprocessing, seed, solver and estimator options (not the batch size or thread count, which
// change how fast a run is, not what it measures), and the shard. Recorded in the per-sample file;
// --resume refuses a file written under another identity.
nlohmann::json run_identity(const PreparedModel& model, const ScoreSetup& setup,
                            const Dataset& data, const std::string& data_sha256);

// Names the first field (as a dotted key) where two identities differ, with both values; empty when
// equal.
std::string identity_difference(const nlohmann::json& recorded, const nlohmann::json& current);

// flowlik::score_model with a progress bar on stderr (unless --quiet).
ModelRun score_with_progress(const PreparedModel& model, const ScoreArguments& args,
                             const ScoreSetup& setup, const Dataset& data,
                             const std::string& data_sha256, std::span<const int64_t> indices,
                             std::vector<SampleResult> done, const SampleSink& on_sample);

void print_summary(const ScoreRun& run);
// Writes the JSON report whole or not at all (io/output_file.h).
void write_report(const std::string& path, const nlohmann::json& report);

}  // namespace flowlik::cli
