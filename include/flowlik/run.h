// A whole scoring run as the flowlik program makes one, as a library call: scoring with shards and
// resumed rows, progress, the exact trace's rows sized to the memory, the optional checks (solve
// error, round trip, variance budget), and the report with its provenance (hashes, contract,
// preprocessing, options), built once, here. The program's `score` and `compare` are these calls
// with a command line around them.
//
//   auto model = flowlik::Model::load("model.pt2");
//   flowlik::RunOptions options;
//   options.check_solve = 8;
//   auto report = flowlik::run_score(model, flowlik::load_data("test.npy"), options);
//   report.summary.bpd.mean, report.check_solve->mean_abs_error_bpd, flowlik::to_json(report)
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "flowlik/flowlik.h"

namespace flowlik {

// Which block of a dataset a run scores: block `index` of `count` contiguous blocks that cover the
// samples once. Shards do not talk to each other; their reports and per-sample files are merged.
struct Shard {
  int64_t index = 0;
  int64_t count = 1;
  std::string source = "none";  // what chose it, for the report: "--shard", "RANK", ...

  // The block [first, end) of n samples.
  std::pair<int64_t, int64_t> range(int64_t n) const;
  // The report's "shard": {index, count, source, first, end} of n samples.
  nlohmann::json json(int64_t n) const;
};

// A published protocol the options were set from (apply_protocol, flowlik/options.h), for the
// report, with the options the caller set itself, which won.
struct ProtocolChoice {
  std::string name;               // empty: none
  std::vector<std::string> kept;  // option names, as Protocol::settings names them
};

struct RunOptions {
  ScoreOptions score;
  Shard shard;
  // The exact trace's rows per batched call: options.score.trace.max_rows, or (when set) as many
  // as fit in this budget, measured on the model: `--max-rows auto`. 0 MB: half of the memory
  // available.
  std::optional<double> fit_rows_to_memory_mb;
  // Called once, before any sample is scored, with the run's identity (what makes two runs' values
  // the same quantity: hashes, contract, preprocessing, the options that change results, shard);
  // returns the results already done, from an earlier run of the same identity, which are kept and
  // not scored again. Resume is this callback.
  std::function<std::vector<SampleResult>(const nlohmann::json& identity)> resume;
  SampleSink on_sample;  // each newly scored sample, in order
  std::function<void(int64_t done, int64_t total)> on_progress;  // after each newly scored sample
  std::function<void(const std::string& line)> on_note;  // what the run tells its user, one line
  std::optional<double> target_stderr;  // > 0: budget advice for this standard error of the bpd
  int64_t check_solve = 0;  // samples re-solved in float64 at a tolerance 100 times tighter
  bool round_trip = false;  // every sample carried to the prior and back
  ProtocolChoice protocol;
};

// The report's "options": every option in effect for a run. The JSON holds the keys that apply:
// rtol, atol, error_norm and quadrature for an adaptive solver, steps for a fixed-step one; noise
// and probes for Hutchinson's trace, max_rows for the exact one.
struct OptionsRecord {
  SolverOptions solver;
  TraceOptions trace;
  uint64_t seed = 0;
  std::optional<int64_t> dequant_draws;  // unset where there are no data (`sample`)
  Dtype dtype = Dtype::kFloat32;
  Device device;
  int64_t batch_size = 32;
  int64_t rows_per_call = 0;  // the network's rows per call; 0 in a report from before it was kept
  int threads = 0;
  // The flow times integrated between, prior end first (the contract's interval, with any eps).
  double flow_time_prior = 1.0;
  double flow_time_data = 0.0;
};

// The report's record of a protocol the options were set from: each of its settings, and whether
// the protocol's value was applied or an option the caller set replaced it.
struct ProtocolRecord {
  struct Setting {
    std::string option;       // as the program names it: "--dequantization"
    std::string value;        // the protocol's
    bool applied = true;      // false: the caller's option replaced it
    std::string replaced_by;  // "option --scale" when not applied, else empty
  };
  std::string name;
  std::string source;  // the paper and code it follows
  std::vector<Setting> settings;
};

// --target-stderr: the samples, dequantization draws and probes that reach a standard error of the
// mean bpd at least cost, from a first pass (the pilot) on a seeded subset of the data
// (shared/MATH.md section 7). Advice only: the run keeps its own options.
struct BudgetAdvice {
  // The standard error of a mean bpd by its source; NaN where a source has none.
  struct StdErrors {
    double total = NAN;
    double data = NAN;
    double dequantization = NAN;
    double estimator = NAN;
  };
  struct Pilot {
    int64_t samples = 0;
    int64_t draws = 0;
    int64_t probes = 0;  // 0: the exact trace
    int64_t ok = 0;
    StdErrors stderr_by_source;  // of its mean bpd
  };
  double target_stderr_bpd = NAN;
  Pilot pilot;
  // Per-sample variances of the bpd (bpd^2); unset with fewer than two pilot samples ok.
  std::optional<BudgetVariances> per_sample_variance_bpd2;
  // The cheapest budget (probes 0: the exact trace); unset when the target cannot be reached.
  std::optional<Budget> advice;
  std::string note;  // what the advice assumes, or why there is none
};

// --check-solve: the run's error measured against a float64 reference.
struct SolveCheckReport {
  int64_t samples_requested = 0;
  std::string error;  // not measured, and why; then the fields below are unset
  std::string solver;
  double rtol = NAN;
  double atol = NAN;
  std::string error_norm;
  int64_t samples = 0;               // re-solved and ok under both
  double mean_abs_error_nats = NAN;  // mean |log p(run) - log p(reference)|
  double max_abs_error_nats = NAN;
  double mean_error_nats = NAN;     // signed
  double mean_abs_error_bpd = NAN;  // the same in bits per dimension
  double mean_bpd_effect = NAN;     // signed effect on the mean bpd
};
// One line for summaries, Markdown and HTML.
std::string describe(const SolveCheckReport& check);
// The preprocessing in one line, for summaries: "discrete, 256 levels [...], uniform
// dequantization (seed 0, one draw), scale centered [...]" or "continuous, scored as given".
std::string describe(const Preprocessing& preprocessing);

// What a scoring run measured, and of what: the report, typed. to_json writes the JSON report
// (docs/reference.md, "The report"); the program's summary, Markdown, HTML, JUnit and history
// render the same value.
struct RunReport {
  struct ModelRecord {
    std::string path;
    std::string format;
    std::string sha256;
    int64_t parameters = 0;
    Contract contract;  // in effect, with each field's origin
  };
  struct DataRecord {
    std::string path;
    std::string sha256;
    std::string dtype;
    std::vector<int64_t> shape;
    int64_t n = 0;
    int64_t dim = 0;
    std::string labels;  // path, or empty
  };
  ModelRecord model;
  DataRecord data;
  Preprocessing preprocessing;        // how the raw data were mapped into the model's space
  std::string caveat;                 // why the figure may not be the bound it is called; or empty
  OptionsRecord options;              // every option in effect
  std::vector<SampleResult> samples;  // this run's (its shard's), resumed ones included, in order
  ScoreSummary summary;
  double wall_seconds = 0.0;
  std::optional<Shard> shard;  // when the data were split
  std::optional<int64_t> resumed_samples;
  std::string exact_trace_rows;  // how --max-rows auto chose, or empty
  std::optional<ProtocolRecord> protocol;
  std::optional<BudgetAdvice> budget_advice;  // with target_stderr
  std::optional<SolveCheckReport> check_solve;
  std::optional<RoundTripError> round_trip;
  std::string per_sample;         // the per-sample file the caller wrote, or empty
  std::vector<GateResult> gates;  // the caller's gates on this run
  // The flowlik that wrote the report, for a report read back (merge); empty: this one.
  std::string tool_version;
};

// Scores `data` (the shard's block of it) as the program's `score` does. A run with no sample
// scored ok is returned (summary.ok == 0); the caller decides whether that is an error. Throws
// InvalidArgument, DataError or ModelError for input that cannot be scored, before any sample is.
RunReport run_score(const Model& model, const Data& data, const RunOptions& options = {});

// Two or more models on the same data with common random numbers, as the program's `compare`.
struct CompareReport {
  std::vector<RunReport> models;         // in the order given
  std::vector<PairedDifference> paired;  // every pair a < b: b minus a
  uint64_t seed = 0;
  std::string exact_trace_rows;
  std::optional<ProtocolRecord> protocol;
  std::vector<GateResult> gates;
};
// Throws as run_score, InvalidArgument when the models see the data differently, NoSampleScored
// when a model scores no sample. Shards, resume, the checks and budget advice do not apply.
CompareReport run_compare(std::span<const Model> models, const Data& data,
                          const RunOptions& options = {});

// `flowlik sample` as a library call: points drawn from the model, block `shard` of `count`, each
// carried from the prior to the data end with its log-density from the same solve, and the report.
struct SampleRunOptions {
  ScoreOptions score;  // solver, trace, seed, batch size; its data options give the data map only
  Shard shard;
  std::optional<double> fit_rows_to_memory_mb;  // as RunOptions'
  // The class of each of the `count` samples, for a class-conditional model: a tensor [count] of an
  // integer dtype, or (when undefined) the labels file labels_path; labels_path names them in the
  // report either way.
  torch::Tensor labels;
  std::string labels_path;
  // The points also in the data's levels (SampleReport::levels), which needs the data's map (the
  // manifest's or options.score.data's scale): InvalidArgument naming "data_samples" without one.
  bool data_levels = false;
  // Called once, before any sample is generated, with the run's identity (the model's hash, what
  // is generated, the contract, the options that change results): for a per-sample file.
  std::function<void(const nlohmann::json& identity)> on_identity;
  SampleSink on_sample;  // each sample's result, in order
  std::function<void(int64_t done, int64_t total)> on_progress;
};

struct SampleReport {
  RunReport::ModelRecord model;
  // The labels the samples were drawn for: their file (absolute), "<tensor>", or empty (none).
  std::string labels;
  // How levels come from points (levels, scale, their sources); unset where there is no map.
  std::optional<Preprocessing> data_map;
  OptionsRecord options;  // every option in effect (the seed: x0 and the probes)
  torch::Tensor points;   // [end - first, *shape] float64 in the model's space; NaN if failed
  torch::Tensor levels;   // the same as data levels (uint8), with data_levels; else undefined
  std::vector<SampleResult> samples;  // log_likelihood = log p1(x1), in the model's space
  ScoreSummary summary;
  double wall_seconds = 0.0;
  std::optional<Shard> shard;
  int64_t count = 0;             // the N of the whole run (all shards)
  std::string exact_trace_rows;  // how --max-rows auto chose, or empty
  // Files the caller wrote, for the report (absolute paths), or empty.
  std::string samples_file;
  std::string data_samples_file;
  std::string per_sample;
};
// Throws ModelError for a model whose manifest declares no shape, InvalidArgument for a count below
// 1, labels missing or not wanted, or a bad option; before any sample is generated.
SampleReport run_sample(const Model& model, int64_t count, const SampleRunOptions& options = {});

// `flowlik merge`: the shards of one sharded run_score, each given by its report with its
// per-sample file beside it (the report's "per_sample"), joined into the report the unsharded run
// would have given. Refuses, with a DataError naming the file, shards of different runs (they must
// agree on tool, model, data, preprocessing and the options that change results), a shard given
// twice or missing, and per-sample files that are truncated, miss samples or hold others.
struct MergeReport {
  std::vector<std::string> merged_from;  // the shards' reports, as given
  // The run the shards make up: the sections every shard agrees on (tool, model, data,
  // preprocessing, options) and the first shard's protocol, checks and budget advice, as its report
  // has them; every sample, by index, and their summary; the shards' wall time summed; per_sample,
  // where the merged per-sample file was written, or empty. No shard, resumed count or gates.
  RunReport run;
};
// per_sample: also write every sample's row there (the per-sample CSV, committed whole); refused
// (InvalidArgument, the message starting with --per-sample) when it, its journal or its run
// identity is one of the files the merge reads: a report or a shard's per-sample file.
MergeReport merge_shards(std::span<const std::string> reports, const std::string& per_sample = "");

// The nightly gates on a run. `--baseline`: this run's mean bpd against an earlier report of the
// same data (an unpaired difference); throws DataError naming the baseline when it is malformed or
// was measured on other data. `--max-solve-error`: the measured solve error (run with
// check_solve) against a limit in bpd; it fails when the error could not be measured.
GateResult gate_against_baseline(const RunReport& run, const std::string& baseline,
                                 double max_regression, GateRule rule, std::string name);
GateResult gate_solve_error(const SolveCheckReport& check, double limit);

// Throws NoSampleScored when `summary` counts samples but none scored ok: what the program reports
// after writing a run's outputs.
void check_some_scored(const ScoreSummary& summary);

// The JSON reports.
nlohmann::json to_json(const RunReport& report);
nlohmann::json to_json(const CompareReport& report);
nlohmann::json to_json(const MergeReport& report);
nlohmann::json to_json(const SampleReport& report);
nlohmann::json to_json(const GateResult& gate);
nlohmann::json to_json(const RunReport::ModelRecord& model);  // the report's "model" section
nlohmann::json to_json(const OptionsRecord& options);         // the report's "options" section
// The report's "model.contract": each field as a manifest writes it (flowlik/conventions.h), the
// prior also in words, the interval also in flow time, and each field's origin ("sources").
nlohmann::json to_json(const Contract& contract);

// The report's "options" less those that do not change any result (batch size, threads, the exact
// trace's rows per batched call, the network's rows per call): what two runs, or two shards, must
// agree on.
nlohmann::json result_options(nlohmann::json options);

// Names the first field (as a dotted key) where two run identities differ, with both values; empty
// when equal.
std::string identity_difference(const nlohmann::json& recorded, const nlohmann::json& current);

}  // namespace flowlik
