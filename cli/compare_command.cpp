#include "cli/compare_command.h"

#include <fmt/format.h>

#include <cmath>

#include "cli/ci_outputs.h"
#include "cli/exit_codes.h"
#include "cli/reporters.h"
#include "likelihood/comparison.h"
#include "likelihood/dataset.h"
#include "likelihood/file_digest.h"
#include "likelihood/history.h"
#include "likelihood/report.h"
#include "likelihood/statistics.h"

namespace flowlik::cli {
CLI::App* add_compare_command(CLI::App& app, CompareArguments& a) {
  auto* cmd = app.add_subcommand(
      "compare",
      "score two or more models on the same data with common random numbers; paired differences");
  cmd->add_option("models", a.models,
                  "model files (.pt2 packages or TorchScript modules), earliest first")
      ->required()
      ->expected(2, -1)
      ->check(CLI::ExistingFile);
  add_scoring_options(*cmd, a.scoring);
  add_gate_options(*cmd, a.gate,
                   "largest paired bpd increase allowed of each model over the first");
  return cmd;
}

int run_compare(const CompareArguments& args) {
  const auto parsed = parse_run_setup(args.scoring);
  const auto rule = parse_gate_rule(args.gate.rule);
  const std::vector<NamedFile> outputs = {{"-o", args.scoring.output},
                                          {"--html", args.scoring.html},
                                          {"--junit", args.gate.junit},
                                          {"--markdown", args.gate.markdown},
                                          {"--history", args.scoring.history}};
  check_run_outputs(run_inputs(args.models, args.scoring), outputs);
  const Dataset data = load_scoring_data(args.scoring);
  const auto data_sha256 = sha256_file(data.path);

  // Every model loaded, and checked to see the data as the first does, before any is scored.
  std::vector<PreparedModel> models;
  for (const auto& path : args.models) {
    models.push_back(prepare_for_run(path, args.scoring, data));
    check_same_data_view(models.front(), models.back());
  }
  std::string rows_chosen;
  const auto setup = fit_exact_rows_to_memory(args.scoring, parsed, models, &rows_chosen);

  // The same --seed for every model: each sample gets the same dequantization noise and probes
  // under every model, since both are keyed by (seed, sample index).
  std::vector<ModelRun> runs;
  for (size_t i = 0; i < models.size(); ++i) {
    if (!args.scoring.quiet) fmt::print(stderr, "model {}: {}\n", i, args.models[i]);
    runs.push_back(score_with_progress(models[i], args.scoring, setup, data, data_sha256,
                                       all_indices(data), {}, {}));
    if (runs.back().score.summary.ok == 0) throw all_failed_error(runs.back().score.summary.total);
  }

  std::vector<PairedDifference> paired;
  for (size_t a = 0; a < runs.size(); ++a) {
    for (size_t b = a + 1; b < runs.size(); ++b) {
      paired.push_back(paired_difference(runs[a].results, runs[b].results, static_cast<int64_t>(a),
                                         static_cast<int64_t>(b)));
    }
  }
  std::vector<GateResult> gates;
  if (args.gate.max_regression) {
    for (const auto& p : paired) {
      if (p.a != 0) continue;
      gates.push_back(gate_regression(fmt::format("{} vs {}", args.models[p.b], args.models[0]),
                                      p.bpd_diff, *args.gate.max_regression, rule));
    }
  }

  nlohmann::json report = {
      {"schema_version", kReportSchemaVersion},
      {"tool", {{"name", "flowlik"}, {"version", FLOWLIK_VERSION}, {"command", "compare"}}},
      {"common_random_numbers",
       "every model saw the same dequantization noise and probes for each sample "
       "(seed " +
           std::to_string(args.scoring.score.seed) + ")"}};
  for (const auto& run : runs) report["models"].push_back(make_score_report(run.score));
  if (!rows_chosen.empty()) report["exact_trace_rows"] = rows_chosen;
  if (!args.scoring.protocol.empty()) report["protocol"] = protocol_json(args.scoring);
  for (const auto& p : paired) {
    report["paired"].push_back(
        {{"a", p.a},
         {"b", p.b},
         {"description", "b minus a, over samples scored ok under both"},
         {"log_likelihood_diff", mean_json(p.log_likelihood_diff)},
         {"bpd_diff", mean_json(p.bpd_diff)},
         {"bpd_diff_stderr_by_source",
          {{"total", number_or_null(p.bpd_diff.std_error)},
           {"data", number_or_null(p.data_std_error_bpd)},
           {"dequantization", number_or_null(p.dequant_std_error_bpd)},
           {"estimator_upper_bound", number_or_null(p.estimator_std_error_bpd_upper)},
           {"how",
            "dequantization: per sample the variance between draws of the per-draw "
            "difference / M, sqrt(sum) / n (null with one draw); estimator: the two "
            "models' parts in quadrature, an upper bound since their probes are common; "
            "data: total less dequantization, in quadrature"}}}});
  }
  for (const auto& g : gates) {
    report["gates"].push_back(gate_json(g));
  }
  RunOutcome outcome;
  for (size_t i = 0; i < runs.size(); ++i) {
    outcome.models.push_back({args.models[i], &runs[i].score.summary, &runs[i].results, ""});
  }
  outcome.paired = paired;
  outcome.gates = gates;
  outcome.report = report;
  for (const auto& model_report : report["models"]) outcome.history_rows.push_back(model_report);
  for (const auto& reporter : make_reporters(args.scoring, args.gate, "compare"))
    reporter->write(outcome);

  if (!args.scoring.quiet) {
    fmt::print("{:>3}  {:<40} {:>10} {:>10} {:>14}\n", "#", "model", "bpd", "stderr", "log-lik");
    for (size_t i = 0; i < runs.size(); ++i) {
      const auto& s = runs[i].score.summary;
      fmt::print("{:>3}  {:<40} {:>10.4f} {:>10.4f} {:>14.4f}\n", i, args.models[i], s.bpd.mean,
                 s.bpd.std_error, s.log_likelihood.mean);
    }
    fmt::print("\n{:>8} {:>12} {:>16} {:>26}\n", "pair", "Δbpd (b−a)", "paired stderr",
               "95% interval");
    for (const auto& p : paired) {
      fmt::print("{:>4} → {} {:>+12.5f} {:>16.5f}     [{:+.5f}, {:+.5f}]\n", p.a, p.b,
                 p.bpd_diff.mean, p.bpd_diff.std_error, p.bpd_diff.ci_low, p.bpd_diff.ci_high);
    }
  }
  for (const auto& g : gates) {
    fmt::print(stderr, "flowlik: gate {}\n", g.message);
  }
  for (const auto& g : gates) {
    if (!g.passed) return static_cast<int>(ExitCode::kGateFailed);
  }
  return static_cast<int>(ExitCode::kOk);
}

}  // namespace flowlik::cli
