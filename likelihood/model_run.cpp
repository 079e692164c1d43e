#include "likelihood/model_run.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <numeric>
#include <optional>
#include <utility>

#include "flowlik/error.h"
#include "likelihood/model/device.h"
#include "likelihood/score.h"

namespace flowlik {
namespace {

// The range of values each map produces, for refusing continuous data that the model never saw.
std::optional<std::pair<double, double>> scale_range(const DataMap& map) {
  if (map.kind == ScaleMap::kUnit) return std::pair{0.0, 1.0};
  if (map.kind == ScaleMap::kCentered) return std::pair{-1.0, 1.0};
  return std::nullopt;
}

// i-DODE's training-free choice for the truncated normal: the noise the model's own path adds at
// its data end t, sigma_t / alpha_t in the model's space, measured in bins of the map from [0, 1)
// (one bin is 2 / K wide for the centered map, 1 / K for the unit map).
double schedule_noise_in_bins(const Contract& contract, const Preprocessing& pre) {
  if (!contract.schedule) {
    throw InvalidArgument(
        "dequantization",
        "truncated-normal takes its SIGMA from the model's schedule, and the model declares none; "
        "give truncated-normal:SIGMA (bins)");
  }
  if (pre.scale == ScaleMap::kLogit) {
    throw InvalidArgument(
        "dequantization",
        "truncated-normal: the logit map has no single bin width to measure the schedule's noise "
        "in; give truncated-normal:SIGMA (bins)");
  }
  const auto k = path_coefficients(*contract.schedule, contract.t_data());
  const double bin = (pre.scale == ScaleMap::kCentered ? 2.0 : 1.0) / pre.levels;
  const double sigma = k.sigma / k.alpha / bin;
  if (!(sigma >= 1e-6 && sigma <= 10.0)) {
    throw InvalidArgument(
        "dequantization",
        fmt::format("truncated-normal: the schedule {} gives sigma/alpha = {:.3g} at the data "
                    "end t = {}, {:.3g} bins, outside [1e-6, 10]; give truncated-normal:SIGMA "
                    "(bins) or a time range whose data end has noise",
                    to_string(*contract.schedule), k.sigma / k.alpha, contract.t_data(), sigma));
  }
  return sigma;
}

// The data's type, the options and the contract's `data` field turned into the preprocessing in
// effect, or what is missing said. Options override the manifest.
Preprocessing resolve_preprocessing(const DataOptions& options, uint64_t seed, const Dataset& data,
                                    const Contract& contract) {
  Preprocessing pre;
  pre.seed = seed;
  if (!data.is_discrete()) {
    if (contract.data_scale && !options.scale) {
      if (const auto range = scale_range(*contract.data_scale)) {
        const double lo = data.values.min().item<double>();
        const double hi = data.values.max().item<double>();
        if (lo < range->first || hi > range->second) {
          throw DataError(
              fmt::format("{}: values span [{}, {}], outside [{}, {}] of the data scale '{}' the "
                          "model was trained "
                          "on ({})",
                          data.path, lo, hi, range->first, range->second,
                          to_string(*contract.data_scale), contract.sources.at("data")));
        }
      }
    }
    if (options.dequant_draws > 1) {
      throw InvalidArgument("dequant_draws",
                            fmt::format("{} holds {} values, scored as given; draws apply "
                                        "to discrete (uint8) data",
                                        data.path, to_string(data.dtype)));
    }
    if (options.dequantization.kind != DequantizationKind::kUniform) {
      throw InvalidArgument("dequantization",
                            fmt::format("{} holds {} values, scored as given; dequantization "
                                        "applies to discrete (uint8) data",
                                        data.path, to_string(data.dtype)));
    }
    if (options.levels || options.scale) {
      // Names both options itself, so no one argument is singled out.
      throw InvalidArgument(
          "", fmt::format("{} and {} apply to discrete (uint8) data; {} holds {} values, scored "
                          "as given",
                          option_name("levels"), option_name("scale"), data.path,
                          to_string(data.dtype)));
    }
    return pre;
  }
  const auto scale = options.scale ? options.scale : contract.data_scale;
  if (!scale) {
    throw InvalidArgument(
        "scale", fmt::format("{} holds discrete uint8 data; say how it maps to the model's "
                             "input with {} unit|centered|logit[:lambda]",
                             data.path, option_name("scale")));
  }
  if (options.dequant_draws < 1) {
    throw InvalidArgument("dequant_draws",
                          fmt::format("must be at least 1, got {}", options.dequant_draws));
  }
  pre = *resolve_data_map(options, contract);
  pre.seed = seed;
  pre.draws = options.dequant_draws;
  check(options.dequantization);
  pre.dequantization = options.dequantization.kind;
  pre.noise_sigma = options.dequantization.sigma.value_or(0.0);
  pre.bound = options.dequant_bound;
  pre.dequantization_source = options.dequantization == Dequantization{}
                                  ? "default"
                                  : "option " + option_name("dequantization");
  if (pre.dequantization == DequantizationKind::kTruncatedNormal && !options.dequantization.sigma) {
    pre.noise_sigma = schedule_noise_in_bins(contract, pre);
    pre.dequantization_source +=
        fmt::format(" (sigma from the schedule {} at the data end, flow time t = {})",
                    to_string(*contract.schedule), contract.t_data());
  }
  check_levels(
      data, pre.levels,
      options.levels ? option_name("levels") : fmt::format("the levels of {}", pre.levels_source));
  return pre;
}

// gauss-legendre takes the state inside a step from dopri5's dense output, which the other solvers
// do not have here.
void check_quadrature(const SolverSpec& solver) {
  if (solver.quadrature == Quadrature::kGaussLegendre && solver.kind != SolverKind::kDopri5) {
    throw InvalidArgument("quadrature",
                          fmt::format("gauss-legendre needs the dopri5 solver (its dense output), "
                                      "not {}",
                                      to_string(solver.kind)));
  }
}

}  // namespace

std::optional<Preprocessing> resolve_data_map(const DataOptions& options,
                                              const Contract& contract) {
  const auto scale = options.scale ? options.scale : contract.data_scale;
  if (!scale) return std::nullopt;
  Preprocessing pre;
  pre.discrete = true;
  pre.levels = options.levels.value_or(contract.data_levels.value_or(256));
  pre.levels_source = options.levels         ? "option " + option_name("levels")
                      : contract.data_levels ? contract.sources.at("data")
                                             : "default (uint8 data)";
  pre.scale_source = options.scale ? "option " + option_name("scale") : contract.sources.at("data");
  if (pre.levels < 2 || pre.levels > 256) {
    throw InvalidArgument("levels",
                          fmt::format("must be in [2, 256] for uint8 data, got {}", pre.levels));
  }
  check(*scale);
  pre.scale = scale->kind;
  pre.logit_lambda = scale->logit_lambda;
  return pre;
}

ScoreSetup make_score_setup(const ScoreOptions& options) {
  ScoreSetup setup;
  setup.options = options;
  setup.solver.kind = options.solver.method;
  setup.solver.rtol = options.solver.rtol;
  setup.solver.atol = options.solver.atol;
  setup.solver.norm = options.solver.error_norm;
  setup.solver.quadrature = options.solver.quadrature;
  setup.solver.steps = options.solver.steps;
  setup.solver.max_nfe = options.solver.max_nfe;
  if (!(options.solver.rtol > 0 && options.solver.atol > 0)) {
    throw InvalidArgument(options.solver.rtol > 0 ? "atol" : "rtol", "must be positive");
  }
  if (options.solver.steps < 1) throw InvalidArgument("steps", "must be at least 1");
  if (options.solver.max_nfe < 1) throw InvalidArgument("max_nfe", "must be at least 1");
  check_quadrature(setup.solver);
  if (options.batch_size < 1) throw InvalidArgument("batch_size", "must be at least 1");
  setup.trace_spec = TraceSpec{options.trace.method, options.trace.noise, options.trace.probes,
                               options.seed, options.trace.max_rows};
  setup.trace = make_trace_estimator(setup.trace_spec);
  return setup;
}

torch::TensorOptions tensor_options(const ModelOptions& options) {
  const auto dtype = options.dtype == Dtype::kFloat64 ? torch::kFloat64 : torch::kFloat32;
  return torch::TensorOptions().dtype(dtype).device(resolve_device(options.device));
}

std::shared_ptr<VelocityField> load_field(const std::string& path, const ModelOptions& options) {
  const auto tensors = tensor_options(options);
  auto [file, contract] = load_model_with_contract(path, options.contract);
  return std::make_shared<VelocityField>(std::move(file), std::move(contract), tensors);
}

BoundModel bind_model(const Model& model, const ScoreOptions& options, const Dataset& data) {
  const auto& field = detail::ModelAccess::state(model).field;
  const auto& contract = field->contract();
  if (contract.conditional && !data.labels.defined()) {
    throw InvalidArgument("labels",
                          fmt::format("{} is class-conditional (conditioning from {}); give the "
                                      "labels of the data, one per sample",
                                      field->path(), contract.sources.at("conditioning")));
  }
  if (!contract.conditional && data.labels.defined()) {
    throw InvalidArgument("labels",
                          fmt::format("{} is not class-conditional (conditioning from {}); its "
                                      "forward takes no labels",
                                      field->path(), contract.sources.at("conditioning")));
  }
  auto preprocessing = std::make_shared<const Preprocessing>(
      resolve_preprocessing(options.data, options.seed, data, contract));
  // A field of this call's own, bound to its data's shape: the loaded field is shared by every copy
  // of a Model and by every run, and is not changed (the network inside is shared, not copied).
  auto bound = std::make_shared<VelocityField>(*field);
  bound->bind_shape(data.sample_shape);
  // The rows of the whole data (every shard of it alike), each dequantization draw a row.
  bound->fit_rows_per_call(data.size * std::max<int64_t>(preprocessing->draws, 1));
  return {model, std::move(bound), std::move(preprocessing)};
}

void check_same_data_view(const BoundModel& first, const BoundModel& other) {
  const auto& p = *first.preprocessing;
  const auto& q = *other.preprocessing;
  auto refuse = [&](const char* field, const std::string& here, const std::string& there) {
    throw InvalidArgument("",
                          fmt::format("compare: {} sees the data with {} {}, {} with {}; paired "
                                      "differences of models that see different data mean nothing",
                                      other.path(), field, there, first.path(), here));
  };
  if (p.discrete != q.discrete) {
    refuse("kind", p.discrete ? "discrete" : "continuous", q.discrete ? "discrete" : "continuous");
  }
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
  if (a.shape != b.shape) refuse("shape", to_json(a)["shape"].dump(), to_json(b)["shape"].dump());
  if (a.conditional != b.conditional) {
    refuse("conditioning", a.conditional ? "label" : "none", b.conditional ? "label" : "none");
  }
}

std::vector<int64_t> all_indices(const Dataset& data) {
  std::vector<int64_t> indices(static_cast<size_t>(data.size));
  std::iota(indices.begin(), indices.end(), 0);
  return indices;
}

OptionsRecord options_record(const ScoreSetup& setup, const BoundModel& model, int threads) {
  const auto& contract = model.field->contract();
  OptionsRecord o;
  o.solver = setup.options.solver;
  o.trace = setup.options.trace;
  o.seed = setup.options.seed;
  o.dequant_draws = setup.options.data.dequant_draws;
  o.dtype = model.model.options().dtype;
  o.device = model.model.options().device;
  o.batch_size = setup.options.batch_size;
  o.rows_per_call = model.field->rows_per_call();
  o.threads = threads;
  o.flow_time_prior = contract.t_prior();
  o.flow_time_data = contract.t_data();
  return o;
}

RunReport score_model(const BoundModel& model, const ScoreSetup& setup, const Dataset& data,
                      const std::string& data_sha256, std::span<const int64_t> indices,
                      std::vector<SampleResult> done, const SampleSink& on_sample) {
  const auto start = std::chrono::steady_clock::now();
  RunReport r;
  r.samples = std::move(done);
  r.samples.reserve(r.samples.size() + indices.size());
  score_dataset(*model.field, *setup.trace, data, *model.preprocessing, setup.spec(), indices,
                [&](const SampleResult& result) {
                  r.samples.push_back(result);
                  if (on_sample) on_sample(result);
                });
  std::sort(r.samples.begin(), r.samples.end(),
            [](const SampleResult& a, const SampleResult& b) { return a.index < b.index; });
  r.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  const auto& field = *model.field;
  const auto& pre = *model.preprocessing;
  r.model = {field.path(), field.format(), model.model.sha256(), field.parameter_count(),
             field.contract()};
  r.data = {data.path, data_sha256, to_string(data.dtype), data.sample_shape,
            data.size, data.dim,    data.labels_path};
  r.options = options_record(setup, model, torch::get_num_threads());
  r.preprocessing = pre;
  r.caveat = bound_caveat(pre, r.options.trace.method);
  r.summary = summarize_results(r.samples, data.dim);
  return r;
}

}  // namespace flowlik
