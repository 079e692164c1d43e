// run_sample (flowlik/run.h): the flowlik program's `sample`, less its command line and files.
#include <fmt/format.h>

#include <chrono>
#include <filesystem>

#include "flowlik/error.h"
#include "flowlik/run.h"
#include "io/dataset.h"
#include "likelihood/model_run.h"
#include "likelihood/report.h"
#include "likelihood/sample.h"

namespace flowlik {
namespace {

// What a sample run drew: the report's "generated", and part of its identity.
nlohmann::json generated_json(const SampleReport& r) {
  const auto [first, end] = r.shard ? r.shard->range(r.count) : Shard{}.range(r.count);
  return {{"N", r.count},
          {"labels", r.labels.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.labels)},
          {"seed", r.options.seed},
          {"prior", describe_prior(r.model.contract.prior_scale)},
          {"noise",
           "x0 ~ p0, Philox keyed by (seed, sample index): the same point in any batch or shard"},
          {"first", first},
          {"end", end}};
}

}  // namespace

SampleReport run_sample(const Model& model, int64_t count, const SampleRunOptions& options) {
  if (count < 1) throw InvalidArgument("count", fmt::format("must be at least 1, got {}", count));
  const auto& state = detail::ModelAccess::state(model);
  auto setup = make_score_setup(options.score);
  const auto& contract = state.field->contract();
  const auto field = std::make_shared<VelocityField>(bound_for_sampling(*state.field, count));
  // The map from the model's space back to the data's levels, if the options or manifest give one.
  const auto map = resolve_data_map(options.score.data, contract);
  if (options.data_levels && !map) {
    throw InvalidArgument(
        "data_samples",
        fmt::format("{} declares no map to the data (manifest field 'data'); give --scale "
                    "unit|centered|logit[:lambda]",
                    state.field->path()));
  }
  // Bound for generation: no data, so no preprocessing.
  const BoundModel bound{model, field, std::make_shared<const Preprocessing>()};

  SampleReport report;
  if (options.fit_rows_to_memory_mb) {
    const VelocityField* fields[] = {field.get()};
    setup = fit_exact_rows(setup, fields, *options.fit_rows_to_memory_mb, &report.exact_trace_rows);
  }
  const auto [first, end] = options.shard.range(count);
  // Every sample's label, checked before any work; this shard's block of them.
  torch::Tensor labels;
  if (options.labels.defined()) {
    labels = check_labels(options.labels, count, "labels");
  } else if (!options.labels_path.empty()) {
    labels = load_labels(options.labels_path, count);
  }
  if (labels.defined()) labels = labels.narrow(0, first, end - first);
  std::vector<int64_t> indices;
  for (int64_t i = first; i < end; ++i) indices.push_back(i);

  report.options = options_record(setup, bound, at::get_num_threads());
  report.options.dequant_draws.reset();  // no data to dequantize
  if (options.labels.defined() || !options.labels_path.empty()) {
    report.labels = options.labels_path.empty()
                        ? "<tensor>"
                        : std::filesystem::absolute(options.labels_path).string();
  }
  report.count = count;
  if (options.shard.count > 1) report.shard = options.shard;
  report.model = {field->path(), field->format(), state.sha256, field->parameter_count(), contract};
  report.data_map = map;
  if (options.on_identity) {
    auto identity_contract = to_json(contract);
    identity_contract.erase("sources");
    options.on_identity({{"model_sha256", state.sha256},
                         {"generated", generated_json(report)},
                         {"contract", identity_contract},
                         {"options", result_options(to_json(report.options))}});
  }

  const auto start = std::chrono::steady_clock::now();
  const auto total = static_cast<int64_t>(indices.size());
  auto rows = generate_rows(*field, *setup.trace, setup.spec(), options.score.seed, indices, labels,
                            [&, done = int64_t{0}](const SampleResult& r) mutable {
                              if (options.on_sample) options.on_sample(r);
                              if (options.on_progress) options.on_progress(++done, total);
                            });
  report.wall_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::vector<int64_t> shape = {total};
  shape.insert(shape.end(), field->shape().begin(), field->shape().end());
  report.points = rows.points.view(shape);
  if (options.data_levels) report.levels = to_levels(rows.points, *map).view(shape);
  report.summary = summarize_results(rows.results, field->dim());
  report.samples = std::move(rows.results);
  return report;
}

nlohmann::json to_json(const SampleReport& r) {
  nlohmann::json j = {
      {"schema_version", kReportSchemaVersion},
      {"tool", tool_json("sample")},
      {"model", to_json(r.model)},
      {"generated", generated_json(r)},
      {"preprocessing",
       {{"kind", "generated"},
        {"description",
         "log_likelihood = log p1(x1) = log p0(x0) - integral of tr(dv/dx) dt along the forward "
         "solve, the model's density at the sample in its own space; bpd = -log_likelihood / (D "
         "ln 2)"}}},
      {"options", to_json(r.options)},
      {"samples", samples_json(r.summary)},
      {"metrics", metrics_json(r.summary)},
      {"wall_time_s", r.wall_seconds}};
  if (r.data_map) {
    const auto& map = *r.data_map;
    j["data_map"] = {{"scale", describe_scale(map)},
                     {"levels", map.levels},
                     {"sources", {{"scale", map.scale_source}, {"levels", map.levels_source}}},
                     {"how", "x01 from the map's inverse, level k = floor(K x01) in [0, K-1]"}};
  }
  if (!r.exact_trace_rows.empty()) j["exact_trace_rows"] = r.exact_trace_rows;
  if (r.shard) j["shard"] = r.shard->json(r.count);
  if (!r.samples_file.empty()) j["samples_file"] = r.samples_file;
  if (!r.data_samples_file.empty()) j["data_samples_file"] = r.data_samples_file;
  if (!r.per_sample.empty()) j["per_sample"] = r.per_sample;
  return j;
}

}  // namespace flowlik
