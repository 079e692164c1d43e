// Summary statistics a report needs (shared/MATH.md section 7).
#pragma once

#include <cstdint>
#include <span>

namespace flowlik {

struct MeanEstimate {
  int64_t count = 0;
  double mean = 0.0;
  double std_error = 0.0;  // sd / sqrt(n), sd with n - 1; NaN when n < 2
  double ci_low = 0.0;     // 95% interval, Student's t with n - 1 degrees of freedom
  double ci_high = 0.0;
};

// Throws std::invalid_argument on an empty span.
MeanEstimate estimate_mean(std::span<const double> values);

}  // namespace flowlik
