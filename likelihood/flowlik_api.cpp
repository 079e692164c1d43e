// The public API (include/flowlik/flowlik.h) over the library's own types.
#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <numeric>
#include <utility>

#include "flowlik/flowlik.h"
#include "flowlik/run.h"
#include "io/dataset.h"
#include "io/file_digest.h"
#include "io/npy.h"
#include "likelihood/comparison.h"
#include "likelihood/model_run.h"
#include "likelihood/sample.h"
#include "likelihood/score.h"

namespace flowlik {

namespace {

const auto& state_of(const Model& model) { return detail::ModelAccess::state(model); }

}  // namespace

std::string version() { return FLOWLIK_VERSION; }

Model Model::load(const std::string& path, const ModelOptions& options) {
  auto field = load_field(path, options);
  return detail::ModelAccess::make({std::move(field), options, sha256_file(path)});
}

const std::string& Model::path() const { return state_->field->path(); }
std::string Model::format() const { return state_->field->format(); }
const Contract& Model::contract() const { return state_->field->contract(); }
const ModelOptions& Model::options() const { return state_->options; }
const std::string& Model::sha256() const { return state_->sha256; }

Data load_data(const std::string& path, const std::string& labels_path) {
  Data data;
  data.values = load_array(path);
  data.name = path;
  make_dataset(data.values, path);  // the checks --data makes, here rather than at the first score
  data.sha256 = sha256_file(path);
  if (!labels_path.empty()) {
    data.labels = load_labels(labels_path, data.values.size(0));
    data.labels_name = labels_path;
    data.labels_sha256 = sha256_file(labels_path);
  }
  return data;
}

Scores score(const Model& model, const Data& data, const ScoreOptions& options,
             const SampleSink& on_sample) {
  RunOptions run;
  run.score = options;
  run.on_sample = on_sample;
  auto report = run_score(model, data, run);
  return {std::move(report.samples), report.summary};
}

Comparison compare(std::span<const Model> models, const Data& data, const ScoreOptions& options) {
  RunOptions run;
  run.score = options;
  auto report = run_compare(models, data, run);
  Comparison comparison;
  for (auto& m : report.models) comparison.models.push_back({std::move(m.samples), m.summary});
  comparison.differences = std::move(report.paired);
  return comparison;
}

void save_npy(const std::string& path, const torch::Tensor& values) {
  NpyArray array;
  const auto contiguous = values.contiguous();
  array.dtype = contiguous.scalar_type() == torch::kUInt8 ? NpyDtype::kUint8 : NpyDtype::kFloat32;
  const auto typed = array.dtype == NpyDtype::kUint8 ? contiguous : contiguous.to(torch::kFloat32);
  array.shape = typed.sizes().vec();
  const auto bytes = static_cast<size_t>(typed.numel()) * typed.element_size();
  array.bytes.resize(bytes);
  if (bytes > 0) std::memcpy(array.bytes.data(), typed.data_ptr(), bytes);
  write_npy(path, array);
}

Generated sample(const Model& model, int64_t count, const ScoreOptions& options,
                 const SampleSink& on_sample, const torch::Tensor& labels) {
  if (count < 1) throw InvalidArgument("count", fmt::format("must be at least 1, got {}", count));
  const auto setup = make_score_setup(options);
  const auto field = bound_for_sampling(*state_of(model).field, count);
  std::vector<int64_t> indices(static_cast<size_t>(count));
  std::iota(indices.begin(), indices.end(), 0);
  std::vector<int64_t> shape = {count};
  shape.insert(shape.end(), field.shape().begin(), field.shape().end());
  const auto checked = labels.defined() ? check_labels(labels, count, "labels") : torch::Tensor();
  auto rows =
      generate_rows(field, *setup.trace, setup.spec(), options.seed, indices, checked, on_sample);
  Generated out;
  out.points = rows.points.view(shape);
  out.summary = summarize_results(rows.results, field.dim());
  out.samples = std::move(rows.results);
  return out;
}

RoundTripError round_trip(const Model& model, const Data& data, const ScoreOptions& options) {
  const auto setup = make_score_setup(options);
  const auto dataset = dataset_of(data);
  const auto bound = bind_model(model, options, dataset);
  return flowlik::round_trip(*bound.field, dataset, *bound.preprocessing, setup.spec(),
                             all_indices(dataset));
}

}  // namespace flowlik
