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
#include "cli/reporters.h"
#include "cli/shard.h"
#include "io/report_reader.h"
#include "io/sample_csv.h"
#include "likelihood/comparison.h"
#include "likelihood/dataset.h"
#include "likelihood/file_digest.h"
#include "likelihood/history.h"
#include "likelihood/sample.h"
#include "likelihood/solve_check.h"
#include "likelihood/statistics.h"

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

// --target-stderr: a first pass on a seeded subset estimates the three parts of the variance of the
// mean bpd, per sample (shared/MATH.md section 7), and cheapest_budget finds the samples n, draws M
// and probes K that reach the target at least cost (K = 1 for the exact trace, whose cost does not
// depend on it), with n at most the dataset's size.
nlohmann::json budget_advice(const PreparedModel& model, const ScoreArguments& args,
                             const ScoreSetup& setup, const Dataset& data, double target) {
  constexpr int64_t kPilotSamples = 32;
  constexpr int64_t kMaxDraws = 64;
  constexpr int64_t kMaxProbes = 64;
  const int64_t n0 = std::min<int64_t>(kPilotSamples, data.size);
  // Evenly spread over the dataset from an offset set by the seed: the same subset for the same
  // seed.
  const auto subset = spread_subset(all_indices(data), n0, args.score.seed);
  Preprocessing pre = *model.preprocessing;
  const bool discrete = pre.discrete;
  if (discrete) pre.draws = std::max<int64_t>(pre.draws, 2);
  TraceSpec spec = setup.trace_spec;
  const bool hutchinson = spec.method == Trace::kHutchinson;
  if (hutchinson) spec.probes = std::max<int64_t>(spec.probes, 2);
  const auto trace = make_trace_estimator(spec);
  std::vector<SampleResult> results;
  score_dataset(*model.field, *trace, data, pre, ScoreSpec{setup.solver, args.score.batch_size},
                subset, [&](const SampleResult& r) { results.push_back(r); });
  const auto pilot = summarize_results(results, data.dim);
  nlohmann::json advice = {
      {"target_stderr_bpd", target},
      {"pilot",
       {{"samples", n0},
        {"draws", pre.draws},
        {"probes", hutchinson ? spec.probes : 0},
        {"ok", pilot.ok},
        {"stderr_by_source", metrics_json(pilot)["stderr_by_source"]["bpd"]}}}};
  if (pilot.ok < 2) {
    advice["advice"] = nullptr;
    advice["note"] = "fewer than two pilot samples were scored ok; no advice";
    return advice;
  }
  const double n = static_cast<double>(pilot.ok);
  const auto per_sample = [&](double se) { return std::isfinite(se) ? se * se * n : 0.0; };
  // Per-sample variances at the pilot's M0 and K0, scaled to one draw and one probe.
  const double m0 = static_cast<double>(pre.draws);
  const double k0 = hutchinson ? static_cast<double>(spec.probes) : 1.0;
  const double s_data = per_sample(pilot.data_std_error_bpd);
  const double s_draw = discrete ? per_sample(pilot.dequant_std_error_bpd) * m0 : 0.0;
  const double s_probe = hutchinson ? per_sample(pilot.estimator_std_error_bpd) * m0 * k0 : 0.0;
  const auto best = cheapest_budget({s_data, s_draw, s_probe}, target, data.size,
                                    discrete ? kMaxDraws : 1, hutchinson ? kMaxProbes : 1);
  advice["per_sample_variance_bpd2"] = {
      {"data", s_data}, {"one_draw", s_draw}, {"one_probe", s_probe}};
  if (!best) {
    advice["advice"] = nullptr;
    advice["note"] = fmt::format(
        "unreachable with the {} samples of the data: the data's own part alone gives a standard "
        "error of "
        "{:.4g} bpd over all of them",
        data.size, std::sqrt(s_data / static_cast<double>(data.size)));
  } else {
    advice["advice"] = {{"samples", best->samples},
                        {"draws", best->draws},
                        {"probes", hutchinson ? best->probes : 0},
                        {"cost_rows_per_evaluation_step", best->cost}};
    advice["note"] =
        "cost counts rows of function evaluations (samples x draws x probes); the number of "
        "evaluations per solve is taken as the same for every choice";
  }
  return advice;
}

