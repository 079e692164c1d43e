#include "likelihood/comparison.h"

#include <fmt/format.h>

#include <algorithm>
#include <boost/math/distributions/students_t.hpp>
#include <cmath>
#include <vector>

#include "flowlik/error.h"

namespace flowlik {

PairedDifference paired_difference(std::span<const SampleResult> a, std::span<const SampleResult> b,
                                   int64_t a_index, int64_t b_index) {
  std::vector<double> ll;
  std::vector<double> bpd;
  double dequant_var = 0.0;    // sum over samples, nats^2
  double estimator_var = 0.0;  // sum over samples, nats^2
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    if (a[i].status != SampleStatus::kOk || b[i].status != SampleStatus::kOk) continue;
    ll.push_back(b[i].log_likelihood - a[i].log_likelihood);
    bpd.push_back(b[i].bpd - a[i].bpd);
    const auto& da = a[i].draw_log_likelihoods;
    const auto& db = b[i].draw_log_likelihoods;
    if (da.size() >= 2 && da.size() == db.size()) {
      const auto m = static_cast<double>(da.size());
      double mean = 0.0;
      for (size_t k = 0; k < da.size(); ++k) mean += (db[k] - da[k]) / m;
      double squares = 0.0;
      for (size_t k = 0; k < da.size(); ++k)
        squares += (db[k] - da[k] - mean) * (db[k] - da[k] - mean);
      dequant_var += squares / (m - 1.0) / m;
    } else {
      dequant_var = NAN;
    }
    estimator_var += a[i].estimator_std_error * a[i].estimator_std_error +
                     b[i].estimator_std_error * b[i].estimator_std_error;  // NaN propagates
  }
  if (ll.empty()) {
    throw NoSampleScored(
        fmt::format("no sample was scored by both model {} and model {}", a_index, b_index));
  }
  PairedDifference d{a_index, b_index, estimate_mean(ll), estimate_mean(bpd), bpd};
  const double n = static_cast<double>(ll.size());
  // bpd = -ll / (D ln 2): a sample's own ratio gives 1 / (D ln 2) without passing D here.
  double to_bpd = NAN;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].status == SampleStatus::kOk && a[i].log_likelihood != 0.0) {
      to_bpd = std::abs(a[i].bpd / a[i].log_likelihood);
      break;
    }
  }
  d.dequant_std_error_bpd = std::sqrt(dequant_var) / n * to_bpd;
  d.estimator_std_error_bpd_upper = std::sqrt(estimator_var) / n * to_bpd;
  if (std::isfinite(d.bpd_diff.std_error)) {
    const auto known = [](double v) { return std::isfinite(v) ? v * v : 0.0; };
    d.data_std_error_bpd = std::sqrt(std::max(
        0.0, d.bpd_diff.std_error * d.bpd_diff.std_error - known(d.dequant_std_error_bpd)));
  }
  return d;
}

MeanEstimate unpaired_difference(const MeanEstimate& now, const MeanEstimate& base) {
  const double a = std::isfinite(now.std_error) ? now.std_error : 0.0;
  const double b = std::isfinite(base.std_error) ? base.std_error : 0.0;
  MeanEstimate d;
  d.count = now.count;
  d.mean = now.mean - base.mean;
  d.std_error = std::hypot(a, b);
  double quantile =
      1.959963984540054;  // the normal limit, when no degrees of freedom can be estimated
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
  throw InvalidArgument("gate_rule",
                        fmt::format("unknown rule '{}' (valid: mean, significant)", name));
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
  g.passed =
      rule == GateRule::kMean ? regression.mean <= threshold : !(regression.ci_low > threshold);
  g.message = fmt::format(
      "{}: {} bpd regression {:+.4f} +- {:.4f} (95% lower bound {:+.4f}) against a limit of {:.4f} "
      "({} rule)",
      g.name, g.passed ? "passed," : "FAILED,", g.regression, g.std_error, g.ci_low, threshold,
      to_string(rule));
  return g;
}

}  // namespace flowlik
