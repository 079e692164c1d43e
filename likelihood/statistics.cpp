#include "likelihood/statistics.h"

#include <boost/math/distributions/students_t.hpp>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace flowlik {

MeanEstimate estimate_mean(std::span<const double> values) {
  if (values.empty()) throw std::invalid_argument("estimate_mean: no values");
  MeanEstimate out;
  out.count = static_cast<int64_t>(values.size());
  // Two passes: the mean first, then squared deviations from it, which loses less precision than
  // accumulating sum and sum of squares for values far from zero (log-likelihoods in the
  // thousands).
  double sum = 0.0;
  for (const double v : values) sum += v;
  out.mean = sum / out.count;
  if (out.count < 2) {
    out.std_error = out.ci_low = out.ci_high = std::numeric_limits<double>::quiet_NaN();
    return out;
  }
  double squares = 0.0;
  for (const double v : values) squares += (v - out.mean) * (v - out.mean);
  const double sd = std::sqrt(squares / (out.count - 1));
  out.std_error = sd / std::sqrt(static_cast<double>(out.count));
  const boost::math::students_t t_dist(static_cast<double>(out.count - 1));
  const double t = boost::math::quantile(boost::math::complement(t_dist, 0.025));
  out.ci_low = out.mean - t * out.std_error;
  out.ci_high = out.mean + t * out.std_error;
  return out;
}

}  // namespace flowlik
