#include "likelihood/solve_check.h"

#include <algorithm>
#include <cmath>
#include <map>

namespace flowlik {

SolverSpec reference_solver(const SolverSpec& run) {
  SolverSpec reference = run;
  // The trace integrated with the state, whatever the run's quadrature: the reference's error
  // control then covers the log-density too, and the check measures a Gauss-Legendre run's
  // quadrature error.
  reference.quadrature = Quadrature::kAugmented;
  if (is_adaptive(run.kind)) {
    reference.rtol = run.rtol / 100.0;
    reference.atol = run.atol / 100.0;
  } else {
    reference.kind = SolverKind::kDopri5;
    reference.rtol = reference.atol = 1e-7;
  }
  return reference;
}

std::vector<int64_t> pick_check_samples(std::span<const SampleResult> results, int64_t n,
                                        uint64_t seed) {
  std::vector<int64_t> ok;
  for (const auto& r : results) {
    if (r.status == SampleStatus::kOk) ok.push_back(r.index);
  }
  std::sort(ok.begin(), ok.end());
  return spread_subset(ok, n, seed);
}

SolveCheck check_solve(std::span<const SampleResult> results, std::span<const int64_t> samples,
                       const VelocityField& reference_field, const TraceEstimator& trace,
                       const Dataset& data, const Preprocessing& pre, const SolverSpec& reference,
                       int64_t batch_size) {
  std::map<int64_t, const SampleResult*> run;
  for (const auto& r : results) run[r.index] = &r;
  SolveCheck check;
  check.reference = reference;
  double abs_sum = 0.0;
  double signed_sum = 0.0;
  double max_abs = 0.0;
  score_dataset(reference_field, trace, data, pre, ScoreSpec{reference, batch_size}, samples,
                [&](const SampleResult& ref) {
                  const auto it = run.find(ref.index);
                  if (ref.status != SampleStatus::kOk || it == run.end() ||
                      it->second->status != SampleStatus::kOk) {
                    return;
                  }
                  const double error = it->second->log_likelihood - ref.log_likelihood;
                  abs_sum += std::abs(error);
                  signed_sum += error;
                  max_abs = std::max(max_abs, std::abs(error));
                  ++check.samples;
                });
  if (check.samples == 0) return check;
  const double n = static_cast<double>(check.samples);
  const double to_bpd = 1.0 / (static_cast<double>(data.dim) * std::log(2.0));
  check.mean_abs_error_nats = abs_sum / n;
  check.max_abs_error_nats = max_abs;
  check.mean_error_nats = signed_sum / n;
  check.mean_abs_error_bpd = check.mean_abs_error_nats * to_bpd;
  // bpd = -log p / (D ln 2): a log-likelihood too high by e lowers the bpd by e / (D ln 2).
  check.mean_bpd_effect = -check.mean_error_nats * to_bpd;
  return check;
}

}  // namespace flowlik
