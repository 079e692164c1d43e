#include "cli/compare_command.h"

#include <fmt/format.h>

#include <cmath>

#include "cli/ci_outputs.h"
#include "cli/exit_codes.h"
#include "cli/progress.h"
#include "cli/reporters.h"
#include "flowlik/run.h"

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

CompareOutcome execute_compare(const CompareArguments& args, const Data* given,
                               const ProgressSink& on_progress) {
  auto options = run_options(args.scoring);
  const auto rule = parse_gate_rule(args.gate.rule);
  const std::vector<NamedFile> outputs = {{"-o", args.scoring.output},
                                          {"--html", args.scoring.html},
                                          {"--junit", args.gate.junit},
                                          {"--markdown", args.gate.markdown},
                                          {"--history", args.scoring.history}};
  check_run_outputs(run_inputs(args.models, args.scoring), outputs);
  const auto data = given ? *given : load_scoring_data(args.scoring);
  std::vector<Model> models;
  for (const auto& path : args.models) models.push_back(Model::load(path, args.scoring.model));

  // The same --seed for every model: each sample gets the same dequantization noise and probes
  // under every model, since both are keyed by (seed, sample index).
  Progress progress(Progress::mode_for_stderr(args.scoring.quiet), 0);
  options.on_progress = [&](int64_t done, int64_t total) {
    progress.advance_to(done, total);
    if (on_progress) on_progress(done, total);
  };
  auto report = flowlik::run_compare(models, data, options);
  progress.finish();

  if (args.gate.max_regression) {
    for (const auto& p : report.paired) {
      if (p.a != 0) continue;
      report.gates.push_back(
          gate_regression(fmt::format("{} vs {}", args.models[p.b], args.models[0]), p.bpd_diff,
                          *args.gate.max_regression, rule));
    }
  }
  RunOutcome outcome;
  for (const auto& m : report.models) outcome.models.push_back(&m);
  outcome.paired = report.paired;
  outcome.gates = report.gates;
  outcome.report = to_json(report);
  for (const auto& model_report : outcome.report["models"])
    outcome.history_rows.push_back(model_report);
  for (const auto& reporter : make_reporters(args.scoring, args.gate, "compare"))
    reporter->write(outcome);

  const int exit_code = gates_exit_code(report.gates);
  return {std::move(report), exit_code};
}

int run_compare(const CompareArguments& args) {
  const auto [report, exit_code] = execute_compare(args);
  if (!args.scoring.quiet) {
    fmt::print("{:>3}  {:<40} {:>10} {:>10} {:>14}\n", "#", "model", "bpd", "stderr", "log-lik");
    for (size_t i = 0; i < report.models.size(); ++i) {
      const auto& s = report.models[i].summary;
      fmt::print("{:>3}  {:<40} {:>10.4f} {:>10.4f} {:>14.4f}\n", i, args.models[i], s.bpd.mean,
                 s.bpd.std_error, s.log_likelihood.mean);
    }
    fmt::print("\n{:>8} {:>12} {:>16} {:>26}\n", "pair", "Δbpd (b−a)", "paired stderr",
               "95% interval");
    for (const auto& p : report.paired) {
      fmt::print("{:>4} → {} {:>+12.5f} {:>16.5f}     [{:+.5f}, {:+.5f}]\n", p.a, p.b,
                 p.bpd_diff.mean, p.bpd_diff.std_error, p.bpd_diff.ci_low, p.bpd_diff.ci_high);
    }
  }
  for (const auto& g : report.gates) {
    fmt::print(stderr, "flowlik: gate {}\n", g.message);
  }
  return exit_code;
}

}  // namespace flowlik::cli
