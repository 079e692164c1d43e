// Per-sample step control: one row against Odeint's own controller, every adaptive tableau against
// the closed form, results and NFE independent of batch size and order, and the error norms by
// hand.
#include "likelihood/ode/per_sample_solver.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <boost/numeric/odeint.hpp>
#include <cmath>
#include <numeric>
#include <utility>
#include <vector>

#include "estimators/exact_trace.h"
#include "estimators/hutchinson_trace.h"
#include "flowlik/error.h"
#include "likelihood/model/prior.h"
#include "likelihood/ode/cnf_solver.h"
#include "likelihood/ode/tensor_state.h"
#include "likelihood/score.h"
#include "tests/closed_form.h"
#include "tests/expect_error.h"
#include "tests/in_memory_dataset.h"

namespace flowlik {
namespace {
namespace odeint = boost::numeric::odeint;

// Points around the mixture's components, on and off their modes.
torch::Tensor mixture_points(const test::MixtureParams& p, int per_component) {
  std::vector<double> flat;
  int64_t n = 0;
  for (size_t k = 0; k < p.weights.size(); ++k) {
    for (int j = 0; j < per_component; ++j, ++n) {
      for (int64_t d = 0; d < p.dim(); ++d) {
        flat.push_back(p.means[k][d] + 1.7 * p.scales[k][d] * std::cos(2.1 * j + 0.7 * d + k));
      }
    }
  }
  return torch::tensor(flat, torch::kFloat64).view({n, p.dim()});
}

VelocityField mixture_field(const test::MixtureParams& p,
                            torch::ScalarType dtype = torch::kFloat64) {
  auto field = VelocityField::load(test::fixture_path("mixture.pt"), dtype);
  field.bind_shape(p.shape);
  return field;
}

TEST(PerSampleSolverTest, OneRowTakesOdeintsOwnStepsWithTheMaxNorm) {
  // Odeint's controlled dopri5 on the same augmented state [x, l] of one sample: the same trial
  // steps (so the same NFE) and the same result to rounding. The change of variable (a unit step of
  // h f) rounds differently from Odeint's x + dt a k, hence agreement to rounding, not bitwise.
  const auto p = test::load_mixture_params("mixture");
  const auto field = mixture_field(p);
  const ExactTrace exact(1 << 14);
  const auto points = mixture_points(p, 2);
  for (const double tol : {1e-5, 1e-8}) {
    SolverSpec spec;
    spec.kind = SolverKind::kDopri5;
    spec.norm = ErrorNorm::kMax;
    spec.rtol = spec.atol = tol;
    for (int64_t i = 0; i < points.size(0); ++i) {
      const auto x = points.narrow(0, i, 1);
      int64_t odeint_nfe = 0;
      auto system = [&](const torch::Tensor& state, torch::Tensor& dstate, double t) {
        ++odeint_nfe;
        auto r = exact.evaluate(field, state.narrow(1, 0, field.dim()), t, {}, {});
        dstate = torch::cat({r.velocity, r.trace}, 1);
      };
      torch::Tensor state = torch::cat({x, torch::zeros({1, 1}, torch::kFloat64)}, 1);
      using Stepper = odeint::runge_kutta_dopri5<torch::Tensor, double, torch::Tensor, double,
                                                 odeint::vector_space_algebra>;
      odeint::integrate_adaptive(odeint::make_controlled(tol, tol, Stepper()), system, state, 1.0,
                                 0.0, -0.01);

      const auto solution = integrate_to_prior(field, exact, x, {}, spec);
      EXPECT_EQ(solution.nfe, odeint_nfe) << "point " << i << " tol " << tol;
      EXPECT_NEAR(solution.log_density_change.item<double>(), state[0][field.dim()].item<double>(),
                  1e-11)
          << "point " << i << " tol " << tol;
      EXPECT_LT((solution.x_prior - state.narrow(1, 0, field.dim())).abs().max().item<double>(),
                1e-11);
    }
  }
}

TEST(PerSampleSolverTest, EveryAdaptiveTableauReachesTheClosedForm) {
  // A wrong coefficient in a tableau lowers its order or spoils its error estimate: the solve then
  // misses the exact log-density at a tight tolerance, or needs far more evaluations than its order
  // allows.
  const auto p = test::load_mixture_params("mixture");
  const auto field = mixture_field(p);
  const auto points = mixture_points(p, 2);
  std::vector<double> exact;
  for (int64_t i = 0; i < points.size(0); ++i) {
    const auto row = points[i].contiguous();
    exact.push_back(test::mixture_log_density(
        p, 1.0, std::span<const double>(row.data_ptr<double>(), p.dim())));
  }
  struct Case {
    SolverKind kind;
    double tol;
    double accuracy;
    int64_t max_nfe;
  };
  for (const auto c :
       {Case{SolverKind::kDopri5, 1e-9, 1e-6, 1500}, Case{SolverKind::kTsit5, 1e-9, 1e-6, 1500},
        Case{SolverKind::kBosh3, 1e-8, 1e-5, 6000}, Case{SolverKind::kRkf78, 1e-10, 1e-6, 1500}}) {
    for (const auto norm : {ErrorNorm::kMax, ErrorNorm::kRms, ErrorNorm::kMixed}) {
      SolverSpec spec;
      spec.kind = c.kind;
      spec.norm = norm;
      spec.rtol = spec.atol = c.tol;
      spec.max_nfe = c.max_nfe;
      const auto solution = integrate_to_prior(field, ExactTrace(1 << 14), points, {}, spec);
      const auto log_density =
          normal_log_density(solution.x_prior) + solution.log_density_change.squeeze(1);
      for (int64_t i = 0; i < points.size(0); ++i) {
        EXPECT_NEAR(log_density[i].item<double>(), exact[i], c.accuracy)
            << to_string(c.kind) << " " << to_string(norm) << " point " << i;
      }
    }
  }
}

// Scores `data` in the order of `indices` and returns the results by sample index.
std::vector<SampleResult> score_in_order(const VelocityField& field, const TraceEstimator& trace,
                                         const Dataset& data, const ScoreSpec& options,
                                         const std::vector<int64_t>& indices) {
  std::vector<SampleResult> by_index(static_cast<size_t>(data.size));
  std::vector<int64_t> order;
  score_dataset(field, trace, data, Preprocessing{}, options, indices, [&](const SampleResult& r) {
    order.push_back(r.index);
    by_index[static_cast<size_t>(r.index)] = r;
  });
  EXPECT_EQ(order, indices) << "samples reach the sink in the order given";
  return by_index;
}

TEST(PerSampleSolverTest, ResultsAndNfeDoNotDependOnBatchSizeOrOrder) {
  // Each sample takes its own steps, so its NFE is the same whatever the batch, and, with network
  // calls padded to whole blocks of rows and traces summed in float64, its value is the same to the
  // last bit. So with the Gauss-Legendre quadrature, whose trace points are evaluated in calls of
  // their own.
  const auto p = test::load_mixture_params("mixture");
  const auto data = test::in_memory_dataset(mixture_points(p, 5));
  std::vector<int64_t> forward(static_cast<size_t>(data.size));
  std::iota(forward.begin(), forward.end(), 0);
  std::vector<int64_t> backward(forward.rbegin(), forward.rend());
  for (const auto dtype : {torch::kFloat64, torch::kFloat32}) {
    const auto field = mixture_field(p, dtype);
    const HutchinsonTrace hutchinson(ProbeNoise::kRademacher, 2, 7);
    for (const auto& [kind, quadrature] :
         {std::pair{SolverKind::kDopri5, Quadrature::kAugmented},
          std::pair{SolverKind::kTsit5, Quadrature::kAugmented},
          std::pair{SolverKind::kBosh3, Quadrature::kAugmented},
          std::pair{SolverKind::kRkf78, Quadrature::kAugmented},
          std::pair{SolverKind::kDopri5, Quadrature::kGaussLegendre}}) {
      ScoreSpec options;
      options.solver.kind = kind;
      options.solver.quadrature = quadrature;
      options.batch_size = 1;
      const auto alone = score_in_order(field, hutchinson, data, options, forward);
      for (const int64_t batch : {7, 64}) {
        options.batch_size = batch;
        for (const auto* indices : {&forward, &backward}) {
          const auto together = score_in_order(field, hutchinson, data, options, *indices);
          for (size_t i = 0; i < alone.size(); ++i) {
            EXPECT_EQ(together[i].status, SampleStatus::kOk);
            EXPECT_EQ(together[i].nfe, alone[i].nfe)
                << to_string(kind) << " " << to_string(quadrature) << " batch " << batch
                << " sample " << i;
            EXPECT_EQ(together[i].log_likelihood, alone[i].log_likelihood)
                << to_string(kind) << " " << to_string(quadrature) << " batch " << batch
                << " sample " << i;
          }
        }
      }
    }
  }
}

TEST(PerSampleSolverTest, ErrorNormsByHand) {
  // One row, D = 2 and K = 1; rtol = 0.1, atol = 0.01.
  const auto err = torch::tensor({0.02, -0.01, 0.04}, torch::kFloat64).view({1, 3});
  const auto y0 = torch::tensor({1.0, -2.0, 0.0}, torch::kFloat64).view({1, 3});
  const auto y1 = torch::tensor({1.5, -1.0, 0.5}, torch::kFloat64).view({1, 3});
  const auto g0 = torch::tensor({0.5, 0.0, -1.0}, torch::kFloat64).view({1, 3});
  // max: |err| / (0.01 + 0.1 (|y0| + |g0|)) = 0.02/0.16, 0.01/0.21, 0.04/0.11.
  EXPECT_NEAR(step_error(ErrorNorm::kMax, 0.1, 0.01, 2, err, y0, y1, g0).item<double>(),
              0.04 / 0.11, 1e-15);
  // rms and mixed: tolerance 0.01 + 0.1 max(|y0|, |y1|) = 0.16, 0.21, 0.06.
  const double r0 = 0.02 / 0.16, r1 = 0.01 / 0.21, r2 = 0.04 / 0.06;
  EXPECT_NEAR(step_error(ErrorNorm::kRms, 0.1, 0.01, 2, err, y0, y1, g0).item<double>(),
              std::sqrt((r0 * r0 + r1 * r1 + r2 * r2) / 3), 1e-15);
  EXPECT_NEAR(step_error(ErrorNorm::kMixed, 0.1, 0.01, 2, err, y0, y1, g0).item<double>(),
              std::max(std::sqrt((r0 * r0 + r1 * r1) / 2), r2), 1e-15);
  // A row whose error is not finite is rejected.
  const auto bad = torch::tensor({std::nan(""), 0.0, 0.0}, torch::kFloat64).view({1, 3});
  EXPECT_TRUE(
      std::isinf(step_error(ErrorNorm::kRms, 0.1, 0.01, 2, bad, y0, y1, g0).item<double>()));
}

TEST(PerSampleSolverTest, ErrorNormFactoryRejectsUnknownNames) {
  EXPECT_EQ(parse_error_norm("mixed"), ErrorNorm::kMixed);
  EXPECT_EQ(test::expect_error<InvalidArgument>([] { parse_error_norm("l2"); }),
            "--error-norm: unknown error norm 'l2' (valid: max, rms, mixed)");
}

TEST(PerSampleSolverTest, ARowOverItsEvaluationBudgetFailsAlone) {
  const auto p = test::load_mixture_params("mixture");
  const auto field = mixture_field(p);
  const auto data = test::in_memory_dataset(mixture_points(p, 1));
  ScoreSpec options;
  options.solver.rtol = options.solver.atol = 1e-10;
  options.solver.max_nfe = 40;
  std::vector<int64_t> indices(static_cast<size_t>(data.size));
  std::iota(indices.begin(), indices.end(), 0);
  const auto results = score_in_order(field, ExactTrace(1 << 14), data, options, indices);
  for (const auto& r : results) {
    EXPECT_EQ(r.status, SampleStatus::kFailed);
    EXPECT_NE(r.detail.find("more than 40 function evaluations"), std::string::npos) << r.detail;
    EXPECT_LE(r.nfe, 40);
  }
}

// The exact trace, counting the calls that evaluate it.
class CountingTrace final : public TraceEstimator {
 public:
  int64_t num_estimates() const override { return 1; }
  torch::Tensor draw_probes(std::span<const int64_t>, int64_t, torch::TensorOptions,
                            std::span<const int64_t>) const override {
    return {};
  }
  VelocityAndTrace evaluate(const JacobianProducts& field, const torch::Tensor& x,
                            const torch::Tensor& t, const torch::Tensor& probes,
                            const torch::Tensor& labels) const override {
    ++calls;
    return exact_.evaluate(field, x, t, probes, labels);
  }
  std::string name() const override { return "exact"; }
  mutable int64_t calls = 0;

