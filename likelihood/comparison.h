// Comparing models on the same data: paired differences under common random numbers, and the regression
// gates a nightly CI job uses (shared/MATH.md section 7).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "likelihood/score.h"
#include "likelihood/statistics.h"

namespace flowlik {

struct PairedDifference {
  int64_t a = 0;  // index of the earlier model
  int64_t b = 0;  // index of the later model; differences are b minus a
  MeanEstimate log_likelihood_diff;
  MeanEstimate bpd_diff;
  std::vector<double> bpd_values;  // the per-sample differences behind bpd_diff
  // Parts of bpd_diff's standard error (shared/MATH.md section 7, common random numbers). Dequantization:
  // per sample, the variance between draws of the per-draw difference, / M (logmeanexp linearized with
  // equal weights); sqrt(sum) / n; NaN with one draw. Estimator: the common probes make the per-probe
  // differences needed for it unavailable from per-sample results, so an upper bound is given, the two
  // models' estimator parts in quadrature as if their probes were independent; NaN without probes' spread.
  // Data: what is left of the total, in quadrature.
  double dequant_std_error_bpd = NAN;
  double estimator_std_error_bpd_upper = NAN;
  double data_std_error_bpd = NAN;
};

// Over the samples scored ok under both models. `a` and `b` hold one result per dataset index, in the
// same order. Throws Error(kAllFailed) when no sample is ok under both.
PairedDifference paired_difference(std::span<const SampleResult> a, std::span<const SampleResult> b,
                                   int64_t a_index, int64_t b_index);

// The difference of two independent means, `now` minus `base` (an unpaired regression against a
// baseline report): standard errors add in quadrature, and the 95% interval uses Student's t with the
// Welch-Satterthwaite degrees of freedom, as the paired gate uses Student's t. A missing standard error
// (one sample) counts as zero.
MeanEstimate unpaired_difference(const MeanEstimate& now, const MeanEstimate& base);

enum class GateRule {
  kMean,         // fail when the mean regression exceeds the threshold
  kSignificant,  // fail only when the regression exceeds it significantly: its 95% lower bound does
};
// Throws UsageError naming --gate-rule and listing the valid names.
GateRule parse_gate_rule(const std::string& name);
std::string to_string(GateRule rule);

struct GateResult {
  std::string name;         // what was compared, e.g. "b.pt vs a.pt"
  double regression = 0.0;  // bpd(new) - bpd(baseline): positive is worse
  double std_error = 0.0;
  double ci_low = 0.0;
  double threshold = 0.0;  // the largest regression allowed, bpd
  GateRule rule = GateRule::kMean;
  bool passed = true;
  std::string message;  // one line, for logs and CI summaries
};

GateResult gate_regression(std::string name, const MeanEstimate& regression, double threshold,
                           GateRule rule);

}  // namespace flowlik
