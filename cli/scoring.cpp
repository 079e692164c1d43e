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
#include "cli/number_options.h"
#include "cli/progress.h"
#include "io/sample_csv.h"
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
    if (args.dequant_draws > 1) {
      throw UsageError(fmt::format("--dequant-draws: {} holds {} values, scored as given; draws apply to "
                                   "discrete (uint8) data",
                                   data.path, to_string(data.dtype)));
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
  pre.draws = args.dequant_draws;
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
      {"dequant_draws", args.dequant_draws},
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
    o["error_norm"] = to_string(solver.norm);
    o["step_control"] = "per-sample";
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
    fmt::print("  data       discrete, {} levels [{}], uniform dequantization (seed {}, {}), scale {} [{}]\n",
               pre.levels, pre.levels_source, pre.seed,
               pre.draws > 1 ? fmt::format("{} draws, importance-weighted bound", pre.draws) : "one draw",
               describe_scale(pre), pre.scale_source);
  } else {
    fmt::print("  data       continuous, scored as given\n");
  }
  fmt::print("  bpd        {:.4f} +- {:.4f} (stderr)  95% CI [{:.4f}, {:.4f}]\n", s.bpd.mean,
             s.bpd.std_error, s.bpd.ci_low, s.bpd.ci_high);
  fmt::print("  log-lik    {:.4f} +- {:.4f} nats per sample\n", s.log_likelihood.mean,
             s.log_likelihood.std_error);
  fmt::print("  stderr     {}\n", describe_error_sources(s));
  fmt::print("  NFE        mean {:.1f}, max {}\n", s.nfe_mean, s.nfe_max);
  fmt::print("  samples    {} ok, {} excluded (failed or not finite)\n", s.ok, s.total - s.ok);
  fmt::print("  time       {:.2f} s\n", run.wall_seconds);
}

void write_report(const std::string& path, const nlohmann::json& report) {
  write_file_atomically(path, report.dump(2) + "\n");
}

// Bounds of counts given on the command line: beyond them a value is a typo, and would end in an
// allocation failure or an OpenMP crash (--threads 100000) rather than a message.
constexpr int64_t kMaxCount = int64_t{1} << 40;
constexpr int64_t kMaxProbes = 1 << 16;
constexpr int64_t kMaxThreads = 1024;

