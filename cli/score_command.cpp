#include "cli/score_command.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <numeric>
#include <vector>

#include "cli/contract_options.h"
#include "cli/progress.h"
#include "cli/sample_writer.h"
#include "cli/tensor_options.h"
#include "estimators/trace_factory.h"
#include "likelihood/dataset.h"
#include "likelihood/error.h"
#include "likelihood/file_digest.h"
#include "likelihood/report.h"
#include "likelihood/score.h"

namespace flowlik::cli {
namespace {

// The range of values each map produces, for refusing continuous data that the model never saw.
std::optional<std::pair<double, double>> scale_range(const std::string& scale) {
  if (scale == "unit") return std::pair{0.0, 1.0};
  if (scale == "centered") return std::pair{-1.0, 1.0};
  return std::nullopt;
}

// Turns the data type, --levels/--scale and the contract's `data` field into the preprocessing in effect,
// or says what is missing. Options override the manifest.
Preprocessing resolve_preprocessing(const ScoreArguments& args, const Dataset& data,
                                    const Contract& contract) {
  Preprocessing pre;
  pre.seed = args.seed;
  if (!data.is_discrete()) {
    if (contract.data_scale && !args.scale) {
      if (const auto range = scale_range(*contract.data_scale)) {
        const double lo = data.values.min().item<double>();
        const double hi = data.values.max().item<double>();
        if (lo < range->first || hi > range->second) {
          throw DataError(fmt::format(
              "{}: values span [{}, {}], outside [{}, {}] of the data scale '{}' the model was trained "
              "on ({})",
              data.path, lo, hi, range->first, range->second, *contract.data_scale,
              contract.sources.at("data")));
        }
      }
    }
    if (args.levels || args.scale) {
      throw UsageError(fmt::format(
          "--levels and --scale apply to discrete (uint8) data; {} holds {} values, scored as given",
          data.path, to_string(data.dtype)));
    }
    return pre;
  }
  const auto scale = args.scale ? args.scale : contract.data_scale;
  if (!scale) {
    throw UsageError(fmt::format(
        "--scale: {} holds discrete uint8 data; say how it maps to the model's input with --scale "
        "unit|centered|logit[:lambda]",
        data.path));
  }
  pre.discrete = true;
  pre.levels = args.levels.value_or(contract.data_levels.value_or(256));
  pre.levels_source = args.levels ? "option --levels"
                      : contract.data_levels ? contract.sources.at("data")
                                             : "default (uint8 data)";
  pre.scale_source = args.scale ? "option --scale" : contract.sources.at("data");
  if (pre.levels < 2 || pre.levels > 256) {
    throw UsageError(fmt::format("--levels: must be in [2, 256] for uint8 data, got {}", pre.levels));
  }
  parse_scale(*scale, pre);
  check_levels(data, pre.levels,
               args.levels ? "--levels" : fmt::format("the levels of {}", pre.levels_source));
  return pre;
}

nlohmann::json options_json(const ScoreArguments& args, const SolverSpec& solver,
                            const TraceSpec& trace, int threads) {
  nlohmann::json o = {
      {"solver", to_string(solver.kind)},
      {"trace", trace.method},
      {"seed", args.seed},
      {"dtype", args.dtype},
      {"device", args.device},
      {"batch_size", args.batch_size},
      {"threads", threads},
      {"max_nfe", solver.max_nfe},
      {"flow_time_range", {solver.t_prior, solver.t_data}},
  };
  if (is_adaptive(solver.kind)) {
    o["rtol"] = solver.rtol;
    o["atol"] = solver.atol;
  } else {
    o["steps"] = solver.steps;
  }
  if (trace.method == "hutchinson") {
    o["noise"] = trace.noise;
    o["probes"] = trace.probes;
  } else {
    o["max_rows"] = trace.max_rows;
  }
  return o;
}

void print_summary(const ScoreRun& run) {
  const auto& s = run.summary;
  const auto& pre = *run.preprocessing;
  fmt::print("flowlik score: {} on {} ({} samples, D = {})\n", run.field->path(), run.data->path,
             run.data->size, run.data->dim);
  if (pre.discrete) {
    fmt::print("  data       discrete, {} levels [{}], uniform dequantization (seed {}), scale {} [{}]\n",
               pre.levels, pre.levels_source, pre.seed, describe_scale(pre), pre.scale_source);
  } else {
    fmt::print("  data       continuous, scored as given\n");
  }
  fmt::print("  bpd        {:.4f} +- {:.4f} (stderr)  95% CI [{:.4f}, {:.4f}]\n", s.bpd.mean,
             s.bpd.std_error, s.bpd.ci_low, s.bpd.ci_high);
  fmt::print("  log-lik    {:.4f} +- {:.4f} nats per sample\n", s.log_likelihood.mean,
             s.log_likelihood.std_error);
  if (std::isfinite(s.estimator_std_error_bpd)) {
    fmt::print("  estimator  +- {:.4f} bpd (Hutchinson's own standard error, apart from the data's)\n",
               s.estimator_std_error_bpd);
  }
  fmt::print("  NFE        mean {:.1f}, max {}\n", s.nfe_mean, s.nfe_max);
  fmt::print("  samples    {} ok, {} excluded (failed or not finite)\n", s.ok, s.total - s.ok);
  fmt::print("  time       {:.2f} s\n", run.wall_seconds);
}

// Opened before any work is done, so an unwritable path fails at once rather than after hours of scoring.
std::optional<std::ofstream> open_report(const std::string& path) {
  if (path.empty()) return std::nullopt;
  std::ofstream out(path);
  if (!out) {
    throw OutputError(fmt::format("{}: cannot create report ({})", path, std::strerror(errno)));
  }
  return out;
}

void write_report(std::ofstream& out, const std::string& path, const nlohmann::json& report) {
  out << report.dump(2) << '\n';
  out.flush();
  if (!out) throw OutputError(fmt::format("{}: write failed ({})", path, std::strerror(errno)));
}

}  // namespace

CLI::App* add_score_command(CLI::App& app, ScoreArguments& a) {
  auto* cmd = app.add_subcommand("score", "log-likelihood and bits/dim of a dataset under a model");
  cmd->add_option("model", a.model, "TorchScript velocity field, forward(x [B,*shape], t [B])")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--data", a.data, ".npy array [N, *shape]: float32/float64 or uint8")
      ->required()
      ->check(CLI::ExistingFile);
  add_contract_options(*cmd, a.contract);
  cmd->add_option("--levels", a.levels, "levels K of discrete data (default 256 for uint8)");
  cmd->add_option("--scale", a.scale, "map of dequantized data to model space: unit|centered|logit[:lambda]");
  cmd->add_option("--solver", a.solver, "dopri5 (adaptive), rk4, midpoint, euler (fixed step)")
      ->capture_default_str();
  cmd->add_option("--rtol", a.rtol, "relative tolerance (dopri5)")->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--atol", a.atol, "absolute tolerance (dopri5)")->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--steps", a.steps, "steps of a fixed-step solver")->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-nfe", a.max_nfe, "fail a solve that needs more function evaluations")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--trace", a.trace, "exact or hutchinson")->capture_default_str();
  cmd->add_option("--noise", a.noise, "Hutchinson probes: rademacher or gaussian")->capture_default_str();
  cmd->add_option("--probes", a.probes, "Hutchinson probes per sample")->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-rows", a.max_rows, "rows per batched autograd call of the exact trace")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--seed", a.seed, "seed of dequantization noise and probes")->capture_default_str();
  cmd->add_option("--dtype", a.dtype, "float32 or float64")->capture_default_str();
  cmd->add_option("--device", a.device, "cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--batch-size", a.batch_size, "samples solved together")->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--threads", a.threads, "intra-op threads (0: LibTorch's default)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("-o,--output", a.output, "write the JSON report here");
  cmd->add_option("--per-sample", a.per_sample, "write per-sample results here (CSV)");
  cmd->add_flag("-q,--quiet", a.quiet, "no progress and no summary");
  return cmd;
}

