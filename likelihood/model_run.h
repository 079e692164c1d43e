// Scoring one model on one dataset, from the caller's options (flowlik/options.h) to per-sample
// results and what a report says of them. The library does here what a caller must not be left to
// do: the solve runs over the contract's interval, the preprocessing is resolved against the
// manifest and the data, and the prior and the preprocessing's log-determinant are part of every
// result.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "estimators/trace_factory.h"
#include "flowlik/flowlik.h"
#include "flowlik/options.h"
#include "flowlik/results.h"
#include "flowlik/run.h"
#include "io/dataset.h"
#include "likelihood/model/preprocessing.h"
#include "likelihood/model/velocity_field.h"
#include "likelihood/ode/cnf_solver.h"
#include "likelihood/report.h"
#include "likelihood/score.h"

namespace flowlik {

// What a flowlik::Model holds: the loaded field (never bound: each call binds a copy of its own),
// the options it was loaded with, the file's hash.
struct Model::State {
  std::shared_ptr<const VelocityField> field;
  ModelOptions options;
  std::string sha256;
};
namespace detail {
struct ModelAccess {
  static const Model::State& state(const Model& model) { return *model.state_; }
  static Model make(Model::State state) {
    return Model(std::make_shared<const Model::State>(std::move(state)));
  }
};
}  // namespace detail

// The public Data as the library's Dataset (its checks made). Throws DataError naming data.name.
Dataset dataset_of(const Data& data);

// The SHA-256 of the data's values (labels) as a report names it: the file's when the Data says
// so, else of the tensor's bytes.
std::string data_sha256(const Data& data);
std::string labels_sha256(const Data& data);

// The map between discrete data and the model's space, levels and scale with their sources: the
// options', else the manifest's `data` field (levels default 256); nullopt when neither names a
// scale. Throws InvalidArgument naming `levels` (outside [2, 256]) or `scale`.
std::optional<Preprocessing> resolve_data_map(const DataOptions& options, const Contract& contract);

// ScoreOptions checked and turned into the types scoring runs on. Throws InvalidArgument naming the
// field.
struct ScoreSetup {
  ScoreOptions options;  // as given
  SolverSpec solver;
  TraceSpec trace_spec;
  std::shared_ptr<const TraceEstimator> trace;
  ScoreSpec spec() const { return {solver, options.batch_size}; }
};
ScoreSetup make_score_setup(const ScoreOptions& options);

// The dtype and device of ModelOptions; a CUDA device loads LibTorch's CUDA backend
// (likelihood/model/device.h). Throws InvalidArgument naming `device`.
torch::TensorOptions tensor_options(const ModelOptions& options);

// A model file loaded with its contract (the manifest, overridden by options.contract), on the
// device and in the dtype asked for. Throws ModelError naming the file, InvalidArgument for a bad
// override.
std::shared_ptr<VelocityField> load_field(const std::string& path, const ModelOptions& options);

// One Model bound to one call's data: the immutable model (a copy, sharing its file's path and
// hash, the options it was loaded with and the loaded field), a field of this call's own bound to
// the data's per-sample shape (sharing the loaded network), and the data's preprocessing resolved
// against the manifest.
struct BoundModel {
  Model model;
  std::shared_ptr<VelocityField> field;
  std::shared_ptr<const Preprocessing> preprocessing;
  const std::string& path() const { return field->path(); }
};

// Throws InvalidArgument (labels missing or unexpected, options that do not apply to the data),
// DataError (data the model cannot take), before any sample is scored.
BoundModel bind_model(const Model& model, const ScoreOptions& options, const Dataset& data);

// Throws InvalidArgument naming the field when `other` sees the data differently from `first`
// (preprocessing, shape, conditioning): paired differences of such models mean nothing.
void check_same_data_view(const BoundModel& first, const BoundModel& other);

// Scores data[indices], calling on_sample as each completes, and reports them together with `done`,
// results of an earlier run (RunReport's samples, summary, model, data, preprocessing, options and
// time; the caller adds the rest). A run with no ok sample has summary.ok = 0 and NaN means (the
// caller decides whether that is an error: all_failed_error in likelihood/score.h).
RunReport score_model(const BoundModel& model, const ScoreSetup& setup, const Dataset& data,
                      const std::string& data_sha256, std::span<const int64_t> indices,
                      std::vector<SampleResult> done, const SampleSink& on_sample);

// Every index of the dataset, in order.
std::vector<int64_t> all_indices(const Dataset& data);

// The "options" object of a report: every option in effect, by its name in flowlik/options.h.
OptionsRecord options_record(const ScoreSetup& setup, const BoundModel& model, int threads);

// `setup` with the exact trace's rows per call sized to a memory budget (MB; 0: half of the memory
// available), measured on each field, the fewest over them; unchanged for the Hutchinson trace.
// `how` (if given) receives how the value was chosen, for the report.
ScoreSetup fit_exact_rows(const ScoreSetup& setup, std::span<const VelocityField* const> fields,
                          double memory_mb, std::string* how = nullptr);

}  // namespace flowlik
