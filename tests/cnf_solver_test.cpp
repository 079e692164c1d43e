// The augmented CNF solve against exact log-densities, each solver's order of convergence, and the
// handling of samples whose solve fails.
#include "likelihood/ode/cnf_solver.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <vector>

#include "estimators/exact_trace.h"
#include "estimators/hutchinson_trace.h"
#include "flowlik/error.h"
#include "likelihood/model/prior.h"
#include "likelihood/score.h"
#include "tests/closed_form.h"
#include "tests/expect_error.h"
#include "tests/in_memory_dataset.h"

namespace flowlik {
namespace {

// Data points drawn around the target: a few per component, on and off its mode.
torch::Tensor target_points(const test::MixtureParams& p) {
  std::vector<double> flat;
  int64_t n = 0;
  for (size_t k = 0; k < p.weights.size(); ++k) {
    for (int j = 0; j < 3; ++j, ++n) {
      for (int64_t d = 0; d < p.dim(); ++d) {
        flat.push_back(p.means[k][d] + p.scales[k][d] * std::cos(2.1 * j + 0.7 * d + k));
      }
    }
  }
  return torch::tensor(flat, torch::kFloat64).view({n, p.dim()});
}

// log p1(x) as the solve estimates it: log p0(x0) + l(0), one column per trace estimate.
torch::Tensor solved_log_density(const VelocityField& field, const TraceEstimator& trace,
                                 const torch::Tensor& x, const SolverSpec& spec,
                                 int64_t* nfe = nullptr) {
  std::vector<int64_t> samples(x.size(0));
  std::iota(samples.begin(), samples.end(), 0);
  const auto probes = trace.draw_probes(samples, field.dim(), field.options());
  const auto solution = integrate_to_prior(field, trace, x, probes, spec);
  if (nfe) *nfe = solution.nfe;
  return normal_log_density(solution.x_prior).unsqueeze(1) + solution.log_density_change;
}

std::vector<double> exact_log_density(const test::MixtureParams& p, const torch::Tensor& x) {
  std::vector<double> out;
  const auto xc = x.contiguous();
  for (int64_t b = 0; b < x.size(0); ++b) {
    const double* row = xc.data_ptr<double>() + b * p.dim();
    out.push_back(test::mixture_log_density(p, 1.0, std::span<const double>(row, p.dim())));
  }
  return out;
}

VelocityField load_field(const std::string& name, const test::MixtureParams& p,
                         torch::ScalarType dtype = torch::kFloat64) {
  auto field = VelocityField::load(test::fixture_path(name + ".pt"), dtype);
  field.bind_shape(p.shape);
  return field;
}

class ClosedFormTarget : public ::testing::TestWithParam<std::string> {};

TEST_P(ClosedFormTarget, Dopri5RecoversTheExactLogDensity) {
  const auto p = test::load_mixture_params(GetParam());
  const auto field = load_field(GetParam(), p);
  const auto x = target_points(p);
  const auto expected = exact_log_density(p, x);
  SolverSpec spec;
  spec.rtol = spec.atol = 1e-9;
  const ExactTrace exact(1 << 14);
  int64_t nfe = 0;
  const auto got = solved_log_density(field, exact, x, spec, &nfe);
  for (int64_t b = 0; b < x.size(0); ++b) {
    // A tolerance of 1e-9 per step keeps the global error of l(0) well below 1e-6 over the ~100
    // steps.
    EXPECT_NEAR(got[b][0].item<double>(), expected[b], 1e-6) << "sample " << b;
  }
  EXPECT_GT(nfe, 6);
  EXPECT_LT(nfe, 5000);
}

TEST_P(ClosedFormTarget, Float32AgreesWithinSinglePrecision) {
  const auto p = test::load_mixture_params(GetParam());
  const auto field = load_field(GetParam(), p, torch::kFloat32);
  const auto x = target_points(p);
  const auto expected = exact_log_density(p, x);
  SolverSpec spec;  // the defaults, rtol = atol = 1e-5
  const auto got = solved_log_density(field, ExactTrace(1 << 14), x.to(torch::kFloat32), spec);
  for (int64_t b = 0; b < x.size(0); ++b) {
    // Solver tolerance 1e-5 relative on |l| <~ 10, plus float32 rounding over ~50 steps.
    EXPECT_NEAR(got[b][0].item<double>(), expected[b], 2e-3) << "sample " << b;
  }
}

// Global error of a p-th order method falls by 2^p when the step is halved. Measured on the
// mixture, whose flow is nonlinear, at step counts where the error is far above rounding.
struct OrderCase {
  SolverKind kind;
  double order;
  int64_t steps;
};

class ConvergenceOrder : public ::testing::TestWithParam<OrderCase> {};

TEST_P(ConvergenceOrder, ErrorFallsAsTheStepToThePowerOfTheOrder) {
  const auto c = GetParam();
  const auto p = test::load_mixture_params("mixture");
  const auto field = load_field("mixture", p);
  const auto x = target_points(p);
  const auto expected = exact_log_density(p, x);
  const ExactTrace exact(1 << 14);
  auto max_error = [&](int64_t steps) {
    SolverSpec spec;
    spec.kind = c.kind;
    spec.steps = steps;
    const auto got = solved_log_density(field, exact, x, spec);
    double worst = 0.0;
    for (int64_t b = 0; b < x.size(0); ++b) {
      worst = std::max(worst, std::abs(got[b][0].item<double>() - expected[b]));
    }
    return worst;
  };
  const double coarse = max_error(c.steps);
  const double fine = max_error(2 * c.steps);
  const double observed = std::log2(coarse / fine);
  // Asymptotic order within +-0.35: the step counts are in the asymptotic range but not deep in it.
  EXPECT_NEAR(observed, c.order, 0.35) << "errors " << coarse << " -> " << fine;
}

INSTANTIATE_TEST_SUITE_P(Fields, ClosedFormTarget, ::testing::Values("gaussian", "mixture"));
INSTANTIATE_TEST_SUITE_P(Solvers, ConvergenceOrder,
                         ::testing::Values(OrderCase{SolverKind::kEuler, 1.0, 200},
                                           OrderCase{SolverKind::kMidpoint, 2.0, 100},
                                           OrderCase{SolverKind::kRk4, 4.0, 80}),
                         [](const auto& info) { return to_string(info.param.kind); });

TEST(CnfSolverTest, HutchinsonAveragesToTheExactLogDensity) {
  const auto p = test::load_mixture_params("mixture");
  const auto field = load_field("mixture", p);
  const auto x = target_points(p).narrow(0, 0, 3);
  const auto expected = exact_log_density(p, x);
  SolverSpec spec;
  spec.kind = SolverKind::kRk4;
  spec.steps = 200;
  constexpr int64_t kProbes = 400;
  const HutchinsonTrace hutchinson(ProbeNoise::kRademacher, kProbes, 99);
  const auto estimates = solved_log_density(field, hutchinson, x, spec);  // [B, K]
  for (int64_t b = 0; b < x.size(0); ++b) {
    const double mean = estimates[b].mean().item<double>();
    const double std_error = estimates[b].std().item<double>() / std::sqrt(kProbes);
    // Unbiased: within 5 of its own standard errors (plus the rk4 error, < 1e-6 at 200 steps).
    EXPECT_NEAR(mean, expected[b], 5 * std_error + 1e-6) << "sample " << b;
    EXPECT_GT(std_error, 0.0);
  }
}

TEST(CnfSolverTest, SolverFactoryRejectsUnknownNames) {
  const auto message = test::expect_error<InvalidArgument>(
      [] { parse_solver("adams"); }, {"solver: unknown solver 'adams'",
                                      "valid: dopri5, tsit5, bosh3, rkf78, rk4, midpoint, euler"});
  EXPECT_THAT(message, ::testing::StartsWith("--solver: "));  // the option, as error.h names it
}

std::vector<SampleResult> score_all(const VelocityField& field, const Dataset& data,
                                    const ScoreSpec& options) {
  std::vector<int64_t> indices(data.size);
  std::iota(indices.begin(), indices.end(), 0);
  std::vector<SampleResult> results;
  score_dataset(field, ExactTrace(1 << 14), data, Preprocessing{}, options, indices,
                [&](const SampleResult& r) { results.push_back(r); });
  return results;
}

TEST(ScoreDatasetTest, FixedStepResultsDoNotDependOnBatchSize) {
  const auto p = test::load_mixture_params("mixture");
  const auto field = load_field("mixture", p);
  const auto data = test::in_memory_dataset(target_points(p));
  ScoreSpec options;
  options.solver.kind = SolverKind::kRk4;
  options.solver.steps = 20;
  options.batch_size = 1;
  const auto single = score_all(field, data, options);
  options.batch_size = 4;
  const auto batched = score_all(field, data, options);
  ASSERT_EQ(single.size(), batched.size());
  for (size_t i = 0; i < single.size(); ++i) {
    EXPECT_EQ(single[i].index, batched[i].index);
    // Bitwise equality is not promised by the BLAS across row counts; agreement to a few ulps is.
    EXPECT_NEAR(single[i].log_likelihood, batched[i].log_likelihood,
                1e-12 * std::abs(single[i].log_likelihood));
  }
}

TEST(ScoreDatasetTest, ABadSampleIsIsolatedAndTheRestAreScored) {
  // Sample 2 makes the model return NaN (or throw); samples 0, 1, 3 must still be scored, and be
  // the same as when scored alone.
  auto values =
      torch::tensor({0.5, -0.2, 1.0, 0.3, 500.0, 0.0, -1.0, 0.7}, torch::kFloat64).view({4, 2});
  const auto data = test::in_memory_dataset(values);
  for (const std::string model : {"nan_for_large_input", "throws_for_large_input"}) {
    for (const auto kind : {SolverKind::kDopri5, SolverKind::kRk4}) {
      auto field = VelocityField::load(test::fixture_path(model + ".pt"), torch::kFloat64);
      field.bind_shape({2});
      ScoreSpec options;
      options.solver.kind = kind;
      options.solver.steps = 10;
      options.solver.max_nfe = 2000;
      options.batch_size = 4;
      const auto results = score_all(field, data, options);
      ASSERT_EQ(results.size(), 4u);
      for (const int i : {0, 1, 3}) {
        EXPECT_EQ(results[i].status, SampleStatus::kOk) << model << " sample " << i;
        // The field is v = -x: x0 = x1 e, l(0) = -int tr = D, so log p1(x) = log N(e x) + D
        // exactly.
        const double e = std::exp(1.0);
        const double x0 = values[i][0].item<double>() * e;
        const double x1 = values[i][1].item<double>() * e;
        const double exact = -std::log(2 * M_PI) - 0.5 * (x0 * x0 + x1 * x1) + 2.0;
        const double tolerance = kind == SolverKind::kRk4 ? 1e-3 : 1e-4;
        EXPECT_NEAR(results[i].log_likelihood, exact, tolerance) << model << " sample " << i;
      }
      EXPECT_NE(results[2].status, SampleStatus::kOk) << model;
      EXPECT_FALSE(results[2].detail.empty());
      const auto summary = summarize(results, 2);
      EXPECT_EQ(summary.ok, 3);
      EXPECT_EQ(summary.total, 4);
    }
  }
}

TEST(ScoreDatasetTest, AllSamplesFailingIsAnError) {
  const auto data = test::in_memory_dataset(torch::full({2, 2}, 500.0, torch::kFloat64));
  auto field =
      VelocityField::load(test::fixture_path("throws_for_large_input.pt"), torch::kFloat64);
  field.bind_shape({2});
  const auto results = score_all(field, data, ScoreSpec{});
  test::expect_error<NoSampleScored>([&] { summarize(results, 2); }, {"all 2 samples failed"});
}

}  // namespace
}  // namespace flowlik
