// flowlik as a library: the exact log-likelihood and bits per dimension of data under an exported
// flow model (a TorchScript module or an AOTInductor package), as the `flowlik` program computes
// them.
//
//   auto model = flowlik::Model::load("model.pt2");
//   auto scores = flowlik::score(model, flowlik::load_data("test.npy"));
//   scores.summary.bpd.mean, scores.summary.bpd.std_error, scores.samples[i].log_likelihood
//
// What the library takes care of: the model's contract (manifest and overrides: signature, time
// convention, parameterization, integration interval, prior), the data's preprocessing
// (dequantization, scaling and their log-determinant), per-sample adaptive solves whose results do
// not depend on the batch size, and failures of single samples, which are recorded in their results
// rather than thrown. Errors of the caller's input are thrown as flowlik::Error (flowlik/error.h).
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "flowlik/error.h"
#include "flowlik/options.h"
#include "flowlik/results.h"

namespace flowlik {

// The library's version, "MAJOR.MINOR.PATCH".
std::string version();

// Opts in to flowlik's stand-in for libtorch.so, the library libflowlik_libtorch_stub.so installed
// beside libflowlik.a, at `path`: a CPU run of an AOTInductor package then does not map LibTorch's
// CUDA libraries (half a gigabyte in a CUDA build), which the real libtorch.so depends on. A choice
// for the whole process, so it is the caller's; the flowlik program makes it. The file is used only
// if it carries the stand-in's marker symbol. Takes effect at the first package loaded.
void use_libtorch_stand_in(const std::string& path);

// For a signal handler (async-signal-safe: unlink and rmdir of recorded paths only): removes the
// files and folders that loaded AOTInductor packages were extracted into, which the process would
// otherwise leave behind. The flowlik program calls it on SIGINT, SIGTERM and SIGHUP.
void remove_package_folders_on_signal() noexcept;

namespace detail {
struct ModelAccess;
}

// A model file loaded with its contract, on a device and in a dtype, with the file's SHA-256: what
// a report says of it. Immutable: copies share the loaded network, and every scoring call binds a
// field of its own to its data's shape, so copies may be scored one after another in any order. A
// Model is not to be used from several threads at once.
class Model {
 public:
  // Recognises the format from the file's contents. Throws ModelError naming the file and the
  // fault, InvalidArgument for a bad option or override.
  static Model load(const std::string& path, const ModelOptions& options = {});

  const std::string& path() const;
  std::string format() const;        // "torchscript" or "aoti-package"
  const Contract& contract() const;  // in effect, with each field's origin; to_json (flowlik/run.h)
  const ModelOptions& options() const;
  const std::string& sha256() const;  // of the model file, as loaded

 private:
  friend struct detail::ModelAccess;
  struct State;  // the loaded network and its contract
  explicit Model(std::shared_ptr<const State> state) : state_(std::move(state)) {}
  std::shared_ptr<const State> state_;
};

// Data to score: values [N, *shape], float32 or float64 (continuous, scored as given) or uint8
// (discrete levels, dequantized as ScoreOptions::data says); labels [N] of an integer dtype for a
// class-conditional model. `name` stands for the data in messages and reports.
struct Data {
  torch::Tensor values;
  torch::Tensor labels;
  std::string name = "tensor";
  std::string labels_name;  // the labels' file, for reports; empty: none named
  // SHA-256 of the file the values (labels) were read from, for reports and run identities; empty:
  // the library hashes the tensor's bytes. A caller who changes `values` clears it.
  std::string sha256;
  std::string labels_sha256;
};

// An .npy file, and its labels if `labels_path` is given, as the program's --data and --labels read
// them. Throws DataError naming the file.
Data load_data(const std::string& path, const std::string& labels_path = "");
// Writes `values` [N, *shape] to an .npy file: uint8 as it is, any other dtype as float32. Throws
// OutputError naming the file.
void save_npy(const std::string& path, const torch::Tensor& values);

struct Scores {
  std::vector<SampleResult> samples;  // one per sample, in order; failed samples carry their status
  ScoreSummary summary;               // over the samples scored ok
};

// Scores every sample of `data`, calling on_sample (if given) as each completes, in order. A
// sample's result does not depend on the batch size or on the other samples. Throws
// InvalidArgument, DataError or ModelError for input that cannot be scored, before any sample is;
// never for one sample's failure.
Scores score(const Model& model, const Data& data, const ScoreOptions& options = {},
             const SampleSink& on_sample = {});

struct Comparison {
  std::vector<Scores> models;  // in the order given
  std::vector<PairedDifference>
      differences;  // every pair a < b: b minus a, over samples ok under both
};

// Two or more models scored on the same data with common random numbers: every sample gets the same
// dequantization noise and probes under every model, so that their paired differences have small
// standard errors. Throws InvalidArgument when the models see the data differently (shape,
// preprocessing, conditioning), NoSampleScored when a model scores no sample.
Comparison compare(std::span<const Model> models, const Data& data,
                   const ScoreOptions& options = {});

// Points drawn from the model: x0 ~ p0 for each index 0..count-1 (keyed by (options.seed, index),
// so that each is the same in any batch), carried forward to the data end, each with the model's
// log-density there from the same solve: log p1(x1) = log p0(x0) - integral of tr(dv/dx) dt.
struct Generated {
  torch::Tensor points;               // [count, *shape] float64 in the model's space; NaN if failed
  std::vector<SampleResult> samples;  // log_likelihood = log p1(x1); bpd = -log p1 / (D ln 2)
  ScoreSummary summary;               // over the samples generated ok
};

// The model's manifest must declare the shape of one sample. The solver, trace, seed and batch size
// of `options` apply; its data options do not. labels: [count] of an integer dtype, the class of
// each sample for a class-conditional model (its samples' log_likelihood is then log p1(x1 | y)).
// Throws ModelError for a model without a shape, InvalidArgument for labels missing or not wanted,
// or a bad option.
Generated sample(const Model& model, int64_t count, const ScoreOptions& options = {},
                 const SampleSink& on_sample = {}, const torch::Tensor& labels = {});

// Every sample of `data` (dequantization draw 0) carried to the prior and back with the solver of
// `options`: how far the solve is from retracing its path (RoundTripError, flowlik/results.h).
RoundTripError round_trip(const Model& model, const Data& data, const ScoreOptions& options = {});

}  // namespace flowlik
