// The public API (include/flowlik/flowlik.h) over the library's own types.
#include <fmt/format.h>

#include <cmath>
#include <numeric>
#include <utility>

#include "flowlik/flowlik.h"
#include "likelihood/comparison.h"
#include "likelihood/dataset.h"
#include "likelihood/model_run.h"
#include "likelihood/sample.h"
#include "likelihood/score.h"

namespace flowlik {

struct Model::State {
  std::shared_ptr<const VelocityField> field;  // never bound: each score binds a copy
  ModelOptions options;
};

namespace {

Dataset to_dataset(const Data& data) {
  auto dataset = make_dataset(data.values, data.name);
  if (data.labels.defined()) dataset.labels = check_labels(data.labels, dataset.size, data.name);
  return dataset;
}

}  // namespace

std::string version() { return FLOWLIK_VERSION; }

Model Model::load(const std::string& path, const ModelOptions& options) {
  return Model(std::make_shared<State>(State{load_field(path, options), options}));
}

const std::string& Model::path() const { return state_->field->path(); }
std::string Model::format() const { return state_->field->format(); }
std::string Model::contract_json() const {
  return flowlik::contract_json(state_->field->contract()).dump();
}
const ModelOptions& Model::options() const { return state_->options; }

Data load_data(const std::string& path, const std::string& labels_path) {
  Data data;
  data.values = load_array(path);
  data.name = path;
  make_dataset(data.values, path);  // the checks --data makes, here rather than at the first score
  if (!labels_path.empty()) data.labels = load_labels(labels_path, data.values.size(0));
  return data;
}

Scores score(const Model& model, const Data& data, const ScoreOptions& options,
             const SampleSink& on_sample) {
  const auto setup = make_score_setup(options);
  const auto dataset = to_dataset(data);
  const auto prepared = prepare_model(model.state().field, model.options(), options, dataset);
  auto run = score_model(prepared, setup, dataset, "", all_indices(dataset), {}, on_sample);
  return {std::move(run.results), run.score.summary};
}

Comparison compare(std::span<const Model> models, const Data& data, const ScoreOptions& options) {
  if (models.size() < 2) throw InvalidArgument("models", "compare needs two or more models");
  const auto setup = make_score_setup(options);
  const auto dataset = to_dataset(data);
  std::vector<PreparedModel> prepared;
  for (const auto& model : models) {
    prepared.push_back(prepare_model(model.state().field, model.options(), options, dataset));
    check_same_data_view(prepared.front(), prepared.back());
  }
  Comparison comparison;
  for (const auto& model : prepared) {
    // One seed for every model: each sample's noise and probes are keyed by (seed, index), so they
    // are common to all of them.
    auto run = score_model(model, setup, dataset, "", all_indices(dataset), {}, {});
    if (run.score.summary.ok == 0) throw all_failed_error(run.score.summary.total);
    comparison.models.push_back({std::move(run.results), run.score.summary});
  }
  for (size_t a = 0; a < comparison.models.size(); ++a) {
    for (size_t b = a + 1; b < comparison.models.size(); ++b) {
      comparison.differences.push_back(
          paired_difference(comparison.models[a].samples, comparison.models[b].samples,
                            static_cast<int64_t>(a), static_cast<int64_t>(b)));
    }
  }
  return comparison;
}

Generated sample(const Model& model, int64_t count, const ScoreOptions& options,
                 const SampleSink& on_sample, const torch::Tensor& labels) {
  if (count < 1) throw InvalidArgument("count", fmt::format("must be at least 1, got {}", count));
  const auto setup = make_score_setup(options);
  const auto field = bound_for_sampling(*model.state().field);
  std::vector<int64_t> indices(static_cast<size_t>(count));
  std::iota(indices.begin(), indices.end(), 0);
  std::vector<int64_t> shape = {count};
  shape.insert(shape.end(), field.shape().begin(), field.shape().end());
  const auto checked = labels.defined() ? check_labels(labels, count, "labels") : torch::Tensor();
  auto rows = generate_rows(field, *setup.trace, ScoreSpec{setup.solver, options.batch_size},
                            options.seed, indices, checked, on_sample);
  Generated out;
  out.points = rows.points.view(shape);
  out.summary = summarize_results(rows.results, field.dim());
  out.samples = std::move(rows.results);
  return out;
}

RoundTripError round_trip(const Model& model, const Data& data, const ScoreOptions& options) {
  const auto setup = make_score_setup(options);
  const auto dataset = to_dataset(data);
  const auto prepared = prepare_model(model.state().field, model.options(), options, dataset);
  return flowlik::round_trip(*prepared.field, dataset, *prepared.preprocessing,
                             ScoreSpec{setup.solver, options.batch_size}, all_indices(dataset));
}

}  // namespace flowlik
