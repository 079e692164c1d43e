// A whole scoring run (include/flowlik/run.h): what the flowlik program's `score` and `compare` do,
// less their command lines and files.
#include "flowlik/run.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "io/dataset.h"
#include "io/file_digest.h"
#include "likelihood/comparison.h"
#include "likelihood/memory.h"
#include "likelihood/model_run.h"
#include "likelihood/report.h"
#include "likelihood/report_reader.h"
#include "likelihood/sample.h"
#include "likelihood/solve_check.h"
#include "likelihood/statistics.h"

namespace flowlik {
namespace {

std::string tensor_sha256(const torch::Tensor& t) {
  const auto bytes = t.contiguous().cpu();
  return sha256_bytes(
      {static_cast<const char*>(bytes.data_ptr()), static_cast<size_t>(bytes.nbytes())});
}

// What makes two runs' per-sample values the same quantity: model and data digests, contract,
// preprocessing, seed, solver and estimator options (not the batch size or thread count, which
// change how fast a run is, not what it measures). The caller adds the shard.
nlohmann::json run_identity(const BoundModel& model, const ScoreSetup& setup, const Dataset& data,
                            const Data& given, const std::string& digest) {
  const auto options = result_options(to_json(options_record(setup, model, 0)));
  auto contract = to_json(model.field->contract());
  contract.erase("sources");  // where a value came from does not change what is measured
  auto preprocessing = preprocessing_json(*model.preprocessing, data.dim);
  if (preprocessing.contains("sources")) preprocessing.erase("sources");
  return {{"model_sha256", model.model.sha256()},
          {"data_sha256", digest},
          {"labels_sha256",
           given.labels.defined() ? nlohmann::json(labels_sha256(given)) : nlohmann::json(nullptr)},
          {"contract", contract},
          {"preprocessing", preprocessing},
          {"options", options}};
}

std::optional<ProtocolRecord> protocol_record(const ProtocolChoice& choice) {
  if (choice.name.empty()) return std::nullopt;
  const auto& protocol = find_protocol(choice.name);
  ProtocolRecord record{protocol.name, protocol.source, {}};
  for (const auto& s : protocol.settings) {
    const bool kept = std::ranges::find(choice.kept, s.option) != choice.kept.end();
    record.settings.push_back(
        {option_name(s.option), s.value, !kept,
         kept ? "option " + option_name(s.option == "time-eps" ? "time_range" : s.option)
              : std::string()});
  }
  return record;
}

// A protocol is defined on discrete data, and its data map is the paper's; a manifest's is the one
// the model was trained on. When they differ the number would describe another preprocessing than
// the model's, so the caller chooses.
void check_protocol(const ProtocolChoice& protocol, const ScoreOptions& options,
                    const Dataset& data, const VelocityField& field) {
  if (protocol.name.empty()) return;
  if (!data.is_discrete()) {
    throw InvalidArgument(
        "protocol",
        fmt::format("{} defines a bound on the probability of discrete (uint8) data; {} holds {} "
                    "values",
                    protocol.name, data.path, to_string(data.dtype)));
  }
  const auto& declared = field.contract().data_scale;
  const bool scale_from_protocol = std::ranges::find(protocol.kept, "scale") == protocol.kept.end();
  if (scale_from_protocol && declared && options.data.scale && *declared != *options.data.scale) {
    throw InvalidArgument(
        "protocol",
        fmt::format("{} maps the data with scale {}, but {} declares scale {} ({}), the map it "
                    "was trained on; give {} to choose one",
                    protocol.name, to_string(*options.data.scale), field.path(),
                    to_string(*declared), field.contract().sources.at("data"),
                    option_name("scale")));
  }
}

// target_stderr: a first pass on a seeded subset estimates the three parts of the variance of the
// mean bpd, per sample (shared/MATH.md section 7), and cheapest_budget finds the samples n, draws M
// and probes K that reach the target at least cost (K = 1 for the exact trace, whose cost does not
// depend on it), with n at most the dataset's size.
BudgetAdvice budget_advice(const BoundModel& model, const ScoreSetup& setup, const Dataset& data,
                           double target) {
  constexpr int64_t kPilotSamples = 32;
  constexpr int64_t kMaxDraws = 64;
  constexpr int64_t kMaxProbes = 64;
  const int64_t n0 = std::min<int64_t>(kPilotSamples, data.size);
  // Evenly spread over the dataset from an offset set by the seed: the same subset for the same
  // seed.
  const auto subset = spread_subset(all_indices(data), n0, setup.options.seed);
  Preprocessing pre = *model.preprocessing;
  const bool discrete = pre.discrete;
  if (discrete) pre.draws = std::max<int64_t>(pre.draws, 2);
  TraceSpec spec = setup.trace_spec;
  const bool hutchinson = spec.method == Trace::kHutchinson;
  if (hutchinson) spec.probes = std::max<int64_t>(spec.probes, 2);
  const auto trace = make_trace_estimator(spec);
  std::vector<SampleResult> results;
  score_dataset(*model.field, *trace, data, pre, setup.spec(), subset,
                [&](const SampleResult& r) { results.push_back(r); });
  const auto pilot = summarize_results(results, data.dim);
  BudgetAdvice advice;
  advice.target_stderr_bpd = target;
  advice.pilot = {n0,
                  pre.draws,
                  hutchinson ? spec.probes : 0,
                  pilot.ok,
                  {pilot.bpd.std_error, pilot.data_std_error_bpd, pilot.dequant_std_error_bpd,
                   pilot.estimator_std_error_bpd}};
  if (pilot.ok < 2) {
    advice.note = "fewer than two pilot samples were scored ok; no advice";
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
  advice.per_sample_variance_bpd2 = BudgetVariances{s_data, s_draw, s_probe};
  if (!best) {
    advice.note = fmt::format(
        "unreachable with the {} samples of the data: the data's own part alone gives a standard "
        "error of "
        "{:.4g} bpd over all of them",
        data.size, std::sqrt(s_data / static_cast<double>(data.size)));
  } else {
    advice.advice = Budget{best->samples, best->draws, hutchinson ? best->probes : 0, best->cost};
    advice.note =
        "cost counts rows of function evaluations (samples x draws x probes); the number of "
        "evaluations per solve is taken as the same for every choice";
  }
  return advice;
}

// check_solve: the run's model loaded again in float64 and n of its ok samples re-solved at a
// tolerance 100 times tighter (likelihood/solve_check.h). A model that cannot be loaded in float64
// (a package compiled for float32 only) gives a report with its error.
SolveCheckReport solve_check_report(const Model& model, const RunOptions& options,
                                    const ScoreSetup& setup, const Dataset& data,
                                    std::span<const SampleResult> results) {
  SolveCheckReport out;
  out.samples_requested = options.check_solve;
  auto reference_options = model.options();
  reference_options.dtype = Dtype::kFloat64;
  try {
    // The same file and hash, loaded again: a Model of its own.
    const auto reference_model =
        bind_model(detail::ModelAccess::make({load_field(model.path(), reference_options),
                                              reference_options, model.sha256()}),
                   options.score, data);
    // A float64 row takes about twice the memory of a float32 one: the reference's own rows.
    const VelocityField* fields[] = {reference_model.field.get()};
    const auto reference_setup = options.fit_rows_to_memory_mb
                                     ? fit_exact_rows(setup, fields, *options.fit_rows_to_memory_mb)
                                     : setup;
    const auto reference = reference_solver(setup.solver);
    const auto samples = pick_check_samples(results, options.check_solve, options.score.seed);
    const auto check =
        check_solve(results, samples, *reference_model.field, *reference_setup.trace, data,
                    *reference_model.preprocessing, reference, options.score.batch_size);
    out.solver = to_string(reference.kind);
    out.rtol = reference.rtol;
    out.atol = reference.atol;
    out.error_norm = to_string(reference.norm);
    out.samples = check.samples;
    out.mean_abs_error_nats = check.mean_abs_error_nats;
    out.max_abs_error_nats = check.max_abs_error_nats;
    out.mean_error_nats = check.mean_error_nats;
    out.mean_abs_error_bpd = check.mean_abs_error_bpd;
    out.mean_bpd_effect = check.mean_bpd_effect;
  } catch (const Error& e) {
    out.error = fmt::format("no float64 reference: {}", e.what());
  }
  return out;
}

nlohmann::json to_json(const SolveCheckReport& c) {
  nlohmann::json out = {{"samples_requested", c.samples_requested}};
  if (!c.error.empty()) {
    out["error"] = c.error;
    return out;
  }
  out.update({{"reference",
               {{"solver", c.solver},
                {"rtol", c.rtol},
                {"atol", c.atol},
                {"error_norm", c.error_norm},
                {"dtype", "float64"}}},
              {"samples", c.samples},
              {"mean_abs_error_nats", number_or_null(c.mean_abs_error_nats)},
              {"max_abs_error_nats", number_or_null(c.max_abs_error_nats)},
              {"mean_error_nats", number_or_null(c.mean_error_nats)},
              {"mean_abs_error_bpd", number_or_null(c.mean_abs_error_bpd)},
              {"mean_bpd_effect", number_or_null(c.mean_bpd_effect)},
              {"how",
               "samples re-solved in float64 at a tolerance 100 times tighter, with the same noise "
               "and probes; error = the run's log-likelihood minus the reference's"}});
  return out;
}

nlohmann::json to_json(const RoundTripError& trip) {
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

SolveCheckReport read_solve_check(const ReportReader& report) {
  SolveCheckReport c;
  c.samples_requested = report.integer("check_solve.samples_requested");
  if (report.contains("check_solve.error")) {
    c.error = report.string("check_solve.error");
    return c;
  }
  c.solver = report.string("check_solve.reference.solver");
  c.rtol = report.number("check_solve.reference.rtol");
  c.atol = report.number("check_solve.reference.atol");
  c.error_norm = report.string("check_solve.reference.error_norm");
  c.samples = report.integer("check_solve.samples");
  const auto number = [&](const std::string& key) {
    return report.number_or_null("check_solve." + key).value_or(NAN);
  };
  c.mean_abs_error_nats = number("mean_abs_error_nats");
  c.max_abs_error_nats = number("max_abs_error_nats");
  c.mean_error_nats = number("mean_error_nats");
  c.mean_abs_error_bpd = number("mean_abs_error_bpd");
  c.mean_bpd_effect = number("mean_bpd_effect");
  return c;
}

RoundTripError read_round_trip(const ReportReader& report) {
  RoundTripError trip;
  trip.samples = report.integer("round_trip.samples");
  trip.failed = report.integer("round_trip.failed");
  trip.max_abs_error = report.number_or_null("round_trip.max_abs_error").value_or(NAN);
  trip.mean_abs_error = report.number_or_null("round_trip.mean_abs_error").value_or(NAN);
  return trip;
}

namespace {

// The rows an earlier run did, checked to lie in [first, end) once each.
std::vector<SampleResult> checked_resumed(std::vector<SampleResult> done, int64_t first,
                                          int64_t end) {
  std::vector<bool> seen(static_cast<size_t>(end - first), false);
  for (const auto& r : done) {
    if (r.index < first || r.index >= end || seen[static_cast<size_t>(r.index - first)]) {
      throw InvalidArgument(
          "resume", fmt::format("sample {} is outside this run's samples [{}, {}) or given twice",
                                r.index, first, end));
    }
    seen[static_cast<size_t>(r.index - first)] = true;
  }
  return done;
}

// Runs on_progress after each sample, counting from `done` of `total`.
SampleSink progress_sink(const RunOptions& options, int64_t done, int64_t total) {
  return [&options, done, total, count = done](const SampleResult& r) mutable {
    if (options.on_sample) options.on_sample(r);
    if (options.on_progress) options.on_progress(++count, total);
  };
}

}  // namespace

std::pair<int64_t, int64_t> Shard::range(int64_t n) const { return shard_block(index, count, n); }

std::string describe(const SolveCheckReport& c) {
  if (!c.error.empty()) return "not checked: " + c.error;
  if (c.samples == 0) return "not checked: no sample could be re-solved";
  return fmt::format(
      "{:.3g} nats mean |error|, {:.3g} max, on {} samples (effect on the mean bpd {:+.2g}), "
      "against float64 {} at rtol {:.3g}",
      c.mean_abs_error_nats, c.max_abs_error_nats, c.samples, c.mean_bpd_effect, c.solver, c.rtol);
}

Dataset dataset_of(const Data& data) {
  auto dataset = make_dataset(data.values, data.name);
  if (data.labels.defined()) dataset.labels = check_labels(data.labels, dataset.size, data.name);
  dataset.labels_path = data.labels_name;
  return dataset;
}

std::string data_sha256(const Data& data) {
  return data.sha256.empty() ? tensor_sha256(data.values) : data.sha256;
}

std::string labels_sha256(const Data& data) {
  return data.labels_sha256.empty() ? tensor_sha256(data.labels) : data.labels_sha256;
}

ScoreSetup fit_exact_rows(const ScoreSetup& setup, std::span<const VelocityField* const> fields,
                          double memory_mb, std::string* how) {
  if (setup.trace_spec.method != Trace::kExact || fields.empty()) return setup;
  const auto budget_bytes = static_cast<int64_t>(memory_mb * 1e6);
  const auto available = available_memory_bytes();
  RowBudget fewest;
  for (const auto* field : fields) {
    const auto fit = rows_for_memory(exact_bytes_per_row(*field), budget_bytes, available);
    if (field == fields.front() || fit.max_rows < fewest.max_rows) fewest = fit;
  }
  if (how) *how = "--max-rows auto: " + fewest.how;
  auto options = setup.options;
  options.trace.max_rows = fewest.max_rows;
  return make_score_setup(options);
}

nlohmann::json result_options(nlohmann::json options) {
  for (const char* key : {"batch_size", "threads", "max_rows", "rows_per_call"}) options.erase(key);
  return options;
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
  // A field both runs have but with other values first: it says more than the fields it brings
  // along.
  for (const auto& [key, value] : b.items()) {
    if (a.contains(key) && a.at(key) != value) {
      return fmt::format("'{}' differs (file: {}, this run: {})", dotted(key), a.at(key).dump(),
                         value.dump());
    }
  }
  for (const auto& [key, value] : b.items()) {
    if (!a.contains(key)) {
      return fmt::format("'{}' is missing from the file (this run: {})", dotted(key), value.dump());
    }
  }
  for (const auto& [key, value] : a.items()) {
    if (!b.contains(key))
      return fmt::format("'{}' is not part of this run (file: {})", dotted(key), value.dump());
  }
  return {};
}

RunReport run_score(const Model& model, const Data& data, const RunOptions& options) {
  const auto& state = detail::ModelAccess::state(model);
  auto setup = make_score_setup(options.score);
  const auto dataset = dataset_of(data);
  check_protocol(options.protocol, options.score, dataset, *state.field);
  const auto prepared = bind_model(model, options.score, dataset);
  std::string rows_chosen;
  if (options.fit_rows_to_memory_mb) {
    const VelocityField* fields[] = {prepared.field.get()};
    setup = fit_exact_rows(setup, fields, *options.fit_rows_to_memory_mb, &rows_chosen);
  }
  const auto [first, end] = options.shard.range(dataset.size);
  const auto digest = data_sha256(data);
  auto identity = run_identity(prepared, setup, dataset, data, digest);
  identity["shard"] = {{"index", options.shard.index},
                       {"count", options.shard.count},
                       {"first", first},
                       {"end", end}};

  std::optional<BudgetAdvice> advice;
  if (options.target_stderr)
    advice = budget_advice(prepared, setup, dataset, *options.target_stderr);

  std::vector<SampleResult> done;
  if (options.resume) done = checked_resumed(options.resume(identity), first, end);
  const auto resumed = static_cast<int64_t>(done.size());
  std::vector<int64_t> todo;
  {
    std::vector<bool> finished(static_cast<size_t>(end - first), false);
    for (const auto& r : done) finished[static_cast<size_t>(r.index - first)] = true;
    for (int64_t i = first; i < end; ++i) {
      if (!finished[static_cast<size_t>(i - first)]) todo.push_back(i);
    }
  }
  auto report = score_model(prepared, setup, dataset, digest, todo, std::move(done),
                            progress_sink(options, 0, static_cast<int64_t>(todo.size())));
  report.budget_advice = advice;
  report.exact_trace_rows = rows_chosen;
  report.protocol = protocol_record(options.protocol);
  if (options.shard.count > 1) report.shard = options.shard;
  if (options.resume) report.resumed_samples = resumed;
  if (options.check_solve > 0 && report.summary.ok > 0) {
    report.check_solve = solve_check_report(model, options, setup, dataset, report.samples);
  }
  if (options.round_trip) {
    report.round_trip =
        round_trip(*prepared.field, dataset, *prepared.preprocessing, setup.spec(), todo);
  }
  return report;
}

CompareReport run_compare(std::span<const Model> models, const Data& data,
                          const RunOptions& options) {
  if (models.size() < 2) throw InvalidArgument("models", "compare needs two or more models");
  auto setup = make_score_setup(options.score);
  const auto dataset = dataset_of(data);
  const auto digest = data_sha256(data);
  // Every model prepared, and checked to see the data as the first does, before any is scored.
  std::vector<BoundModel> prepared;
  std::vector<const VelocityField*> fields;
  for (const auto& model : models) {
    const auto& state = detail::ModelAccess::state(model);
    check_protocol(options.protocol, options.score, dataset, *state.field);
    prepared.push_back(bind_model(model, options.score, dataset));
    check_same_data_view(prepared.front(), prepared.back());
    fields.push_back(prepared.back().field.get());
  }
  CompareReport report;
  if (options.fit_rows_to_memory_mb) {
    setup = fit_exact_rows(setup, fields, *options.fit_rows_to_memory_mb, &report.exact_trace_rows);
  }
  // One seed for every model: each sample's noise and probes are keyed by (seed, index), so they
  // are common to all of them.
  const auto n = dataset.size;
  const auto total = n * static_cast<int64_t>(models.size());
  for (size_t i = 0; i < models.size(); ++i) {
    auto run = score_model(prepared[i], setup, dataset, digest, all_indices(dataset), {},
                           progress_sink(options, n * static_cast<int64_t>(i), total));
    if (run.summary.ok == 0) throw all_failed_error(run.summary.total);
    report.models.push_back(std::move(run));
  }
  for (size_t a = 0; a < report.models.size(); ++a) {
    for (size_t b = a + 1; b < report.models.size(); ++b) {
      report.paired.push_back(paired_difference(report.models[a].samples, report.models[b].samples,
                                                static_cast<int64_t>(a), static_cast<int64_t>(b)));
    }
  }
  report.seed = options.score.seed;
  report.protocol = protocol_record(options.protocol);
  return report;
}

nlohmann::json to_json(const GateResult& g) {
  return {{"name", g.name},        {"passed", g.passed},       {"regression_bpd", g.regression},
          {"stderr", g.std_error}, {"limit_bpd", g.threshold}, {"rule", to_string(g.rule)},
          {"message", g.message}};
}

GateResult read_gate(const ReportReader& report, const std::string& key) {
  GateResult g;
  g.name = report.string(key + ".name");
  g.passed = report.boolean(key + ".passed");
  g.regression = report.number_or_null(key + ".regression_bpd").value_or(NAN);
  g.std_error = report.number_or_null(key + ".stderr").value_or(NAN);
  g.threshold = report.number(key + ".limit_bpd");
  g.rule = report.parsed(key + ".rule", parse_gate_rule);
  g.message = report.string(key + ".message");
  return g;
}

nlohmann::json to_json(const OptionsRecord& o) {
  nlohmann::json j = {
      {"solver", to_string(o.solver.method)},
      {"trace", to_string(o.trace.method)},
      {"seed", o.seed},
      {"dtype", to_string(o.dtype)},
      {"device", to_string(o.device)},
      {"batch_size", o.batch_size},
      {"threads", o.threads},
      {"max_nfe", o.solver.max_nfe},
      {"flow_time_range", {o.flow_time_prior, o.flow_time_data}},
  };
  if (o.dequant_draws) j["dequant_draws"] = *o.dequant_draws;
  if (o.rows_per_call > 0) j["rows_per_call"] = o.rows_per_call;
  if (is_adaptive(o.solver.method)) {
    j["rtol"] = o.solver.rtol;
    j["atol"] = o.solver.atol;
    j["error_norm"] = to_string(o.solver.error_norm);
    j["quadrature"] = to_string(o.solver.quadrature);
    j["step_control"] = "per-sample";
  } else {
    j["steps"] = o.solver.steps;
  }
  if (o.trace.method == Trace::kHutchinson) {
    j["noise"] = to_string(o.trace.noise);
    j["probes"] = o.trace.probes;
  } else {
    j["max_rows"] = o.trace.max_rows;
  }
  return j;
}

OptionsRecord read_options(const ReportReader& report) {
  // A name the report holds, parsed as the options parse it; a bad one names the key.
  const auto parsed = [&](const char* key, auto parse) {
    return report.parsed(fmt::format("options.{}", key), parse);
  };
  OptionsRecord o;
  o.solver.method = parsed("solver", parse_solver);
  o.trace.method = parsed("trace", parse_trace);
  o.seed = report.unsigned_integer("options.seed");
  if (report.contains("options.dequant_draws"))
    o.dequant_draws = report.integer("options.dequant_draws");
  o.dtype = parsed("dtype", parse_dtype);
  o.device = parsed("device", parse_device);
  o.batch_size = report.integer("options.batch_size");
  if (report.contains("options.rows_per_call"))
    o.rows_per_call = report.integer("options.rows_per_call");
  const auto threads = report.integer("options.threads");
  if (threads < 0 || threads > 1 << 20) {
    report.invalid("options.threads", fmt::format("{} is not a thread count", threads));
  }
  o.threads = static_cast<int>(threads);
  o.solver.max_nfe = report.integer("options.max_nfe");
  const auto range = report.numbers_or_null("options.flow_time_range", 2);
  o.flow_time_prior = range[0];
  o.flow_time_data = range[1];
  if (is_adaptive(o.solver.method)) {
    o.solver.rtol = report.number("options.rtol");
    o.solver.atol = report.number("options.atol");
    o.solver.error_norm = parsed("error_norm", parse_error_norm);
    o.solver.quadrature = parsed("quadrature", parse_quadrature);
  } else {
    o.solver.steps = report.integer("options.steps");
  }
  if (o.trace.method == Trace::kHutchinson) {
    o.trace.noise = parsed("noise", parse_probe_noise);
    o.trace.probes = report.integer("options.probes");
  } else {
    o.trace.max_rows = report.integer("options.max_rows");
  }
  return o;
}

nlohmann::json to_json(const ProtocolRecord& p) {
  nlohmann::json settings = nlohmann::json::array();
  for (const auto& s : p.settings) {
    settings.push_back(
        {{"option", s.option},
         {"value", s.value},
         {"applied", s.applied},
         {"replaced_by", s.applied ? nlohmann::json(nullptr) : nlohmann::json(s.replaced_by)}});
  }
  return {{"name", p.name},
          {"source", p.source},
          {"settings", settings},
          {"note",
           "each setting is an ordinary option; the report's options, preprocessing and contract "
           "record what was in effect"}};
}

ProtocolRecord read_protocol(const ReportReader& report) {
  ProtocolRecord p{report.string("protocol.name"), report.string("protocol.source"), {}};
  for (size_t i = 0; i < report.size("protocol.settings"); ++i) {
    const auto key = fmt::format("protocol.settings.{}", i);
    ProtocolRecord::Setting s{report.string(key + ".option"),
                              report.string(key + ".value"),
                              report.boolean(key + ".applied"),
                              {}};
    if (!s.applied) s.replaced_by = report.string(key + ".replaced_by");
    p.settings.push_back(std::move(s));
  }
  return p;
}

nlohmann::json to_json(const BudgetAdvice& a) {
  const auto& p = a.pilot;
  nlohmann::json j = {{"target_stderr_bpd", a.target_stderr_bpd},
                      {"pilot",
                       {{"samples", p.samples},
                        {"draws", p.draws},
                        {"probes", p.probes},
                        {"ok", p.ok},
                        {"stderr_by_source",
                         {{"total", number_or_null(p.stderr_by_source.total)},
                          {"data", number_or_null(p.stderr_by_source.data)},
                          {"dequantization", number_or_null(p.stderr_by_source.dequantization)},
                          {"estimator", number_or_null(p.stderr_by_source.estimator)}}}}}};
  if (const auto& v = a.per_sample_variance_bpd2) {
    j["per_sample_variance_bpd2"] = {
        {"data", v->data}, {"one_draw", v->one_draw}, {"one_probe", v->one_probe}};
  }
  j["advice"] = nullptr;
  if (const auto& b = a.advice) {
    j["advice"] = {{"samples", b->samples},
                   {"draws", b->draws},
                   {"probes", b->probes},
                   {"cost_rows_per_evaluation_step", b->cost}};
  }
  j["note"] = a.note;
  return j;
}

BudgetAdvice read_budget_advice(const ReportReader& report) {
  BudgetAdvice a;
  a.target_stderr_bpd = report.number("budget_advice.target_stderr_bpd");
  auto& p = a.pilot;
  p.samples = report.integer("budget_advice.pilot.samples");
  p.draws = report.integer("budget_advice.pilot.draws");
  p.probes = report.integer("budget_advice.pilot.probes");
  p.ok = report.integer("budget_advice.pilot.ok");
  const auto source = [&](const char* name) {
    return report.number_or_null(fmt::format("budget_advice.pilot.stderr_by_source.{}", name))
        .value_or(NAN);
  };
  p.stderr_by_source = {source("total"), source("data"), source("dequantization"),
                        source("estimator")};
  if (report.contains("budget_advice.per_sample_variance_bpd2")) {
    a.per_sample_variance_bpd2 =
        BudgetVariances{report.number("budget_advice.per_sample_variance_bpd2.data"),
                        report.number("budget_advice.per_sample_variance_bpd2.one_draw"),
                        report.number("budget_advice.per_sample_variance_bpd2.one_probe")};
  }
  if (!report.value("budget_advice.advice").is_null()) {
    a.advice = Budget{report.integer("budget_advice.advice.samples"),
                      report.integer("budget_advice.advice.draws"),
                      report.integer("budget_advice.advice.probes"),
                      report.number("budget_advice.advice.cost_rows_per_evaluation_step")};
  }
  a.note = report.string("budget_advice.note");
  return a;
}

nlohmann::json to_json(const Contract& c) {
  const auto or_null = [](const auto& value, auto write) {
    return value ? nlohmann::json(write(*value)) : nlohmann::json(nullptr);
  };
  const auto text = [](const auto& v) { return to_string(v); };
  const auto same = [](const auto& v) { return v; };
  return {
      {"signature", to_string(c.signature)},
      {"time_input", to_string(c.time_input)},
      {"time", to_string(c.time)},
      {"parameterization", to_string(c.parameterization)},
      {"schedule", or_null(c.schedule, text)},
      {"time_range", {c.time_lo, c.time_hi}},
      {"flow_time_integrated", {c.t_data(), c.t_prior()}},
      {"prior", describe_prior(c.prior_scale)},
      {"prior_scale", c.prior_scale},
      {"shape", or_null(c.shape, same)},
      {"data", {{"levels", or_null(c.data_levels, same)}, {"scale", or_null(c.data_scale, text)}}},
      {"conditioning", to_string(c.conditional ? Conditioning::kLabel : Conditioning::kNone)},
      {"sources", c.sources},
  };
}

// The inverse of to_json(Contract) for the section at `key`: each field parsed as a manifest's
// (flowlik/conventions.h), the derived ones (prior, flow_time_integrated) not read.
Contract read_contract(const ReportReader& report, const std::string& key) {
  const auto at = [&](const char* field) { return fmt::format("{}.{}", key, field); };
  Contract c;
  c.signature = report.parsed(at("signature"), parse_signature);
  c.time_input = report.parsed(at("time_input"), parse_time_input);
  c.time = report.parsed(at("time"), parse_time_convention);
  c.parameterization = report.parsed(at("parameterization"), parse_parameterization);
  if (!report.is_null(at("schedule"))) c.schedule = report.parsed(at("schedule"), parse_schedule);
  const auto range = report.numbers_or_null(at("time_range"), 2);
  const TimeRange interval{range[0], range[1]};
  report.checked(at("time_range"), [&] { check(interval); });
  c.time_lo = interval.lo;
  c.time_hi = interval.hi;
  c.prior_scale = report.number(at("prior_scale"));
  if (!(c.prior_scale > 0.0 && std::isfinite(c.prior_scale))) {
    report.invalid(at("prior_scale"), "not a positive scale");
  }
  if (!report.is_null(at("shape"))) {
    c.shape = report.integers(at("shape"));
    if (std::ranges::any_of(*c.shape, [](int64_t d) { return d < 1 || d > kMaxReportCount; })) {
      report.invalid(at("shape"), "not a sample's shape (sizes of at least 1)");
    }
  }
  if (!report.is_null(at("data.levels"))) c.data_levels = read_levels(report, at("data.levels"));
  if (!report.is_null(at("data.scale")))
    c.data_scale = report.parsed(at("data.scale"), parse_data_map);
  c.conditional = report.parsed(at("conditioning"), parse_conditioning) == Conditioning::kLabel;
  c.sources = report.strings(at("sources"));
  return c;
}

nlohmann::json to_json(const RunReport::ModelRecord& m) {
  return {{"path", m.path},
          {"format", m.format},
          {"sha256", m.sha256},
          {"parameters", m.parameters},
          {"contract", to_json(m.contract)}};
}

RunReport::ModelRecord read_model_record(const ReportReader& report) {
  RunReport::ModelRecord m;
  m.path = report.string("model.path");
  m.format = report.string("model.format");
  m.sha256 = report.string("model.sha256");
  m.parameters = report.integer("model.parameters");
  m.contract = read_contract(report, "model.contract");
  return m;
}

nlohmann::json to_json(const RunReport& r) {
  nlohmann::json j = {
      {"schema_version", kReportSchemaVersion},
      {"tool", tool_json("score", r.tool_version)},
      {"model", to_json(r.model)},
      {"data", data_json(r.data)},
      {"preprocessing", preprocessing_json(r.preprocessing, r.data.dim)},
      {"options", to_json(r.options)},
      {"samples", samples_json(r.summary)},
      {"metrics", metrics_json(r.summary)},
      {"wall_time_s", r.wall_seconds},
  };
  if (!r.caveat.empty()) j["preprocessing"]["caveat"] = r.caveat;
  if (r.round_trip) j["round_trip"] = to_json(*r.round_trip);
  if (!r.exact_trace_rows.empty()) j["exact_trace_rows"] = r.exact_trace_rows;
  if (r.protocol) j["protocol"] = to_json(*r.protocol);
  if (r.check_solve) j["check_solve"] = to_json(*r.check_solve);
  if (r.shard) j["shard"] = r.shard->json(r.data.n);
  if (!r.per_sample.empty()) j["per_sample"] = r.per_sample;
  if (r.resumed_samples) j["resumed_samples"] = *r.resumed_samples;
  if (r.budget_advice) j["budget_advice"] = to_json(*r.budget_advice);
  for (const auto& g : r.gates) j["gates"].push_back(to_json(g));
  return j;
}

nlohmann::json to_json(const CompareReport& r) {
  nlohmann::json j = {
      {"schema_version", kReportSchemaVersion},
      {"tool", tool_json("compare")},
      {"common_random_numbers",
       "every model saw the same dequantization noise and probes for each sample (seed " +
           std::to_string(r.seed) + ")"}};
  for (const auto& m : r.models) j["models"].push_back(to_json(m));
  if (!r.exact_trace_rows.empty()) j["exact_trace_rows"] = r.exact_trace_rows;
  if (r.protocol) j["protocol"] = to_json(*r.protocol);
  for (const auto& p : r.paired) {
    j["paired"].push_back(
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
  for (const auto& g : r.gates) j["gates"].push_back(to_json(g));
  return j;
}

}  // namespace flowlik
