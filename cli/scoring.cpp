#include "cli/scoring.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <algorithm>
#include <numeric>
#include <vector>

#include "cli/contract_options.h"
#include "cli/progress.h"
#include "cli/sample_csv.h"
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

}  // namespace

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


void add_scoring_options(CLI::App& cmd, ScoreArguments& a) {
  cmd.add_option("--data", a.data, ".npy array [N, *shape]: float32/float64 or uint8")
      ->required()
      ->check(CLI::ExistingFile);
  cmd.add_option("--labels", a.labels, "class labels [N] (int64 or uint8) for a class-conditional model")
      ->check(CLI::ExistingFile);
  add_contract_options(cmd, a.contract);
  cmd.add_option("--levels", a.levels, "levels K of discrete data (default 256 for uint8)");
  cmd.add_option("--scale", a.scale, "map of dequantized data to model space: unit|centered|logit[:lambda]");
  cmd.add_option("--solver", a.solver, "dopri5 (adaptive), rk4, midpoint, euler (fixed step)")
      ->capture_default_str();
  cmd.add_option("--rtol", a.rtol, "relative tolerance (dopri5)")->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd.add_option("--atol", a.atol, "absolute tolerance (dopri5)")->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd.add_option("--steps", a.steps, "steps of a fixed-step solver")->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd.add_option("--max-nfe", a.max_nfe, "fail a solve that needs more function evaluations")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd.add_option("--trace", a.trace, "exact or hutchinson")->capture_default_str();
  cmd.add_option("--noise", a.noise, "Hutchinson probes: rademacher or gaussian")->capture_default_str();
  cmd.add_option("--probes", a.probes, "Hutchinson probes per sample")->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd.add_option("--max-rows", a.max_rows, "rows per batched autograd call of the exact trace")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd.add_option("--seed", a.seed, "seed of dequantization noise and probes")->capture_default_str();
  cmd.add_option("--dtype", a.dtype, "float32 or float64")->capture_default_str();
  cmd.add_option("--device", a.device, "cpu, cuda or cuda:N")->capture_default_str();
  cmd.add_option("--batch-size", a.batch_size, "samples solved together")->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd.add_option("--threads", a.threads, "intra-op threads (0: LibTorch's default)")
      ->check(CLI::NonNegativeNumber);
  cmd.add_option("-o,--output", a.output, "write the JSON report here");
  cmd.add_option("--history", a.history, "append the result to this SQLite history (created if absent)");
  cmd.add_option("--html", a.html, "write a self-contained HTML report with plots here");
  cmd.add_flag("-q,--quiet", a.quiet, "no progress and no summary");
}

RunSetup parse_run_setup(const ScoreArguments& args) {
  RunSetup setup;
  setup.solver.kind = parse_solver(args.solver);
  setup.solver.rtol = args.rtol;
  setup.solver.atol = args.atol;
  setup.solver.steps = args.steps;
  setup.solver.max_nfe = args.max_nfe;
  setup.trace_spec = TraceSpec{args.trace, args.noise, args.probes, args.seed, args.max_rows};
  setup.trace = make_trace_estimator(setup.trace_spec);
  setup.tensor_options = parse_tensor_options(args.dtype, args.device);
  if (args.threads > 0) torch::set_num_threads(args.threads);
  return setup;
}

std::vector<int64_t> all_indices(const Dataset& data) {
  std::vector<int64_t> indices(static_cast<size_t>(data.size));
  std::iota(indices.begin(), indices.end(), 0);
  return indices;
}

Dataset load_scoring_data(const ScoreArguments& args) {
  Dataset data = load_dataset(args.data);
  if (!args.labels.empty()) {
    data.labels = load_labels(args.labels, data.size);
    data.labels_path = args.labels;
  }
  return data;
}

ModelRun score_model(const std::string& model_path, const ScoreArguments& args, const RunSetup& setup,
                     const Dataset& data, std::span<const int64_t> indices, std::vector<SampleResult> done,
                     const SampleSink& on_sample) {
  const auto start = std::chrono::steady_clock::now();
  ModelRun run;
  auto [model_file, contract] = load_model_with_contract(model_path, args.contract);
  if (contract.conditional && !data.labels.defined()) {
    throw UsageError(fmt::format("--labels: {} is class-conditional (conditioning from {}); give the labels of "
                                 "the data, one per sample",
                                 model_path, contract.sources.at("conditioning")));
  }
  if (!contract.conditional && data.labels.defined()) {
    throw UsageError(fmt::format("--labels: {} is not class-conditional (conditioning from {}); its forward "
                                 "takes no labels",
                                 model_path, contract.sources.at("conditioning")));
  }
  run.preprocessing = std::make_unique<Preprocessing>(resolve_preprocessing(args, data, contract));
  run.field = std::make_unique<VelocityField>(std::move(model_file), std::move(contract),
                                              setup.tensor_options);
  run.field->bind_shape(data.sample_shape);
  SolverSpec solver = setup.solver;
  solver.t_data = run.field->contract().t_data();
  solver.t_prior = run.field->contract().t_prior();

  run.results = std::move(done);
  run.results.reserve(run.results.size() + indices.size());
  Progress progress(Progress::mode_for_stderr(args.quiet), static_cast<int64_t>(indices.size()));
  const ScoreOptions options{solver, args.batch_size};
  score_dataset(*run.field, *setup.trace, data, *run.preprocessing, options, indices,
                [&](const SampleResult& r) {
                  if (on_sample) on_sample(r);
                  run.results.push_back(r);
                  progress.advance();
                });
  progress.finish();
  std::sort(run.results.begin(), run.results.end(),
            [](const SampleResult& a, const SampleResult& b) { return a.index < b.index; });

  ScoreRun& s = run.score;
  s.field = run.field.get();
  s.model_sha256 = sha256_file(model_path);
  s.data = &data;
  s.data_sha256 = sha256_file(data.path);
  s.preprocessing = run.preprocessing.get();
  s.options = options_json(args, solver, setup.trace_spec, torch::get_num_threads());
  s.contract = contract_json(run.field->contract());
  s.summary = summarize(run.results, data.dim);
  s.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return run;
}

}  // namespace flowlik::cli
