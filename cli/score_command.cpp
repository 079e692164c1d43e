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
#include "flowlik/per_sample.h"
#include "flowlik/run.h"

namespace flowlik::cli {
namespace {

// One line on stderr for --target-stderr's advice.
void print_budget_advice(const BudgetAdvice& advice) {
  const auto target = advice.target_stderr_bpd;
  if (!advice.advice) {
    fmt::print(stderr, "flowlik: --target-stderr {}: {}\n", target, advice.note);
    return;
  }
  const auto& a = *advice.advice;
  // --probes only where it means something: the exact trace has none.
  fmt::print(stderr,
             "flowlik: --target-stderr {}: advice: {} samples, --dequant-draws {}{} (from a first "
             "pass on {} samples; this run keeps its own options)\n",
             target, a.samples, a.draws,
             a.probes > 0 ? fmt::format(", --probes {}", a.probes) : std::string(),
             advice.pilot.samples);
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
  std::optional<PerSampleFile> per_sample;
  if (!args.per_sample.empty()) {
    per_sample.emplace(args.per_sample);
    options.resume = [&](const nlohmann::json& identity) {
      return per_sample->open(identity, args.resume, [&](const std::string& line) {
        if (!args.scoring.quiet) fmt::print(stderr, "flowlik: {}\n", line);
      });
    };
  }
  options.on_sample = [&](const SampleResult& r) {
    if (per_sample) per_sample->write(r);
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
  if (per_sample) per_sample->commit();
  if (!args.resume) report.resumed_samples.reset();

  // Gates and outputs.
  const auto& summary = report.summary;
  if (report.budget_advice && !args.scoring.quiet) {
    print_budget_advice(*report.budget_advice);
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
    report.gates.push_back(
        gate_against_baseline(report, args.baseline, *args.gate.max_regression, rule,
                              fmt::format("{} vs baseline {}", args.model, args.baseline)));
  }
  if (args.max_solve_error && report.check_solve) {
    report.gates.push_back(gate_solve_error(*report.check_solve, *args.max_solve_error));
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
  check_some_scored(summary);
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
