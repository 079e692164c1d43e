#include "likelihood/ode/cnf_solver.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <boost/numeric/odeint/stepper/explicit_generic_rk.hpp>

#include "flowlik/error.h"
#include "likelihood/model/prior.h"
#include "likelihood/model/torch_error.h"
#include "likelihood/ode/per_sample_solver.h"
#include "likelihood/ode/tensor_state.h"

namespace flowlik {
namespace odeint = boost::numeric::odeint;

namespace {

using State = torch::Tensor;  // [B, D + K] float64, as augmented_state() makes it
using Algebra = odeint::vector_space_algebra;

template <template <class...> class Stepper>
using TensorStepper = Stepper<State, double, State, double, Algebra>;

// The explicit midpoint method, x' = x + h f(t + h/2, x + h/2 f(t, x)); odeint names only the
// multi-step "modified midpoint" of Bulirsch-Stoer, so it is given here by its Butcher tableau.
using Midpoint = odeint::explicit_generic_rk<2, 2, State, double, State, double, Algebra>;
Midpoint make_midpoint() {
  const boost::array<double, 1> a1 = {{0.5}};
  const boost::array<double, 2> b = {{0.0, 1.0}};
  const boost::array<double, 2> c = {{0.0, 0.5}};
  return Midpoint(boost::fusion::make_vector(a1), b, c);
}

class AugmentedDynamics {
 public:
  AugmentedDynamics(const VelocityField& field, const TraceEstimator& trace,
                    const torch::Tensor& probes, const torch::Tensor& labels, int64_t max_nfe,
                    int64_t* nfe)
      : field_(field),
        trace_(trace),
        probes_(probes),
        labels_(labels),
        max_nfe_(max_nfe),
        nfe_(nfe) {}

  void operator()(const State& state, State& dstate, double t) const {
    if (++*nfe_ > max_nfe_) {
      throw IntegrationError(
          fmt::format("more than {} function evaluations (the solve's limit)", max_nfe_));
    }
    dstate = augmented_derivative(
        field_, trace_, state, torch::full({state.size(0)}, t, torch::kFloat64), probes_, labels_);
  }

 private:
  const VelocityField& field_;
  const TraceEstimator& trace_;
  const torch::Tensor& probes_;
  const torch::Tensor& labels_;
  int64_t max_nfe_;
  int64_t* nfe_;
};

void integrate(const SolverSpec& spec, double t_data, double t_prior,
               const AugmentedDynamics& dynamics, State& state) {
  // t_data, t_prior: where this solve starts and ends.
  const double span = t_prior - t_data;
  switch (spec.kind) {
    case SolverKind::kRk4:
      odeint::integrate_n_steps(TensorStepper<odeint::runge_kutta4>(), dynamics, state, t_data,
                                span / spec.steps, spec.steps);
      return;
    case SolverKind::kMidpoint:
      odeint::integrate_n_steps(make_midpoint(), dynamics, state, t_data, span / spec.steps,
                                spec.steps);
      return;
    case SolverKind::kEuler:
      odeint::integrate_n_steps(TensorStepper<odeint::euler>(), dynamics, state, t_data,
                                span / spec.steps, spec.steps);
      return;
    default:
      throw std::logic_error("integrate: " + to_string(spec.kind) + " is adaptive");
  }
}

// The rows of an adaptive solve, in one batch; the first failure throws.
FlowSolution integrate_per_sample(const VelocityField& field, const TraceEstimator& trace,
                                  const torch::Tensor& x_data, const torch::Tensor& probes,
                                  const SolverSpec& spec, const torch::Tensor& labels) {
  const int64_t batch = x_data.size(0);
  std::vector<RowSolution> rows(static_cast<size_t>(batch));
  bool fed = false;
  const RowFeed feed = [&](int64_t) {
    if (fed) return SolveRows{};
    fed = true;
    return SolveRows{x_data, probes, labels};
  };
  const RowSink sink = [&](RowSolution row) {
    rows[static_cast<size_t>(row.row)] = std::move(row);
  };
  solve_rows(field, trace, spec, batch, feed, sink);
  FlowSolution solution;
  std::vector<torch::Tensor> x_prior;
  std::vector<torch::Tensor> change;
  for (const auto& row : rows) {
    solution.nfe = std::max(solution.nfe, row.nfe);
    if (!row.ok) throw IntegrationError(row.failure, row.nfe);
    x_prior.push_back(row.x_prior);
    change.push_back(row.log_density_change);
  }
  solution.x_prior = torch::stack(x_prior);
  solution.log_density_change = torch::stack(change);
  return solution;
}

}  // namespace

namespace {}  // namespace

FlowSolution integrate_to_prior(const VelocityField& field, const TraceEstimator& trace,
                                const torch::Tensor& x_data, const torch::Tensor& probes,
                                const SolverSpec& spec, const torch::Tensor& labels) {
  if (is_adaptive(spec.kind))
    return integrate_per_sample(field, trace, x_data, probes, spec, labels);
  State state = augmented_state(x_data, trace.num_estimates());
  int64_t nfe = 0;
  const AugmentedDynamics dynamics(field, trace, probes, labels, spec.max_nfe, &nfe);
  try {
    integrate(spec, solve_start(field.contract(), spec.direction),
              solve_end(field.contract(), spec.direction), dynamics, state);
  } catch (const IntegrationError& e) {
    throw IntegrationError(e.what(), nfe);
  } catch (const odeint::odeint_error& e) {
    throw IntegrationError(fmt::format("step size control failed ({})", e.what()), nfe);
  }
  return {state.narrow(1, 0, field.dim()), state.narrow(1, field.dim(), trace.num_estimates()),
          nfe};
}

double solve_start(const Contract& contract, Direction direction) {
  return direction == Direction::kToPrior ? contract.t_data() : contract.t_prior();
}

double solve_end(const Contract& contract, Direction direction) {
  return direction == Direction::kToPrior ? contract.t_prior() : contract.t_data();
}

torch::Tensor augmented_state(const torch::Tensor& x, int64_t estimates) {
  const auto options = x.options().dtype(torch::kFloat64);
  return torch::cat({x.to(options), torch::zeros({x.size(0), estimates}, options)}, 1);
}

torch::Tensor augmented_derivative(const VelocityField& field, const TraceEstimator& trace,
                                   const torch::Tensor& y, const torch::Tensor& t,
                                   const torch::Tensor& probes, const torch::Tensor& labels) {
  const auto x = y.narrow(1, 0, field.dim()).to(field.dtype());  // [B, D]
  auto result = trace.evaluate(field, x, t, probes, labels);
  return torch::cat({result.velocity.to(torch::kFloat64), result.trace}, 1);
}

torch::Tensor prior_log_density(const VelocityField& field, const torch::Tensor& x_prior) {
  return normal_log_density(x_prior, field.contract().prior_scale).cpu();
}

torch::Tensor model_log_density(const VelocityField& field, const FlowSolution& solution) {
  return prior_log_density(field, solution.x_prior).unsqueeze(1) +
         solution.log_density_change.to(torch::kCPU, torch::kFloat64);
}

}  // namespace flowlik
