// Adaptive solves in which every row (a sample, or one dequantization draw of it) has its own time,
// step size and error estimate, so that its result depends on nothing but the row itself: not on
// the batch it is solved in, nor on the shard, nor on the order of the data.
//
// The Runge-Kutta tableaux and their embedded error estimates are Boost.Odeint's steppers; what
// Odeint does not have is a step size per row. Rows share one stepper call through a change of
// variable: a step of size h_r from t_r is a unit step in s of dy/ds = h_r f(t_r + s h_r, y), so
// Odeint steps every row with dt = 1 and the system scales each row by its own h. The controller
// (accept or reject per row, the step size rule of Odeint's default_step_adjuster, the error norm)
// is written here, once.
//
// Continuous batching: rows that finish leave the batch and waiting rows take their places, so the
// network is called on a full batch, every row at its own time, and no evaluation is spent on a
// finished row.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <string>

#include "estimators/trace_estimator.h"
#include "likelihood/model/velocity_field.h"
#include "likelihood/ode/cnf_solver.h"

namespace flowlik {

// Rows entering a solve: x [R, D] in the field's dtype and device, probes [K, R, D] as drawn by the
// trace estimator for these rows (or undefined), labels [R] int64 for a conditional model (or
// undefined).
struct SolveRows {
  torch::Tensor x;
  torch::Tensor probes;
  torch::Tensor labels;
  int64_t count() const { return x.defined() ? x.size(0) : 0; }
};

// One row's end: its number in the order rows were fed (from 0), the state at the prior end and the
// change of log-density (as FlowSolution's, for this row), its own function evaluations, and why it
// failed if it did.
struct RowSolution {
  int64_t row = 0;
  bool ok = true;
  std::string failure;
  torch::Tensor x_prior;             // [D] float64
  torch::Tensor log_density_change;  // [K] float64
  int64_t nfe = 0;
};

// Gives up to `max_rows` further rows; fewer (none) when the input runs out.
using RowFeed = std::function<SolveRows(int64_t max_rows)>;
using RowSink = std::function<void(RowSolution)>;

// Solves the rows `feed` gives, at most `batch_rows` at a time, with the adaptive solver of `spec`,
// and passes each to `sink` as it finishes (not in feed order). A row fails alone: when its
// evaluation is not finite, when the model throws on it (found by evaluating the rows of a failed
// call one by one), when its step size cannot be made small enough in 500 tries, or when it needs
// more than spec.max_nfe evaluations.
void solve_rows(const VelocityField& field, const TraceEstimator& trace, const SolverSpec& spec,
                int64_t batch_rows, const RowFeed& feed, const RowSink& sink);

// The error of one trial step per row, as the controller measures it (<= 1: accept), for the norm
// of `spec`. err, y_old, y_new, g_old: [R, D + K] with the columns of x first; g_old = h f(t,
// y_old). Returns [R] float64 on the CPU; a row whose error is not finite gets +inf.
torch::Tensor step_error(ErrorNorm norm, double rtol, double atol, int64_t dim,
                         const torch::Tensor& err, const torch::Tensor& y_old,
                         const torch::Tensor& y_new, const torch::Tensor& g_old);

}  // namespace flowlik
