// The flow run forward, from the prior to the data: generated samples with the log-density the
// model gives each of them in the same solve, and the round trip of data through the prior and
// back, a check of the solve (shared/MATH.md section 2, in the other direction).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "estimators/trace_estimator.h"
#include "flowlik/results.h"
#include "io/dataset.h"
#include "likelihood/model/preprocessing.h"
#include "likelihood/model/velocity_field.h"
#include "likelihood/score.h"

namespace flowlik {

// Receives each generated sample's result (index, log-likelihood and bpd in the model's space, NFE,
// status) and its point x1 [D] float64 at the data end (undefined when the solve failed).
using GeneratedSink = std::function<void(const SampleResult&, const torch::Tensor& x1)>;

// A copy of `field` bound to the shape of one sample its manifest declares, ready to generate
// `count` samples (the calls' rows chosen for that many: VelocityField::fit_rows_per_call). Throws
// ModelError naming the file when the manifest declares no shape.
VelocityField bound_for_sampling(const VelocityField& field, int64_t count);

// Draws x0 ~ p0 for each index (the prior's normal, keyed by (seed, index): the same point in any
// batch or shard), integrates [x, l] forward to the data end with the solver of `spec`, and passes
// on each sample, in the order of `indices`, with log p1(x1) = log p0(x0) - l(t_data). An adaptive
// solver steps each sample apart; a fixed-step batch that fails is retried one sample at a time.
// labels: [indices.size()] int64, sample b generated under class labels[b], for a
// class-conditional field (log p1(x1 | y)); undefined otherwise. Throws InvalidArgument naming
// `labels` when they are missing, not wanted, or of another length.
void generate(const VelocityField& field, const TraceEstimator& trace, const ScoreSpec& spec,
              uint64_t seed, std::span<const int64_t> indices, const torch::Tensor& labels,
              const GeneratedSink& sink);

// generate() gathered: the points [indices.size(), D] float64, in the order of `indices` (NaN rows
// for samples whose solve failed), and every sample's result; on_sample (if given) is called as
// each completes.
struct GeneratedRows {
  torch::Tensor points;
  std::vector<SampleResult> results;
};
GeneratedRows generate_rows(const VelocityField& field, const TraceEstimator& trace,
                            const ScoreSpec& spec, uint64_t seed, std::span<const int64_t> indices,
                            const torch::Tensor& labels, const SampleSink& on_sample = {});

// The round trip of data[indices] (draw 0 of the dequantization): encoded to the prior, decoded
// back, both with the solver of `spec` and a one-probe Hutchinson trace (the trace plays no part in
// the states). A sample whose solve fails counts in `failed` and in no error.
RoundTripError round_trip(const VelocityField& field, const Dataset& data, const Preprocessing& pre,
                          const ScoreSpec& spec, std::span<const int64_t> indices);

}  // namespace flowlik
