// Integrates the augmented CNF state [x, l] from the data (t = 1) back to the prior (t = 0) with
// Boost.Odeint over tensors (shared/MATH.md section 2): dx/dt = v(t, x), dl/dt = tr(dv/dx)(t, x),
// l(1) = 0, so that log p1(x1) = log p0(x0) + l(0).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "estimators/trace_estimator.h"
#include "flowlik/options.h"
#include "likelihood/model/velocity_field.h"

namespace flowlik {

// The solvers are a closed set, so an enum (flowlik/options.h, with its parser) rather than virtual
// dispatch. The adaptive ones (dopri5, tsit5, bosh3, rkf78) control the step of each sample apart
// (likelihood/ode/per_sample_solver.h); the fixed-step ones (rk4, midpoint, euler) take the same
// steps for every sample.
using SolverKind = Solver;

// ErrorNorm (flowlik/options.h), how an adaptive solver measures a trial step's error against its
// tolerances, per sample:
//  max:   Odeint's, the largest |err| / (atol + rtol (|y| + |h f|)) over the sample's components;
//  rms:   the root mean square of |err| / (atol + rtol max(|y0|, |y1|)) over the sample's
//  components; mixed: torchdiffeq's norm of the tuple (x, log p), the larger of the two RMS over x
//  and over log p.

// Which way a solve runs: from the data to the prior (scoring, the default) or from the prior to
// the data (sampling, decoding). The dynamics are the same; forward, l(t_data) = +integral of the
// trace, so log p1(x1) = log p0(x0) - l(t_data).
enum class Direction { kToPrior, kToData };

struct SolverSpec {
  SolverKind kind = SolverKind::kDopri5;
  double rtol = 1e-5;                // adaptive only
  double atol = 1e-5;                // adaptive only
  ErrorNorm norm = ErrorNorm::kRms;  // adaptive only
  // adaptive only; gauss-legendre with dopri5 only (its dense output gives the state inside a step)
  Quadrature quadrature = Quadrature::kAugmented;
  int64_t steps = 100;       // fixed-step only
  int64_t max_nfe = 100000;  // a solve that needs more function evaluations fails
  // The interval is not here: every solve runs over its field's contract, from t_data() to
  // t_prior(), or the other way for kToData.
  Direction direction = Direction::kToPrior;
};

// Where a solve in `direction` starts and ends, in flow time, on the contract's interval.
double solve_start(const Contract& contract, Direction direction);
double solve_end(const Contract& contract, Direction direction);

// A solve toward the prior (kToData: toward the data; x_prior then holds the data end's state and
// log_density_change l(t_data)).
struct FlowSolution {
  torch::Tensor x_prior;             // [B, D] float64: the state at t_prior
  torch::Tensor log_density_change;  // [B, K] float64: l(t_prior) = -integral of the trace, per
                                     // trace estimate
  int64_t nfe = 0;  // evaluations of the augmented dynamics for this batch (adaptive: the most
                    // any one sample needed)
};

// x_data: [B, D] in the field's dtype; probes as drawn by `trace` for these B samples; labels: [B]
// int64 for a conditional model. The solver's state is float64 whatever the field's dtype (the
// network alone runs in that dtype), so x_prior and log_density_change are float64. An adaptive
// solver steps each sample apart; the first sample that fails throws IntegrationError
// (flowlik/error.h).
FlowSolution integrate_to_prior(const VelocityField& field, const TraceEstimator& trace,
                                const torch::Tensor& x_data, const torch::Tensor& probes,
                                const SolverSpec& spec, const torch::Tensor& labels = {});

// The augmented state [x, l] of rows x [B, D] at the data end: [B, D + estimates] float64, x then
// zeros. The solvers' state and arithmetic are float64 whatever the field's dtype (a float32
// log-density summed over hundreds of steps would lose digits: a -110 nat float32 value has a
// 7.6e-6 ulp); the network alone runs in the field's dtype.
torch::Tensor augmented_state(const torch::Tensor& x, int64_t estimates);
// f(t, y) = [v, tr J] for augmented states y [B, D + K] float64, row b at flow time t[b] ([B]
// float64): y's x converted to the field's dtype for the network, the result float64.
torch::Tensor augmented_derivative(const VelocityField& field, const TraceEstimator& trace,
                                   const torch::Tensor& y, const torch::Tensor& t,
                                   const torch::Tensor& probes, const torch::Tensor& labels);

// log p0(x0) under the field's prior (its contract's scale; shared/MATH.md section 5): [B] float64
// on the CPU.
torch::Tensor prior_log_density(const VelocityField& field, const torch::Tensor& x_prior);
// The model's log-density at the solve's data points, log p1(x1) = log p0(x0) + l(t_prior), per
// trace estimate: [B, K] float64 on the CPU.
torch::Tensor model_log_density(const VelocityField& field, const FlowSolution& solution);

}  // namespace flowlik
