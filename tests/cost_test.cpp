// measure_cost (likelihood/cost.h), what `flowlik inspect` reports: each estimator timed, the exact
// trace extrapolated from its chunk, and one sample solved with one Rademacher probe, which is
// exact for the Gaussian fixture's diagonal Jacobian, so its log-likelihood is the closed form's.
#include "likelihood/cost.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "tests/closed_form.h"

namespace flowlik {
namespace {

TEST(CostTest, TimesEachEstimatorAndSolvesOneSample) {
  const auto p = test::load_mixture_params("gaussian");
  auto field = VelocityField::load(test::fixture_path("gaussian.pt"), torch::kFloat64);
  field.bind_shape(p.shape);
  const auto x = torch::full({1, p.dim()}, 0.3, torch::kFloat64);
  const auto cost = measure_cost(field, x, {});
  EXPECT_GT(cost.velocity_ms, 0.0);
  EXPECT_GT(cost.hutchinson_ms, 0.0);
  EXPECT_EQ(cost.exact_rows, std::min<int64_t>(p.dim(), 64));
  EXPECT_GT(cost.exact_ms, 0.0);
  EXPECT_GE(cost.exact_budget.max_rows, 1);
  EXPECT_EQ(cost.solve_status, "ok");
  EXPECT_GT(cost.nfe, 0);
  EXPECT_GT(cost.solve_seconds, 0.0);
  const std::vector<double> row(static_cast<size_t>(p.dim()), 0.3);
  EXPECT_NEAR(cost.log_likelihood, test::mixture_log_density(p, 1.0, row), 1e-3);
}

TEST(CostTest, AFailedSolveIsReportedWithItsEvaluations) {
  // NaN for a first coordinate above 100: the solve from there fails, and the cost says so.
  auto field = VelocityField::load(test::fixture_path("nan_for_large_input.pt"), torch::kFloat64);
  field.bind_shape({3});
  const auto cost = measure_cost(field, torch::full({1, 3}, 500.0, torch::kFloat64), {});
  EXPECT_EQ(cost.solve_status.rfind("failed: ", 0), 0u) << cost.solve_status;
  EXPECT_GT(cost.velocity_ms, 0.0);
}

}  // namespace
}  // namespace flowlik