// One line for the summary, Markdown and HTML; empty without --check-solve.
std::string describe_solve_check(const nlohmann::json& check) {
  if (check.is_null()) return "";
  if (check.contains("error")) return "not checked: " + check["error"].get<std::string>();
  if (check["samples"].get<int64_t>() == 0) return "not checked: no sample could be re-solved";
  const auto& ref = check["reference"];
  return fmt::format(
      "{:.3g} nats mean |error|, {:.3g} max, on {} samples (effect on the mean bpd {:+.2g}), "
      "against float64 {} at rtol {:.3g}",
      check["mean_abs_error_nats"].get<double>(), check["max_abs_error_nats"].get<double>(),
      check["samples"].get<int64_t>(), check["mean_bpd_effect"].get<double>(),
      ref["solver"].get<std::string>(), ref["rtol"].get<double>());
}

// --check-solve N: the run's model loaded again in float64 and N of its ok samples re-solved at a
// tolerance 100 times tighter (likelihood/solve_check.h). A model that cannot be loaded in float64
// (a package compiled for float32 only) gives an "error" entry instead, and fails a
// --max-solve-error gate.
nlohmann::json solve_check_report(const ScoreCommandArguments& args, const ModelRun& run,
                                  const ScoreSetup& setup, const Dataset& data,
                                  std::optional<GateResult>* gate) {
  nlohmann::json out = {{"samples_requested", args.check_solve}};
  auto fail_gate = [&](const std::string& why) {
    if (!args.max_solve_error) return;
    GateResult g;
    g.name = "solve error";
    g.threshold = *args.max_solve_error;
    g.passed = false;
    g.message = fmt::format("solve error: FAILED, not measured ({})", why);
    *gate = g;
  };
  ScoreArguments reference_args = args.scoring;
  reference_args.model.dtype = Dtype::kFloat64;
  try {
    const auto reference_model = prepare_for_run(args.model, reference_args, data);
    // A float64 row takes about twice the memory of a float32 one: the reference's own rows.
    const auto reference_setup =
        fit_exact_rows_to_memory(reference_args, setup, std::span(&reference_model, 1));
    const auto reference = reference_solver(setup.solver);
    const auto samples = pick_check_samples(run.results, args.check_solve, args.scoring.score.seed);
    if (static_cast<int64_t>(samples.size()) < args.check_solve && !args.scoring.quiet) {
      fmt::print(stderr,
                 "flowlik: --check-solve {}: the run has {} samples scored ok; checking those {}\n",
                 args.check_solve, samples.size(), samples.size());
    }
    const auto check =
        check_solve(run.results, samples, *reference_model.field, *reference_setup.trace, data,
                    *reference_model.preprocessing, reference, args.scoring.score.batch_size);
    nlohmann::json ref = {{"solver", to_string(reference.kind)},
                          {"rtol", reference.rtol},
                          {"atol", reference.atol},
                          {"error_norm", to_string(reference.norm)},
                          {"dtype", "float64"}};
    out.update(
        {{"reference", ref},
         {"samples", check.samples},
         {"mean_abs_error_nats", number_or_null(check.mean_abs_error_nats)},
         {"max_abs_error_nats", number_or_null(check.max_abs_error_nats)},
         {"mean_error_nats", number_or_null(check.mean_error_nats)},
         {"mean_abs_error_bpd", number_or_null(check.mean_abs_error_bpd)},
         {"mean_bpd_effect", number_or_null(check.mean_bpd_effect)},
         {"how",
          "samples re-solved in float64 at a tolerance 100 times tighter, with the same noise and "
          "probes; error = the run's log-likelihood minus the reference's"}});
    if (args.max_solve_error) {
      if (check.samples == 0) {
        fail_gate("no sample could be re-solved");
      } else {
        GateResult g;
        g.name = "solve error";
        g.regression = check.mean_abs_error_bpd;
        g.ci_low = check.mean_abs_error_bpd;
        g.threshold = *args.max_solve_error;
        g.passed = check.mean_abs_error_bpd <= *args.max_solve_error;
        g.message = fmt::format(
            "solve error: {} mean |error| {:.3g} bpd on {} samples against a limit of {:.3g}",
            g.passed ? "passed," : "FAILED,", check.mean_abs_error_bpd, check.samples,
            *args.max_solve_error);
        *gate = g;
      }
    }
  } catch (const Error& e) {
    out["error"] = fmt::format("no float64 reference: {}", e.what());
    fail_gate(out["error"].get<std::string>());
  }
  return out;
}

