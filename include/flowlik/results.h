// What scoring returns, as plain values: each sample's result and the summary of a set of them
// (shared/MATH.md sections 6 and 7), and the paired difference of two models on the same samples.
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace flowlik {

enum class SampleStatus { kOk, kFailed, kNonFinite };
std::string to_string(SampleStatus status);

struct SampleResult {
  int64_t index = 0;
  SampleStatus status = SampleStatus::kOk;
  std::string detail;                 // why, when the status is not ok
  double log_likelihood = NAN;        // nats, of the raw data (a lower bound for discrete data)
  double bpd = NAN;                   // -log_likelihood / (D ln 2)
  double model_log_likelihood = NAN;  // log p_model(y) on the model's own input space
  double log_det = NAN;               // L = log |det df/dx01| of the preprocessing map
  double prior_log_density = NAN;     // log p0(x0)
  double estimator_std_error =
      NAN;  // of log_likelihood, from the spread of K >= 2 Hutchinson probes
  double dequant_std_error =
      NAN;  // of log_likelihood, from the spread between M >= 2 dequantization draws
  std::vector<double>
      draw_log_likelihoods;  // with M >= 2: each draw's bound, log p(y_m) + L_m - D ln K
  int64_t nfe = 0;  // function evaluations spent on this sample's solve, failed ones included
};

using SampleSink = std::function<void(const SampleResult&)>;

struct MeanEstimate {
  int64_t count = 0;
  double mean = 0.0;
  double std_error = 0.0;  // sd / sqrt(n), sd with n - 1; NaN when n < 2
  double ci_low = 0.0;     // 95% interval, Student's t with n - 1 degrees of freedom
  double ci_high = 0.0;
};

struct ScoreSummary {
  int64_t total = 0;
  int64_t ok = 0;
  MeanEstimate log_likelihood;  // over samples with status ok
  MeanEstimate bpd;
  // The trace estimator's own standard error of the mean log-likelihood (and bpd), apart from the
  // data's: sqrt(sum_i se_i^2) / n. NaN unless every sample has K >= 2 probes.
  double estimator_std_error_log_likelihood = NAN;
  double estimator_std_error_bpd = NAN;
  // The same for the dequantization noise, from the spread between M >= 2 draws: sqrt(sum_i se_i^2)
  // / n. NaN unless every sample has M >= 2 draws.
  double dequant_std_error_log_likelihood = NAN;
  double dequant_std_error_bpd = NAN;
  // What is left of the total standard error for the data themselves, in quadrature:
  // sqrt(total^2 - dequantization^2 - estimator^2), a part that was not estimated counting as 0.
  double data_std_error_log_likelihood = NAN;
  double data_std_error_bpd = NAN;
  double nfe_mean = 0.0;
  int64_t nfe_max = 0;
};

// One line on the parts of the bpd's standard error, for summaries, Markdown and HTML:
// "0.0108 = data 0.0100 + dequantization 0.0040 + estimator 0.0010 (in quadrature)".
std::string describe_error_sources(const ScoreSummary& summary);

struct PairedDifference {
  int64_t a = 0;  // index of the earlier model
  int64_t b = 0;  // index of the later model; differences are b minus a
  MeanEstimate log_likelihood_diff;
  MeanEstimate bpd_diff;
  std::vector<double> bpd_values;  // the per-sample differences behind bpd_diff
  // Parts of bpd_diff's standard error (shared/MATH.md section 7, common random numbers).
  // Dequantization: per sample, the variance between draws of the per-draw difference, / M
  // (logmeanexp linearized with equal weights); sqrt(sum) / n; NaN with one draw. Estimator: the
  // common probes make the per-probe differences needed for it unavailable from per-sample results,
  // so an upper bound is given, the two models' estimator parts in quadrature as if their probes
  // were independent; NaN without probes' spread. Data: what is left of the total, in quadrature.
  double dequant_std_error_bpd = NAN;
  double estimator_std_error_bpd_upper = NAN;
  double data_std_error_bpd = NAN;
};

enum class GateRule {
  kMean,         // fail when the mean regression exceeds the threshold
  kSignificant,  // fail only when the regression exceeds it significantly: its 95% lower bound does
};

// A regression gate of a nightly CI run: a model's bpd against a baseline's.
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

// Throws InvalidArgument naming `gate_rule` and listing the valid names ("mean", "significant").
GateRule parse_gate_rule(const std::string& name);
std::string to_string(GateRule rule);

// The gate on a regression (bpd, later minus earlier) against the largest one allowed, under
// `rule`.
GateResult gate_regression(std::string name, const MeanEstimate& regression, double threshold,
                           GateRule rule);

// The difference of two independent means, `now` minus `base` (an unpaired regression against a
// baseline report): standard errors add in quadrature, and the 95% interval uses Student's t with
// the Welch-Satterthwaite degrees of freedom, as the paired gate uses Student's t. A missing
// standard error (one sample) counts as zero.
MeanEstimate unpaired_difference(const MeanEstimate& now, const MeanEstimate& base);

// How well a solve retraces its path: samples carried to the prior and back to the data (the round
// trip), |x - decode(encode(x))| in the model's space.
struct RoundTripError {
  int64_t samples = 0;          // whose two solves both succeeded
  int64_t failed = 0;           // whose encoding or decoding failed
  double max_abs_error = NAN;   // the largest over every value of every sample
  double mean_abs_error = NAN;  // the mean over values and samples
};

// The variance of one sample's bpd from each source, per sample: the data's own spread, one
// dequantization draw's and one probe's (shared/MATH.md section 7). A source that is absent is 0.
struct BudgetVariances {
  double data = 0.0;
  double one_draw = 0.0;
  double one_probe = 0.0;
};

// Samples n, draws M and probes K, and their cost n M K (rows per evaluation step).
struct Budget {
  int64_t samples = 0;
  int64_t draws = 1;
  int64_t probes = 1;
  double cost = 0.0;
};

}  // namespace flowlik
