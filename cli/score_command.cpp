#include "cli/score_command.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>

#include "cli/ci_outputs.h"
#include "cli/exit_codes.h"
#include "cli/number_options.h"
#include "cli/progress.h"
#include "cli/reporters.h"
#include "cli/shard.h"
#include "io/report_reader.h"
#include "io/sample_csv.h"
#include "likelihood/comparison.h"

namespace flowlik::cli {
namespace {

// The per-sample journal of an interrupted run (or the complete file of a finished one), checked to
// belong to this run and this shard; a row cut off by the interruption is dropped (and its sample
// scored again), anything else malformed is an error. Leaves the journal ready to be appended to;
// returns its rows. Returns nullopt when there is nothing to resume (no file, or one killed before
// its header was written). The caller holds the journal's lock (an empty journal is the lock's).
std::optional<std::vector<SampleResult>> resume_journal(const std::string& path,
                                                        const JournalLock& lock,
                                                        const nlohmann::json& identity,
                                                        int64_t first, int64_t end, bool quiet) {
  namespace fs = std::filesystem;
  const auto journal = journal_path(path);
  std::error_code ec;
  // A finished run's file is checked where it is, and continued in the journal only once it is
  // accepted, so that it stays whole until replaced and a refusal leaves nothing behind.
  const bool finished = lock.was_empty();
  if (finished && !fs::exists(path, ec)) return std::nullopt;
  const auto& source = finished ? path : journal;
  auto csv = read_sample_csv(source);
  if (!csv.has_header)
    return std::nullopt;  // killed while writing its first lines: nothing was done
  const auto recorded = recorded_identity(source, csv);
  if (!recorded) {
    throw UsageError(
        fmt::format("--resume: {} records no run identity (written by flowlik 0.1?); its rows "
                    "cannot be checked to belong to this run, so score afresh without --resume",
                    source));
  }
  if (const auto diff = identity_difference(*recorded, identity); !diff.empty()) {
    throw UsageError(fmt::format("--resume: {} was written by another run: {}", source, diff));
  }
  std::vector<bool> seen(static_cast<size_t>(end - first), false);
  for (const auto& r : csv.rows) {
    if (r.index < first || r.index >= end) {
      throw DataError(fmt::format("{}: holds sample {}, outside this run's samples [{}, {})",
                                  source, r.index, first, end));
    }
    if (seen[static_cast<size_t>(r.index - first)]) {
      throw DataError(fmt::format("{}: holds sample {} twice", source, r.index));
    }
    seen[static_cast<size_t>(r.index - first)] = true;
  }
  if (csv.partial_tail && !quiet) {
    fmt::print(stderr,
               "flowlik: {}: dropping a last row cut off mid-write; its sample is scored again\n",
               source);
  }
  if (finished) {
    continue_in_journal(path, csv, *recorded);
  } else if (csv.partial_tail) {
    fs::resize_file(journal, csv.complete_bytes);
  }
  if (!quiet)
    fmt::print(stderr, "flowlik: resuming: {} samples already in {}\n", csv.rows.size(), journal);
  return std::move(csv.rows);
}

// One line on stderr for --target-stderr's advice.
void print_budget_advice(double target, const nlohmann::json& advice) {
  if (advice["advice"].is_null()) {
    fmt::print(stderr, "flowlik: --target-stderr {}: {}\n", target,
               advice["note"].get<std::string>());
    return;
  }
  const auto& a = advice["advice"];
  // --probes only where it means something: the exact trace has none.
  const auto probes = a["probes"].get<int64_t>();
  fmt::print(stderr,
             "flowlik: --target-stderr {}: advice: {} samples, --dequant-draws {}{} (from a first "
             "pass on {} samples; this run keeps its own options)\n",
             target, a["samples"].get<int64_t>(), a["draws"].get<int64_t>(),
             probes > 0 ? fmt::format(", --probes {}", probes) : std::string(),
             advice["pilot"]["samples"].get<int64_t>());
}

// --max-solve-error: the gate on --check-solve's measured error.
GateResult solve_error_gate(const SolveCheckReport& check, double limit) {
  GateResult g;
  g.name = "solve error";
  g.threshold = limit;
  if (!check.error.empty() || check.samples == 0) {
    g.passed = false;
    g.message = fmt::format("solve error: FAILED, not measured ({})",
                            check.error.empty() ? "no sample could be re-solved" : check.error);
    return g;
  }
  g.regression = check.mean_abs_error_bpd;
  g.ci_low = check.mean_abs_error_bpd;
  g.passed = check.mean_abs_error_bpd <= limit;
  g.message =
      fmt::format("solve error: {} mean |error| {:.3g} bpd on {} samples against a limit of {:.3g}",
                  g.passed ? "passed," : "FAILED,", check.mean_abs_error_bpd, check.samples, limit);
  return g;
}

}  // namespace

CLI::App* add_score_command(CLI::App& app, ScoreCommandArguments& a) {
  auto* cmd = app.add_subcommand("score", "log-likelihood and bits/dim of a dataset under a model");
  cmd->add_option("model", a.model,
                  "model file: an AOTInductor package (.pt2) or a TorchScript module")
      ->required()
      ->check(CLI::ExistingFile);
  add_scoring_options(*cmd, a.scoring);
  cmd->add_option("--per-sample", a.per_sample,
                  "write per-sample results here (CSV), as each completes");
  cmd->add_option(
      "--shard", a.shard,
      "score block I of N (0 <= I < N); default from SLURM_ARRAY_TASK_ID/COUNT or RANK/WORLD_SIZE");
  cmd->add_flag("--resume", a.resume,
                "keep the samples already in --per-sample and score the rest");
  cmd->add_option(
         "--target-stderr", a.target_stderr,
         "advise the samples, draws and probes that reach this standard error of the mean bpd at "
         "least cost, from a first pass on a seeded subset (the run itself is not changed)")
      ->check(positive_finite());
  cmd->add_option(
         "--check-solve", a.check_solve,
         "re-solve this many seeded samples in float64 at a tolerance 100x tighter and report the "
         "measured solve error")
      ->check(integer_in(0, 1 << 20));
  cmd->add_flag("--round-trip", a.round_trip,
                "carry each sample to the prior and back (a forward solve) and report the "
                "reconstruction error max and mean |x - decode(encode(x))|, in the model's space");
  cmd->add_option("--max-solve-error", a.max_solve_error,
                  "fail (exit 7) when the measured mean |solve error| exceeds this many bpd (needs "
                  "--check-solve)")
      ->check(positive_finite())
      ->group("Regression gate (nightly CI)");
  cmd->add_option("--baseline", a.baseline, "a previous report of the same data to compare against")
      ->check(CLI::ExistingFile)
      ->group("Regression gate (nightly CI)");
  add_gate_options(*cmd, a.gate, "largest bpd increase allowed over the baseline");
  return cmd;
}

ScoreOutcome execute_score(const ScoreCommandArguments& args, const Data* given,
                           const ProgressSink& on_progress) {
  // Parse: every option checked before any work is done.
  auto options = run_options(args.scoring);
  const auto rule = parse_gate_rule(args.gate.rule);
  if (args.gate.max_regression.has_value() != !args.baseline.empty()) {
    throw UsageError(
        "--max-regression: the gate needs both --baseline REPORT.json and --max-regression BPD");
  }
  if (args.max_solve_error && args.check_solve == 0) {
    throw UsageError(
        "--max-solve-error: the gate needs --check-solve N, the samples it measures the error on");
  }
  options.shard = resolve_shard(args.shard, [](const char* name) { return std::getenv(name); });
  if (args.resume && args.per_sample.empty()) {
    throw UsageError(
        "--resume: needs --per-sample FILE.csv, where the samples already done are kept");
  }
  auto inputs = run_inputs(std::span(&args.model, 1), args.scoring);
  inputs.push_back({"--baseline", args.baseline});
  const std::vector<NamedFile> outputs = {
      {"-o", args.scoring.output},
      {"--per-sample", args.per_sample},
      {"--per-sample (its journal)", args.per_sample.empty() ? "" : journal_path(args.per_sample)},
      {"--per-sample (its run identity)",
       args.per_sample.empty() ? "" : identity_path(args.per_sample)},
      {"--html", args.scoring.html},
      {"--junit", args.gate.junit},
      {"--markdown", args.gate.markdown},
      {"--history", args.scoring.history}};
  check_run_outputs(inputs, outputs);

  // Load.
  const auto data = given ? *given : load_scoring_data(args.scoring);
  const auto model = Model::load(args.model, args.scoring.model);

  // The per-sample file: held until the run ends (one run writes a per-sample file at a time),
  // opened once the run's identity is known, and with --resume the rows it already holds.
  std::optional<JournalLock> lock;
  if (!args.per_sample.empty()) lock.emplace(args.per_sample);
  std::optional<SampleCsvWriter> csv;
  const auto open_per_sample = [&](const nlohmann::json& identity) {
    std::vector<SampleResult> done;
    bool append = false;
    if (args.resume) {
      const auto [first, end] = options.shard.range(data.values.size(0));
      if (auto rows =
              resume_journal(args.per_sample, *lock, identity, first, end, args.scoring.quiet)) {
        done = std::move(*rows);
        append = true;
      }
    }
    if (!args.per_sample.empty()) csv.emplace(args.per_sample, identity, append);
    return done;
  };
  const bool writes_per_sample = !args.per_sample.empty();
  if (writes_per_sample) options.resume = open_per_sample;
  options.on_sample = [&](const SampleResult& r) {
    if (csv) csv->write(r);
  };
  Progress progress(Progress::mode_for_stderr(args.scoring.quiet), 0);
  options.on_progress = [&](int64_t done, int64_t total) {
    progress.advance_to(done, total);
    if (on_progress) on_progress(done, total);
  };
  options.target_stderr = args.target_stderr;
  options.check_solve = args.check_solve;
  options.round_trip = args.round_trip;

  // Run.
  auto report = flowlik::run_score(model, data, options);
  progress.finish();
  if (csv) csv->commit();
  if (!args.resume) report.resumed_samples.reset();

  // Gates and outputs.
  const auto& summary = report.summary;
  if (args.target_stderr && !args.scoring.quiet) {
    print_budget_advice(*args.target_stderr, report.budget_advice);
  }
  if (report.check_solve && !args.scoring.quiet && report.check_solve->error.empty()) {
    const auto checked = std::min<int64_t>(args.check_solve, summary.ok);
    if (checked < args.check_solve) {
      fmt::print(stderr,
                 "flowlik: --check-solve {}: the run has {} samples scored ok; checking those {}\n",
                 args.check_solve, checked, checked);
    }
  }
  if (args.gate.max_regression && summary.ok > 0) {
    const auto baseline = read_baseline_report(args.baseline);
    if (baseline.data_sha256 != report.data.sha256) {
      throw DataError(fmt::format("{}: baseline was measured on other data (sha256 {} vs {})",
                                  args.baseline, baseline.data_sha256.substr(0, 12),
                                  report.data.sha256.substr(0, 12)));
    }
    report.gates.push_back(gate_regression(
        fmt::format("{} vs baseline {}", args.model, args.baseline),
        unpaired_difference(summary.bpd, baseline.bpd), *args.gate.max_regression, rule));
  }
  if (args.max_solve_error && report.check_solve) {
    report.gates.push_back(solve_error_gate(*report.check_solve, *args.max_solve_error));
  }
  if (!args.per_sample.empty()) {
    report.per_sample = std::filesystem::absolute(args.per_sample).string();
  }
  RunOutcome outcome;
  outcome.models = {&report};
  outcome.gates = report.gates;
  outcome.report = to_json(report);
  if (summary.ok > 0) outcome.history_rows = {outcome.report};
  outcome.history_model = args.model;
  for (const auto& reporter : make_reporters(args.scoring, args.gate, "score"))
    reporter->write(outcome);
  if (summary.ok == 0 && summary.total > 0) throw all_failed_error(summary.total);
  const int exit_code = gates_exit_code(report.gates);
  return {std::move(report), exit_code};
}

int run_score(const ScoreCommandArguments& args) {
  const auto [report, exit_code] = execute_score(args);
  if (!args.scoring.quiet) {
    print_summary(report);
    if (report.check_solve) fmt::print("  solve      {}\n", describe(*report.check_solve));
    if (report.round_trip) {
      fmt::print("  round trip max |x - decode(encode(x))| {:.3g}, mean {:.3g}, on {} samples\n",
                 report.round_trip->max_abs_error, report.round_trip->mean_abs_error,
                 report.round_trip->samples);
    }
  }
  for (const auto& g : report.gates) {
    fmt::print(stderr, "flowlik: gate {}\n", g.message);
    if (!g.passed) break;
  }
  return exit_code;
}

}  // namespace flowlik::cli
