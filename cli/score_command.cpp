#include "cli/score_command.h"

#include <fmt/format.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "cli/ci_outputs.h"
#include "cli/html_report.h"
#include "likelihood/history.h"
#include "cli/sample_csv.h"
#include "cli/shard.h"
#include "likelihood/comparison.h"
#include "likelihood/dataset.h"
#include "likelihood/error.h"

namespace flowlik::cli {
namespace {

// The baseline's bpd as a mean estimate to subtract: checked to be a report of the same data.
MeanEstimate read_baseline_bpd(const std::string& path, const ScoreRun& now) {
  std::ifstream in(path);
  if (!in) throw DataError(fmt::format("{}: cannot open baseline report", path));
  nlohmann::json report;
  try {
    report = nlohmann::json::parse(in);
    MeanEstimate bpd;
    bpd.mean = report.at("metrics").at("bpd").at("mean").get<double>();
    const auto& se = report.at("metrics").at("bpd").at("stderr");
    bpd.std_error = se.is_number() ? se.get<double>() : 0.0;
    bpd.count = report.at("metrics").at("bpd").at("n").get<int64_t>();
    const auto sha = report.at("data").at("sha256").get<std::string>();
    if (sha != now.data_sha256) {
      throw DataError(fmt::format("{}: baseline was measured on other data (sha256 {} vs {})", path,
                                  sha.substr(0, 12), now.data_sha256.substr(0, 12)));
    }
    return bpd;
  } catch (const nlohmann::json::exception& e) {
    throw DataError(fmt::format("{}: not a flowlik score report ({})", path, e.what()));
  }
}

// The rows of an interrupted run's per-sample file, checked to belong to this shard; a row cut off by the
// interruption is dropped (and its sample scored again), anything else malformed is an error.
std::vector<SampleResult> previous_results(const std::string& path, int64_t first, int64_t end, bool quiet) {
  auto csv = read_sample_csv(path);
  std::vector<bool> seen(static_cast<size_t>(end - first), false);
  for (const auto& r : csv.rows) {
    if (r.index < first || r.index >= end) {
      throw DataError(fmt::format("{}: holds sample {}, outside this run's samples [{}, {})", path, r.index,
                                  first, end));
    }
    if (seen[static_cast<size_t>(r.index - first)]) {
      throw DataError(fmt::format("{}: holds sample {} twice", path, r.index));
    }
    seen[static_cast<size_t>(r.index - first)] = true;
  }
  if (csv.partial_tail) {
    if (!quiet) {
      fmt::print(stderr, "flowlik: {}: dropping a last row cut off mid-write; its sample is scored again\n",
                 path);
    }
    std::filesystem::resize_file(path, csv.complete_bytes);
  }
  if (!quiet) fmt::print(stderr, "flowlik: resuming: {} samples already in {}\n", csv.rows.size(), path);
  return std::move(csv.rows);
}

}  // namespace

CLI::App* add_score_command(CLI::App& app, ScoreCommandArguments& a) {
  auto* cmd = app.add_subcommand("score", "log-likelihood and bits/dim of a dataset under a model");
  cmd->add_option("model", a.model, "TorchScript model")->required()->check(CLI::ExistingFile);
  add_scoring_options(*cmd, a.scoring);
  cmd->add_option("--per-sample", a.per_sample, "write per-sample results here (CSV), as each completes");
  cmd->add_option("--shard", a.shard,
                  "score block I of N (0 <= I < N); default from SLURM_ARRAY_TASK_ID/COUNT or RANK/WORLD_SIZE");
  cmd->add_flag("--resume", a.resume, "keep the samples already in --per-sample and score the rest");
  cmd->add_option("--baseline", a.baseline, "a previous report of the same data to compare against")
      ->check(CLI::ExistingFile)
      ->group("Regression gate (nightly CI)");
  add_gate_options(*cmd, a.gate, "largest bpd increase allowed over the baseline");
  return cmd;
}

int run_score(const ScoreCommandArguments& args) {
  // Parse: every option checked before any work is done.
  const auto setup = parse_run_setup(args.scoring);
  const auto rule = parse_gate_rule(args.gate.rule);
  if (args.gate.max_regression.has_value() != !args.baseline.empty()) {
    throw UsageError("--max-regression: the gate needs both --baseline REPORT.json and --max-regression BPD");
  }
  const Shard shard = resolve_shard(args.shard, [](const char* name) { return std::getenv(name); });
  if (args.resume && args.per_sample.empty()) {
    throw UsageError("--resume: needs --per-sample FILE.csv, where the samples already done are kept");
  }
  const Dataset data = load_scoring_data(args.scoring);
  const auto [first, end] = shard.range(data.size);
  auto report_file = open_report(args.scoring.output);
  std::vector<SampleResult> done;
  if (args.resume && std::filesystem::exists(args.per_sample)) {
    done = previous_results(args.per_sample, first, end, args.scoring.quiet);
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
  if (!args.per_sample.empty()) csv.emplace(args.per_sample, !done.empty());

  // Run.
  const auto resumed = static_cast<int64_t>(done.size());
  auto run = score_model(args.model, args.scoring, setup, data, todo, std::move(done),
                         [&](const SampleResult& r) {
                           if (csv) csv->write(r);
                         });

  // Report.
  std::vector<GateResult> gates;
  if (args.gate.max_regression) {
    const auto base = read_baseline_bpd(args.baseline, run.score);
    // Unpaired: the baseline's per-sample values are not at hand, so the errors add in quadrature.
    MeanEstimate regression;
    regression.mean = run.score.summary.bpd.mean - base.mean;
    regression.std_error = std::hypot(run.score.summary.bpd.std_error, base.std_error);
    regression.ci_low = regression.mean - 1.96 * regression.std_error;
    regression.ci_high = regression.mean + 1.96 * regression.std_error;
    gates.push_back(gate_regression(fmt::format("{} vs baseline {}", args.model, args.baseline),
                                    regression, *args.gate.max_regression, rule));
  }
  auto report = make_score_report(run.score);
  if (shard.count > 1) {
    report["shard"] = {{"index", shard.index}, {"count", shard.count}, {"source", shard.source},
                       {"first", first}, {"end", end}};
  }
  if (!args.per_sample.empty()) {
    report["per_sample"] = std::filesystem::absolute(args.per_sample).string();
  }
  if (args.resume) report["resumed_samples"] = resumed;
  for (const auto& g : gates) {
    report["gates"].push_back(gate_json(g));
  }
  if (report_file) write_report(*report_file, args.scoring.output, report);
  if (!args.scoring.history.empty()) append_history(args.scoring.history, "score", report);
  if (!args.scoring.html.empty()) {
    const auto history = args.scoring.history.empty() ? std::vector<HistoryRow>{}
                                                      : read_history(args.scoring.history, args.model);
    write_html_report(args.scoring.html, {{args.model, &run.score.summary, &run.results}}, {}, {}, gates,
                      history);
  }
  if (!args.gate.junit.empty()) write_junit(args.gate.junit, gates);
  if (!args.gate.markdown.empty()) {
    write_markdown(args.gate.markdown, {{args.model, &run.score.summary}}, {}, gates);
  }
  if (!args.scoring.quiet) print_summary(run.score);
  for (const auto& g : gates) {
    fmt::print(stderr, "flowlik: gate {}\n", g.message);
    if (!g.passed) return static_cast<int>(ExitCode::kGateFailed);
  }
  return static_cast<int>(ExitCode::kOk);
}

}  // namespace flowlik::cli