 private:
  ExactTrace exact_{1 << 14};
};

SolverSpec gauss_legendre(double tol, ErrorNorm norm = ErrorNorm::kRms) {
  SolverSpec spec;
  spec.kind = SolverKind::kDopri5;
  spec.quadrature = Quadrature::kGaussLegendre;
  spec.norm = norm;
  spec.rtol = spec.atol = tol;
  return spec;
}

TEST(PerSampleSolverTest, GaussLegendreQuadratureReachesTheClosedForm) {
  // The state solved alone and the trace integrated at three Gauss-Legendre points per step, on
  // dopri5's dense output: the exact log-density of the mixture at a tight tolerance, in every
  // norm (mixed is rms over the state here: the trace is not in the step's error).
  const auto p = test::load_mixture_params("mixture");
  const auto field = mixture_field(p);
  const auto points = mixture_points(p, 2);
  for (const auto norm : {ErrorNorm::kMax, ErrorNorm::kRms, ErrorNorm::kMixed}) {
    const auto solution =
        integrate_to_prior(field, ExactTrace(1 << 14), points, {}, gauss_legendre(1e-9, norm));
    const auto log_density =
        normal_log_density(solution.x_prior) + solution.log_density_change.squeeze(1);
    for (int64_t i = 0; i < points.size(0); ++i) {
      const auto row = points[i].contiguous();
      const double exact = test::mixture_log_density(
          p, 1.0, std::span<const double>(row.data_ptr<double>(), p.dim()));
      EXPECT_NEAR(log_density[i].item<double>(), exact, 1e-6) << to_string(norm) << " point " << i;
    }
  }
}

TEST(PerSampleSolverTest, GaussLegendreEvaluatesTheTraceOncePerAcceptedStepOnly) {
  // One row (one call per evaluation): the stages evaluate the velocity alone, and the trace is
  // evaluated once per accepted step (its three points in one call), so nfe = 1 + 6 trial steps +
  // 3 accepted steps, and the error of the rule at a loose tolerance stays of the solve's order.
  const auto p = test::load_mixture_params("mixture");
  const auto field = mixture_field(p);
  const auto points = mixture_points(p, 1);
  for (int64_t i = 0; i < points.size(0); ++i) {
    const auto x = points.narrow(0, i, 1);
    CountingTrace counting;
    const auto solution = integrate_to_prior(field, counting, x, {}, gauss_legendre(1e-5));
    const int64_t accepted = counting.calls;
    EXPECT_GT(accepted, 2);
    const int64_t stages = solution.nfe - 1 - 3 * accepted;
    EXPECT_GE(stages, 6 * accepted) << "point " << i;
    EXPECT_EQ(stages % 6, 0) << "point " << i << " nfe " << solution.nfe;
    const auto row = points[i].contiguous();
    const double exact =
        test::mixture_log_density(p, 1.0, std::span<const double>(row.data_ptr<double>(), p.dim()));
    const double got =
        (normal_log_density(solution.x_prior) + solution.log_density_change.squeeze(1))
            .item<double>();
    EXPECT_NEAR(got, exact, 1e-3) << "point " << i;
  }
}

TEST(PerSampleSolverTest, QuadratureNamesParseAndBack) {
  EXPECT_EQ(parse_quadrature("gauss-legendre"), Quadrature::kGaussLegendre);
  EXPECT_EQ(to_string(Quadrature::kAugmented), "augmented");
  EXPECT_EQ(test::expect_error<InvalidArgument>([] { parse_quadrature("simpson"); }),
            "--quadrature: unknown quadrature 'simpson' (valid: augmented, gauss-legendre)");
}

}  // namespace
}  // namespace flowlik