int run_score(const ScoreArguments& args) {
  // Parse: every option checked before any work is done.
  SolverSpec solver;
  solver.kind = parse_solver(args.solver);
  solver.rtol = args.rtol;
  solver.atol = args.atol;
  solver.steps = args.steps;
  solver.max_nfe = args.max_nfe;
  TraceSpec trace_spec{args.trace, args.noise, args.probes, args.seed, args.max_rows};
  const auto trace = make_trace_estimator(trace_spec);
  const auto tensor_options = parse_tensor_options(args.dtype, args.device);
  if (args.threads > 0) torch::set_num_threads(args.threads);

  // Load.
  const auto start = std::chrono::steady_clock::now();
  const Dataset data = load_dataset(args.data);
  auto [model_file, contract] = load_model_with_contract(args.model, args.contract);
  const Preprocessing pre = resolve_preprocessing(args, data, contract);
  VelocityField field(std::move(model_file), std::move(contract), tensor_options);
  field.bind_shape(data.sample_shape);
  solver.t_data = field.contract().t_data();
  solver.t_prior = field.contract().t_prior();

  // Run.
  auto report_file = open_report(args.output);
  std::optional<SampleCsvWriter> csv;
  if (!args.per_sample.empty()) csv.emplace(args.per_sample);
  std::vector<int64_t> indices(static_cast<size_t>(data.size));
  std::iota(indices.begin(), indices.end(), 0);
  std::vector<SampleResult> results;
  results.reserve(indices.size());
  Progress progress(Progress::mode_for_stderr(args.quiet), data.size);
  ScoreOptions options{solver, args.batch_size};
  score_dataset(field, *trace, data, pre, options, indices, [&](const SampleResult& r) {
    if (csv) csv->write(r);
    results.push_back(r);
    progress.advance();
  });
  progress.finish();

  // Report.
  ScoreRun run;
  run.field = &field;
  run.model_sha256 = sha256_file(args.model);
  run.data = &data;
  run.data_sha256 = sha256_file(args.data);
  run.preprocessing = &pre;
  run.options = options_json(args, solver, trace_spec, torch::get_num_threads());
  run.contract = contract_json(field.contract());
  run.summary = summarize(results, data.dim);
  run.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (report_file) write_report(*report_file, args.output, make_score_report(run));
  if (!args.quiet) print_summary(run);
  return static_cast<int>(ExitCode::kOk);
}

}  // namespace flowlik::cli
