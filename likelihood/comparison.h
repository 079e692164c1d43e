// Comparing models on the same data: paired differences under common random numbers, and the
// regression gates a nightly CI job uses (shared/MATH.md section 7).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "flowlik/results.h"
#include "likelihood/score.h"
#include "likelihood/statistics.h"

namespace flowlik {

// Over the samples scored ok under both models. `a` and `b` hold one result per dataset index, in
// the same order. Throws NoSampleScored when no sample is ok under both.
PairedDifference paired_difference(std::span<const SampleResult> a, std::span<const SampleResult> b,
                                   int64_t a_index, int64_t b_index);

// The difference of two independent means, `now` minus `base` (an unpaired regression against a
// baseline report): standard errors add in quadrature, and the 95% interval uses Student's t with
// the Welch-Satterthwaite degrees of freedom, as the paired gate uses Student's t. A missing
// standard error (one sample) counts as zero.
MeanEstimate unpaired_difference(const MeanEstimate& now, const MeanEstimate& base);

// Throws InvalidArgument naming `gate_rule` and listing the valid names.
GateRule parse_gate_rule(const std::string& name);
std::string to_string(GateRule rule);

GateResult gate_regression(std::string name, const MeanEstimate& regression, double threshold,
                           GateRule rule);

}  // namespace flowlik
