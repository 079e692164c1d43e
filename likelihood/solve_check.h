// The solve's own error, measured: a few samples re-solved in float64 at a tolerance 100 times
// tighter, with the same preprocessing noise and probes, so that the difference is the solver's
// (and the run's arithmetic's) error alone. No peer tool reports it.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "estimators/trace_estimator.h"
#include "io/dataset.h"
#include "likelihood/model/preprocessing.h"
#include "likelihood/model/velocity_field.h"
#include "likelihood/ode/cnf_solver.h"
#include "likelihood/score.h"

namespace flowlik {

// The reference solver for a run's: the same adaptive solver at rtol/100 and atol/100; for a
// fixed-step solver, dopri5 at 1e-7 (100 times tighter than the default tolerance); the trace
// always integrated with the state (augmented quadrature).
SolverSpec reference_solver(const SolverSpec& run);

// n of the ok samples among `results`, evenly spread from an offset set by `seed` (the same subset
// for the same seed and results), in increasing order.
std::vector<int64_t> pick_check_samples(std::span<const SampleResult> results, int64_t n,
                                        uint64_t seed);

struct SolveCheck {
  SolverSpec reference;
  int64_t samples = 0;               // re-solved and ok in both
  double mean_abs_error_nats = NAN;  // mean over those samples of |log p(run) - log p(reference)|
  double max_abs_error_nats = NAN;
  double mean_error_nats = NAN;     // signed: the solve's bias of the mean log-likelihood
  double mean_abs_error_bpd = NAN;  // the same in bits per dimension
  double mean_bpd_effect = NAN;     // signed effect on the mean bpd: bpd(run) - bpd(reference)
};

// Re-scores `samples` with `reference_field` (a float64 load of the run's model) under `reference`
// and compares with the run's `results`. The trace estimator and preprocessing are the run's, so
// the noise and probes are the same.
SolveCheck check_solve(std::span<const SampleResult> results, std::span<const int64_t> samples,
                       const VelocityField& reference_field, const TraceEstimator& trace,
                       const Dataset& data, const Preprocessing& pre, const SolverSpec& reference,
                       int64_t batch_size);

}  // namespace flowlik