// --round-trip: every sample of this run encoded to the prior and decoded back
// (likelihood/sample.h).
nlohmann::json round_trip_report(const PreparedModel& model, const ScoreSetup& setup,
                                 const Dataset& data, std::span<const int64_t> indices,
                                 const ScoreArguments& args) {
  const auto trip = round_trip(*model.field, data, *model.preprocessing,
                               ScoreSpec{setup.solver, args.score.batch_size}, indices);
  return {{"samples", trip.samples},
          {"failed", trip.failed},
          {"max_abs_error", number_or_null(trip.max_abs_error)},
          {"mean_abs_error", number_or_null(trip.mean_abs_error)},
          {"how",
           "each sample's model-space input (dequantization draw 0) solved to the prior and back "
           "to the data with this run's solver and tolerances; max: the largest |x - "
           "decode(encode(x))| over every value, mean: over values and samples"}};
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

int run_score(const ScoreCommandArguments& args) {
  // Parse: every option checked before any work is done.
  const auto parsed = parse_run_setup(args.scoring);
  const auto rule = parse_gate_rule(args.gate.rule);
  if (args.gate.max_regression.has_value() != !args.baseline.empty()) {
    throw UsageError(
        "--max-regression: the gate needs both --baseline REPORT.json and --max-regression BPD");
  }
  if (args.max_solve_error && args.check_solve == 0) {
    throw UsageError(
        "--max-solve-error: the gate needs --check-solve N, the samples it measures the error on");
  }
  const Shard shard = resolve_shard(args.shard, [](const char* name) { return std::getenv(name); });
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
  const Dataset data = load_scoring_data(args.scoring);
  const auto data_sha256 = sha256_file(data.path);
  const auto model = prepare_for_run(args.model, args.scoring, data);
  std::string rows_chosen;
  const auto setup =
      fit_exact_rows_to_memory(args.scoring, parsed, std::span(&model, 1), &rows_chosen);
  const auto [first, end] = shard.range(data.size);
  auto identity = run_identity(model, setup, data, data_sha256);
  identity["shard"] = {
      {"index", shard.index}, {"count", shard.count}, {"first", first}, {"end", end}};

  nlohmann::json advice;
  if (args.target_stderr) {
    advice = budget_advice(model, args.scoring, setup, data, *args.target_stderr);
    if (!args.scoring.quiet) {
      if (advice["advice"].is_null()) {
        fmt::print(stderr, "flowlik: --target-stderr {}: {}\n", *args.target_stderr,
                   advice["note"].get<std::string>());
      } else {
        const auto& a = advice["advice"];
        // --probes only where it means something: the exact trace has none.
        const auto probes = a["probes"].get<int64_t>();
        fmt::print(stderr,
                   "flowlik: --target-stderr {}: advice: {} samples, --dequant-draws {}{} (from a "
                   "first pass on {} samples; this run keeps its own options)\n",
                   *args.target_stderr, a["samples"].get<int64_t>(), a["draws"].get<int64_t>(),
                   probes > 0 ? fmt::format(", --probes {}", probes) : std::string(),
                   advice["pilot"]["samples"].get<int64_t>());
      }
    }
  }

  std::vector<SampleResult> done;
  bool append = false;
  // Held until the run ends: one run writes a per-sample file at a time.
  std::optional<JournalLock> lock;
  if (!args.per_sample.empty()) lock.emplace(args.per_sample);
  if (args.resume) {
    if (auto rows =
            resume_journal(args.per_sample, *lock, identity, first, end, args.scoring.quiet)) {
      done = std::move(*rows);
      append = true;
    }
  }
  std::vector<int64_t> todo;
  {
    std::vector<bool> finished(static_cast<size_t>(end - first), false);
    for (const auto& r : done) finished[static_cast<size_t>(r.index - first)] = true;
    for (int64_t i = first; i < end; ++i) {
      if (!finished[static_cast<size_t>(i - first)]) todo.push_back(i);
    }
  }
  std::optional<SampleCsvWriter> csv;
  if (!args.per_sample.empty()) csv.emplace(args.per_sample, identity, append);

  // Run.
  const auto resumed = static_cast<int64_t>(done.size());
  auto run = score_with_progress(model, args.scoring, setup, data, data_sha256, todo,
                                 std::move(done), [&](const SampleResult& r) {
                                   if (csv) csv->write(r);
                                 });
  if (csv) csv->commit();

  // Report.
  const auto& summary = run.score.summary;
  std::vector<GateResult> gates;
  if (args.gate.max_regression && summary.ok > 0) {
    const auto baseline = read_baseline_report(args.baseline);
    if (baseline.data_sha256 != run.score.data_sha256) {
      throw DataError(fmt::format("{}: baseline was measured on other data (sha256 {} vs {})",
                                  args.baseline, baseline.data_sha256.substr(0, 12),
                                  run.score.data_sha256.substr(0, 12)));
    }
    const auto& base = baseline.bpd;
    gates.push_back(gate_regression(fmt::format("{} vs baseline {}", args.model, args.baseline),
                                    unpaired_difference(summary.bpd, base),
                                    *args.gate.max_regression, rule));
  }
  nlohmann::json solve_check;
  if (args.check_solve > 0 && summary.ok > 0) {
    std::optional<GateResult> solve_gate;
    solve_check = solve_check_report(args, run, setup, data, &solve_gate);
    if (solve_gate) gates.push_back(*solve_gate);
  }
  nlohmann::json round_trip;
  if (args.round_trip) round_trip = round_trip_report(model, setup, data, todo, args.scoring);
  auto report = make_score_report(run.score);
  if (!round_trip.is_null()) report["round_trip"] = round_trip;
  if (!rows_chosen.empty()) report["exact_trace_rows"] = rows_chosen;
  if (!args.scoring.protocol.empty()) report["protocol"] = protocol_json(args.scoring);
  if (!solve_check.is_null()) report["check_solve"] = solve_check;
  if (shard.count > 1) report["shard"] = shard.json(data.size);
  if (!args.per_sample.empty()) {
    report["per_sample"] = std::filesystem::absolute(args.per_sample).string();
  }
  if (args.resume) report["resumed_samples"] = resumed;
  if (!advice.is_null()) report["budget_advice"] = advice;
  for (const auto& g : gates) {
    report["gates"].push_back(gate_json(g));
  }
  RunOutcome outcome;
  outcome.models = {
      {args.model, &run.score.summary, &run.results, describe_solve_check(solve_check)}};
  outcome.gates = gates;
  outcome.report = report;
  if (summary.ok > 0) outcome.history_rows = {report};
  outcome.history_model = args.model;
  for (const auto& reporter : make_reporters(args.scoring, args.gate, "score"))
    reporter->write(outcome);
  if (summary.ok == 0 && summary.total > 0) throw all_failed_error(summary.total);
  if (!args.scoring.quiet) {
    print_summary(run.score);
    if (!solve_check.is_null()) fmt::print("  solve      {}\n", describe_solve_check(solve_check));
    if (!round_trip.is_null()) {
      fmt::print(
          "  round trip max |x - decode(encode(x))| {:.3g}, mean {:.3g}, on {} samples\n",
          round_trip["max_abs_error"].is_null() ? NAN : round_trip["max_abs_error"].get<double>(),
          round_trip["mean_abs_error"].is_null() ? NAN : round_trip["mean_abs_error"].get<double>(),
          round_trip["samples"].get<int64_t>());
    }
  }
  for (const auto& g : gates) {
    fmt::print(stderr, "flowlik: gate {}\n", g.message);
    if (!g.passed) return static_cast<int>(ExitCode::kGateFailed);
  }
  return static_cast<int>(ExitCode::kOk);
}

}  // namespace flowlik::cli