void add_scoring_options(CLI::App& cmd, ScoreArguments& a) {
  cmd.add_option("--data", a.data, ".npy array [N, *shape]: float32/float64 or uint8")
      ->required()
      ->check(CLI::ExistingFile);
  cmd.add_option("--labels", a.labels, "class labels [N] (int64 or uint8) for a class-conditional model")
      ->check(CLI::ExistingFile);
  add_contract_options(cmd, a.contract);
  // The range [2, 256] is checked with the data, which says whether levels apply at all.
  cmd.add_option("--levels", a.levels, "levels K of discrete data (default 256 for uint8)")
      ->check(integer_in(-kMaxCount, kMaxCount));
  cmd.add_option("--scale", a.scale, "map of dequantized data to model space: unit|centered|logit[:lambda]");
  cmd.add_option("--dequant-draws", a.dequant_draws,
                 "dequantization draws per sample, combined as the importance-weighted bound")
      ->capture_default_str()
      ->check(integer_in(1, kMaxProbes));
  cmd.add_option("--solver", a.solver,
                 "dopri5, tsit5, bosh3, rkf78 (adaptive, steps per sample); rk4, midpoint, euler (fixed step)")
      ->capture_default_str();
  cmd.add_option("--rtol", a.rtol, "relative tolerance (adaptive solvers)")->capture_default_str()
      ->check(positive_finite(1.0));
  cmd.add_option("--atol", a.atol, "absolute tolerance (adaptive solvers)")->capture_default_str()
      ->check(positive_finite(1.0));
  cmd.add_option("--error-norm", a.error_norm,
                 "error norm of adaptive solvers, per sample: rms, max (Odeint's) or mixed (torchdiffeq's)")
      ->capture_default_str();
  cmd.add_option("--steps", a.steps, "steps of a fixed-step solver")->capture_default_str()
      ->check(integer_in(1, kMaxCount));
  cmd.add_option("--max-nfe", a.max_nfe, "fail a solve that needs more function evaluations")
      ->capture_default_str()->check(integer_in(1, kMaxCount));
  cmd.add_option("--trace", a.trace, "exact or hutchinson")->capture_default_str();
  cmd.add_option("--noise", a.noise, "Hutchinson probes: rademacher or gaussian")->capture_default_str();
  cmd.add_option("--probes", a.probes, "Hutchinson probes per sample")->capture_default_str()
      ->check(integer_in(1, kMaxProbes));
  cmd.add_option("--max-rows", a.max_rows, "rows per batched autograd call of the exact trace")
      ->capture_default_str()->check(integer_in(1, kMaxCount));
  cmd.add_option("--seed", a.seed, "seed of dequantization noise and probes")->capture_default_str()
      ->check(unsigned_integer());
  cmd.add_option("--dtype", a.dtype, "float32 or float64")->capture_default_str();
  cmd.add_option("--device", a.device, "cpu, cuda or cuda:N")->capture_default_str();
  cmd.add_option("--batch-size", a.batch_size, "samples solved together")->capture_default_str()
      ->check(integer_in(1, kMaxCount));
  cmd.add_option("--threads", a.threads, "intra-op threads (0: LibTorch's default)")
      ->check(integer_in(0, kMaxThreads));
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
  setup.solver.norm = parse_error_norm(args.error_norm);
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

PreparedModel prepare_model(const std::string& model_path, const ScoreArguments& args, const RunSetup& setup,
                            const Dataset& data) {
  PreparedModel model;
  model.path = model_path;
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
  model.preprocessing = std::make_unique<Preprocessing>(resolve_preprocessing(args, data, contract));
  model.field = std::make_unique<VelocityField>(std::move(model_file), std::move(contract),
                                                setup.tensor_options);
  model.field->bind_shape(data.sample_shape);
  model.solver = setup.solver;
  model.solver.t_data = model.field->contract().t_data();
  model.solver.t_prior = model.field->contract().t_prior();
  model.sha256 = sha256_file(model_path);
  return model;
}

std::vector<NamedFile> run_inputs(std::span<const std::string> models, const ScoreArguments& args) {
  std::vector<NamedFile> inputs;
  for (const auto& m : models) {
    inputs.push_back({"model", m});
    inputs.push_back({"the manifest beside the model", m + ".json"});
  }
  inputs.push_back({"--data", args.data});
  inputs.push_back({"--labels", args.labels});
  return inputs;
}

void check_run_outputs(std::span<const NamedFile> inputs, std::span<const NamedFile> outputs) {
  check_outputs_distinct(inputs, outputs);
  for (const auto& out : outputs) {
    if (!out.path.empty()) check_can_create(out.path, out.option == "-o" ? "report" : "file");
  }
}

nlohmann::json run_identity(const PreparedModel& model, const ScoreArguments& args, const RunSetup& setup,
                            const Dataset& data, const std::string& data_sha256) {
  auto options = options_json(args, model.solver, setup.trace_spec, 0);
  options.erase("batch_size");
  options.erase("threads");
  auto contract = contract_json(model.field->contract());
  contract.erase("sources");  // where a value came from does not change what is measured
  auto preprocessing = preprocessing_json(*model.preprocessing, data.dim);
  if (preprocessing.contains("sources")) preprocessing.erase("sources");
  return {{"model_sha256", model.sha256},
          {"data_sha256", data_sha256},
          {"labels_sha256", data.labels_path.empty() ? nlohmann::json(nullptr)
                                                     : nlohmann::json(sha256_file(data.labels_path))},
          {"contract", contract},
          {"preprocessing", preprocessing},
          {"options", options}};
}

std::string identity_difference(const nlohmann::json& recorded, const nlohmann::json& current) {
  // flatten() keys are JSON pointers ("/options/seed"); messages name fields as the report does.
  auto dotted = [](std::string key) {
    if (!key.empty() && key.front() == '/') key.erase(0, 1);
    std::replace(key.begin(), key.end(), '/', '.');
    return key;
  };
  const auto a = recorded.flatten();
  const auto b = current.flatten();
  // A field both runs have but with other values first: it says more than the fields it brings along.
  for (const auto& [key, value] : b.items()) {
    if (a.contains(key) && a.at(key) != value) {
      return fmt::format("'{}' differs (file: {}, this run: {})", dotted(key), a.at(key).dump(), value.dump());
    }
  }
  for (const auto& [key, value] : b.items()) {
    if (!a.contains(key)) {
      return fmt::format("'{}' is missing from the file (this run: {})", dotted(key), value.dump());
    }
  }
  for (const auto& [key, value] : a.items()) {
    if (!b.contains(key)) return fmt::format("'{}' is not part of this run (file: {})", dotted(key), value.dump());
  }
  return {};
}

void check_same_data_view(const PreparedModel& first, const PreparedModel& other) {
  const auto& p = *first.preprocessing;
  const auto& q = *other.preprocessing;
  auto refuse = [&](const char* field, const std::string& here, const std::string& there) {
    throw UsageError(fmt::format("compare: {} sees the data with {} {}, {} with {}; paired differences of "
                                 "models that see different data mean nothing",
                                 other.path, field, there, first.path, here));
  };
  if (p.discrete != q.discrete) refuse("kind", p.discrete ? "discrete" : "continuous", q.discrete ? "discrete" : "continuous");
  if (p.discrete) {
    if (p.levels != q.levels) {
      refuse("levels", fmt::format("{} [{}]", p.levels, p.levels_source),
             fmt::format("{} [{}]", q.levels, q.levels_source));
    }
    if (describe_scale(p) != describe_scale(q)) {
      refuse("scale", fmt::format("{} [{}]", describe_scale(p), p.scale_source),
             fmt::format("{} [{}]", describe_scale(q), q.scale_source));
    }
  }
  const auto& a = first.field->contract();
  const auto& b = other.field->contract();
  if (a.shape != b.shape) {
    refuse("shape", contract_json(a)["shape"].dump(), contract_json(b)["shape"].dump());
  }
  if (a.conditional != b.conditional) {
    refuse("conditioning", a.conditional ? "label" : "none", b.conditional ? "label" : "none");
  }
}

ModelRun score_model(PreparedModel model, const ScoreArguments& args, const RunSetup& setup,
                     const Dataset& data, const std::string& data_sha256, std::span<const int64_t> indices,
                     std::vector<SampleResult> done, const SampleSink& on_sample) {
  const auto start = std::chrono::steady_clock::now();
  ModelRun run;
  run.field = std::move(model.field);
  run.preprocessing = std::move(model.preprocessing);
  run.results = std::move(done);
  run.results.reserve(run.results.size() + indices.size());
  Progress progress(Progress::mode_for_stderr(args.quiet), static_cast<int64_t>(indices.size()));
  const ScoreOptions options{model.solver, args.batch_size};
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
  s.model_sha256 = model.sha256;
  s.data = &data;
  s.data_sha256 = data_sha256;
  s.preprocessing = run.preprocessing.get();
  s.options = options_json(args, model.solver, setup.trace_spec, torch::get_num_threads());
  s.contract = contract_json(run.field->contract());
  s.summary = summarize_results(run.results, data.dim);
  s.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return run;
}

}  // namespace flowlik::cli
