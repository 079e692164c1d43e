#include "likelihood/comparison.h"

#include <gtest/gtest.h>

#include <cmath>

namespace flowlik {
namespace {

TEST(ComparisonTest, UnpairedDifferenceUsesWelchsStudentT) {
  // now: mean 2.0, se 0.1 over 10 samples; base: mean 1.8, se 0.2 over 5. By hand (scipy.stats.t):
  // df = (0.01 + 0.04)^2 / (0.1^4 / 9 + 0.2^4 / 4) = 6.08108, t_0.975(df) = 2.439025.
  const MeanEstimate now{10, 2.0, 0.1, 0.0, 0.0};
  const MeanEstimate base{5, 1.8, 0.2, 0.0, 0.0};
  const auto d = unpaired_difference(now, base);
  EXPECT_NEAR(d.mean, 0.2, 1e-15);
  EXPECT_NEAR(d.std_error, 0.223606797749979, 1e-15);
  EXPECT_NEAR(d.ci_low, -0.3453825841943459, 1e-6);
  EXPECT_NEAR(d.ci_high, 0.745382584194346, 1e-6);
}

TEST(ComparisonTest, UnpairedDifferenceWithoutErrorsFallsBackToTheNormal) {
  const MeanEstimate now{1, 2.0, NAN, NAN, NAN};
  const MeanEstimate base{1, 1.5, NAN, NAN, NAN};
  const auto d = unpaired_difference(now, base);
  EXPECT_EQ(d.std_error, 0.0);
  EXPECT_EQ(d.ci_low, 0.5);
  EXPECT_EQ(d.ci_high, 0.5);
}

}  // namespace
}  // namespace flowlik

namespace flowlik {
namespace {

SampleResult with_draws(double ll, std::vector<double> draws) {
  SampleResult r;
  r.log_likelihood = ll;
  r.bpd = -ll / std::log(2.0);  // D = 1
  r.draw_log_likelihoods = std::move(draws);
  return r;
}

TEST(ComparisonTest, PairedDequantizationPartFromPerDrawDifferences) {
  // Per-draw differences (b - a): sample 0 {1, 3} (variance 2, / M = 1), sample 1 {2, 2} (0).
  // Dequantization part: sqrt(1 + 0) / 2 nats = 0.5 / ln 2 bpd.
  const std::vector<SampleResult> a = {with_draws(0.0 - 1.0, {0.0, 0.0}),
                                       with_draws(-2.0, {1.0, 1.0})};
  const std::vector<SampleResult> b = {with_draws(1.0, {1.0, 3.0}), with_draws(0.5, {3.0, 3.0})};
  const auto d = paired_difference(a, b, 0, 1);
  EXPECT_NEAR(d.dequant_std_error_bpd, 0.5 / std::log(2.0), 1e-12);
  const auto same = paired_difference(a, a, 0, 0);
  EXPECT_EQ(same.dequant_std_error_bpd, 0.0);
  EXPECT_EQ(same.data_std_error_bpd, 0.0);
}

}  // namespace
}  // namespace flowlik
