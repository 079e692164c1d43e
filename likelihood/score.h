// Scoring a dataset: per-sample log-likelihood and bits per dimension, and their summary.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "estimators/trace_estimator.h"
#include "flowlik/error.h"
#include "flowlik/results.h"
#include "io/dataset.h"
#include "likelihood/model/preprocessing.h"
#include "likelihood/model/velocity_field.h"
#include "likelihood/ode/cnf_solver.h"
#include "likelihood/statistics.h"

namespace flowlik {

// The typed form of flowlik::ScoreOptions that scoring runs on.
struct ScoreSpec {
  SolverSpec solver;
  int64_t batch_size = 32;  // samples (rows, with dequantization draws) solved together
};

// Scores data[indices], calling `sink` once per sample in the order of `indices`. An adaptive
// solver solves each sample (each of its dequantization draws) with its own steps,
// options.batch_size rows at a time, a finished row making room for the next
// (likelihood/ode/per_sample_solver.h): a sample's result and NFE do not depend on the batch size,
// the order or the shard, and a sample fails alone. A fixed-step solver solves batches of
// options.batch_size samples; a batch whose solve fails is retried one sample at a time. A sample
// that fails, or whose result is not finite, is passed on with its status set.
void score_dataset(const VelocityField& field, const TraceEstimator& trace, const Dataset& data,
                   const Preprocessing& pre, const ScoreSpec& options,
                   std::span<const int64_t> indices, const SampleSink& sink);

// n of `candidates` (at most all of them), evenly spread from an offset set by `seed`, in
// increasing order: the same subset for the same seed and candidates. For first passes and checks
// on part of a dataset.
std::vector<int64_t> spread_subset(std::span<const int64_t> candidates, int64_t n, uint64_t seed);

// The summary of any set of results, empty or all failed included (means and errors are NaN without
// an ok sample), so that a shard's report can always be written and merged.
ScoreSummary summarize_results(std::span<const SampleResult> results, int64_t dim);
// summarize_results, but throws NoSampleScored when no sample has status ok.
ScoreSummary summarize(std::span<const SampleResult> results, int64_t dim);
// The error a run ends with when it scored samples but none of them ok (its outputs written first).
NoSampleScored all_failed_error(int64_t total);

}  // namespace flowlik
