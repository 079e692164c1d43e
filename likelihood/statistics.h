// Summary statistics a report needs (shared/MATH.md section 7).
#pragma once

#include <cstdint>
#include <span>

#include "flowlik/results.h"

namespace flowlik {

// Throws std::invalid_argument on an empty span.
MeanEstimate estimate_mean(std::span<const double> values);

}  // namespace flowlik
