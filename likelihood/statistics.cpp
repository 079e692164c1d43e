#include "likelihood/statistics.h"

#include <algorithm>
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

std::optional<Budget> cheapest_budget(const BudgetVariances& v, double target_stderr,
                                      int64_t max_samples, int64_t max_draws, int64_t max_probes) {
  std::optional<Budget> best;
  for (int64_t m = 1; m <= max_draws; ++m) {
    for (int64_t k = 1; k <= max_probes; ++k) {
      const double per = v.data + v.one_draw / m + v.one_probe / (m * k);
      const double samples = std::ceil(per / (target_stderr * target_stderr));
      if (samples > static_cast<double>(max_samples)) continue;
      const double cost = std::max(samples, 2.0) * m * k;
      if (!best || cost < best->cost) {
        best = Budget{static_cast<int64_t>(std::max(samples, 2.0)), m, k, cost};
      }
    }
  }
  return best;
}

}  // namespace flowlik
