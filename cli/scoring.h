// What `score`, `compare` and `sample` share: the scoring options, turned into the library's
// (flowlik/run.h), the run's input and output files, the console summary.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "flowlik/flowlik.h"
#include "flowlik/output_file.h"
#include "flowlik/run.h"

namespace flowlik::cli {

// The options exactly as given on the command line: the library's option structs, and what only the
// program has (files, threads, outputs). Checked by the library before any sample is scored.
struct ScoreArguments {
  std::string data;
  std::string labels;  // class labels for a conditional model
  ModelOptions model;  // --dtype, --device and the contract's overrides
  ScoreOptions score;  // solver, trace, data map, seed, batch size
  // --max-rows: "auto" (sized from the memory: RunOptions::fit_rows_to_memory_mb) or a number of
  // rows.
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

// Called with the samples done of the total as a run goes (flowlik::RunOptions::on_progress).
using ProgressSink = std::function<void(int64_t done, int64_t total)>;

// The options as the library's run takes them (flowlik/run.h): the score options, --max-rows,
// --memory and --protocol; sets the thread count. The caller adds what is the command's own
// (shard, resume, sinks, checks).
RunOptions run_options(const ScoreArguments& args);

// --data, and --labels if given, with their hashes. Throws DataError naming the file.
Data load_scoring_data(const ScoreArguments& args);

// The files a run reads, by the option that named them: the model and a manifest beside it, the
// data, the labels.
std::vector<NamedFile> run_inputs(std::span<const std::string> models, const ScoreArguments& args);

// Before any work: no output names an input or another output, and every output can be created (the
// report named "report" in messages, the others "file"). Throws UsageError or OutputError.
void check_run_outputs(std::span<const NamedFile> inputs, std::span<const NamedFile> outputs);

// The console summary of a scored model.
void print_summary(const RunReport& report);
// Writes the JSON report whole or not at all (include/flowlik/output_file.h).
void write_report(const std::string& path, const nlohmann::json& report);

}  // namespace flowlik::cli
