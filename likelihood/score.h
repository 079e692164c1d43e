// Scoring a dataset: per-sample log-likelihood and bits per dimension, and their summary.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "estimators/trace_estimator.h"
#include "likelihood/error.h"
#include "likelihood/cnf_solver.h"
#include "likelihood/dataset.h"
#include "likelihood/preprocessing.h"
#include "likelihood/statistics.h"
#include "likelihood/velocity_field.h"

namespace flowlik {

struct ScoreOptions {
  SolverSpec solver;
  int64_t batch_size = 32;  // samples (rows, with dequantization draws) solved together
};

enum class SampleStatus { kOk, kFailed, kNonFinite };
std::string to_string(SampleStatus status);

struct SampleResult {
  int64_t index = 0;
  SampleStatus status = SampleStatus::kOk;
  std::string detail;                // why, when the status is not ok
  double log_likelihood = NAN;       // nats, of the raw data (a lower bound for discrete data)
  double bpd = NAN;                  // -log_likelihood / (D ln 2)
  double model_log_likelihood = NAN; // log p_model(y) on the model's own input space
  double log_det = NAN;              // L = log |det df/dx01| of the preprocessing map
  double prior_log_density = NAN;    // log p0(x0)
  double estimator_std_error = NAN;  // of log_likelihood, from the spread of K >= 2 Hutchinson probes
  double dequant_std_error = NAN;    // of log_likelihood, from the spread between M >= 2 dequantization draws
  std::vector<double> draw_log_likelihoods;  // with M >= 2: each draw's bound, log p(y_m) + L_m - D ln K
  int64_t nfe = 0;                   // function evaluations spent on this sample's solve, failed ones included
};

using SampleSink = std::function<void(const SampleResult&)>;

// Scores data[indices], calling `sink` once per sample in the order of `indices`. An adaptive solver
// solves each sample (each of its dequantization draws) with its own steps, options.batch_size rows at a
// time, a finished row making room for the next (likelihood/per_sample_solver.h): a sample's result and
// NFE do not depend on the batch size, the order or the shard, and a sample fails alone. A fixed-step
// solver solves batches of options.batch_size samples; a batch whose solve fails is retried one sample at
// a time. A sample that fails, or whose result is not finite, is passed on with its status set.
void score_dataset(const VelocityField& field, const TraceEstimator& trace, const Dataset& data,
                   const Preprocessing& pre, const ScoreOptions& options,
                   std::span<const int64_t> indices, const SampleSink& sink);

struct ScoreSummary {
  int64_t total = 0;
  int64_t ok = 0;
  MeanEstimate log_likelihood;   // over samples with status ok
  MeanEstimate bpd;
  // The trace estimator's own standard error of the mean log-likelihood (and bpd), apart from the
  // data's: sqrt(sum_i se_i^2) / n. NaN unless every sample has K >= 2 probes.
  double estimator_std_error_log_likelihood = NAN;
  double estimator_std_error_bpd = NAN;
  // The same for the dequantization noise, from the spread between M >= 2 draws: sqrt(sum_i se_i^2) / n.
  // NaN unless every sample has M >= 2 draws.
  double dequant_std_error_log_likelihood = NAN;
  double dequant_std_error_bpd = NAN;
  // What is left of the total standard error for the data themselves, in quadrature:
  // sqrt(total^2 - dequantization^2 - estimator^2), a part that was not estimated counting as 0.
  double data_std_error_log_likelihood = NAN;
  double data_std_error_bpd = NAN;
  double nfe_mean = 0.0;
  int64_t nfe_max = 0;
};

// n of `candidates` (at most all of them), evenly spread from an offset set by `seed`, in increasing order:
// the same subset for the same seed and candidates. For first passes and checks on part of a dataset.
std::vector<int64_t> spread_subset(std::span<const int64_t> candidates, int64_t n, uint64_t seed);

// The summary of any set of results, empty or all failed included (means and errors are NaN without an
// ok sample), so that a shard's report can always be written and merged.
ScoreSummary summarize_results(std::span<const SampleResult> results, int64_t dim);
// summarize_results, but throws Error(kAllFailed) when no sample has status ok.
ScoreSummary summarize(std::span<const SampleResult> results, int64_t dim);
// The error a run ends with when it scored samples but none of them ok (its outputs written first).
Error all_failed_error(int64_t total);

}  // namespace flowlik
