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

}  // namespace flowlik
