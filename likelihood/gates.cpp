// gate_against_baseline and gate_solve_error (flowlik/run.h).
#include <fmt/format.h>

#include "flowlik/error.h"
#include "flowlik/run.h"
#include "likelihood/report_reader.h"

namespace flowlik {

GateResult gate_against_baseline(const RunReport& run, const std::string& baseline,
                                 double max_regression, GateRule rule, std::string name) {
  const auto base = read_baseline_report(baseline);
  if (base.data_sha256 != run.data.sha256) {
    throw DataError(fmt::format("{}: baseline was measured on other data (sha256 {} vs {})",
                                baseline, base.data_sha256.substr(0, 12),
                                run.data.sha256.substr(0, 12)));
  }
  return gate_regression(std::move(name), unpaired_difference(run.summary.bpd, base.bpd),
                         max_regression, rule);
}

GateResult gate_solve_error(const SolveCheckReport& check, double limit) {
  GateResult g;
  g.name = "solve error";
  g.threshold = limit;
  if (!check.error.empty() || check.samples == 0) {
    g.passed = false;
    g.message = fmt::format("solve error: FAILED, not measured ({})",
                            check.error.empty() ? "no sample could be re-solved" : check.error);
    return g;
  }
  g.regression = check.mean_abs_error_bpd;
  g.ci_low = check.mean_abs_error_bpd;
  g.passed = check.mean_abs_error_bpd <= limit;
  g.message =
      fmt::format("solve error: {} mean |error| {:.3g} bpd on {} samples against a limit of {:.3g}",
                  g.passed ? "passed," : "FAILED,", check.mean_abs_error_bpd, check.samples, limit);
  return g;
}

}  // namespace flowlik
