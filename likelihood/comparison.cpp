#include "likelihood/comparison.h"

#include <boost/math/distributions/students_t.hpp>
#include <cmath>

#include <fmt/format.h>

#include <vector>

#include "likelihood/error.h"

namespace flowlik {

PairedDifference paired_difference(std::span<const SampleResult> a, std::span<const SampleResult> b,
                                   int64_t a_index, int64_t b_index) {
  std::vector<double> ll;
  std::vector<double> bpd;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    if (a[i].status != SampleStatus::kOk || b[i].status != SampleStatus::kOk) continue;
    ll.push_back(b[i].log_likelihood - a[i].log_likelihood);
    bpd.push_back(b[i].bpd - a[i].bpd);
  }
  if (ll.empty()) {
    throw Error(ExitCode::kAllFailed,
                fmt::format("no sample was scored by both model {} and model {}", a_index, b_index));
  }
  return {a_index, b_index, estimate_mean(ll), estimate_mean(bpd), bpd};
}

MeanEstimate unpaired_difference(const MeanEstimate& now, const MeanEstimate& base) {
  const double a = std::isfinite(now.std_error) ? now.std_error : 0.0;
  const double b = std::isfinite(base.std_error) ? base.std_error : 0.0;
  MeanEstimate d;
  d.count = now.count;
  d.mean = now.mean - base.mean;
  d.std_error = std::hypot(a, b);
  double quantile = 1.959963984540054;  // the normal limit, when no degrees of freedom can be estimated
  const double a2 = a * a;
  const double b2 = b * b;
  const double denominator = (now.count > 1 ? a2 * a2 / static_cast<double>(now.count - 1) : 0.0) +
                             (base.count > 1 ? b2 * b2 / static_cast<double>(base.count - 1) : 0.0);
  if (denominator > 0.0) {
    const double df = (a2 + b2) * (a2 + b2) / denominator;
    const boost::math::students_t t_dist(df);
    quantile = boost::math::quantile(boost::math::complement(t_dist, 0.025));
  }
  d.ci_low = d.mean - quantile * d.std_error;
  d.ci_high = d.mean + quantile * d.std_error;
  return d;
}

GateRule parse_gate_rule(const std::string& name) {
  if (name == "mean") return GateRule::kMean;
  if (name == "significant") return GateRule::kSignificant;
  throw UsageError(fmt::format("--gate-rule: unknown rule '{}' (valid: mean, significant)", name));
}

std::string to_string(GateRule rule) { return rule == GateRule::kMean ? "mean" : "significant"; }

GateResult gate_regression(std::string name, const MeanEstimate& regression, double threshold,
                           GateRule rule) {
  GateResult g;
  g.name = std::move(name);
  g.regression = regression.mean;
  g.std_error = regression.std_error;
  g.ci_low = regression.ci_low;
  g.threshold = threshold;
  g.rule = rule;
  g.passed = rule == GateRule::kMean ? regression.mean <= threshold : !(regression.ci_low > threshold);
  g.message = fmt::format(
      "{}: {} bpd regression {:+.4f} +- {:.4f} (95% lower bound {:+.4f}) against a limit of {:.4f} ({} rule)",
      g.name, g.passed ? "passed," : "FAILED,", g.regression, g.std_error, g.ci_low, threshold,
      to_string(rule));
  return g;
}

}  // namespace flowlik
