#include "likelihood/statistics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <optional>
#include <vector>

namespace flowlik {
namespace {

TEST(StatisticsTest, MeanStandardErrorAndIntervalWorkedByHand) {
  // {1, 2, 3, 4}: mean 2.5, sample variance 5/3, sd 1.2909944, se = sd / 2 = 0.6454972;
  // t(0.975, 3 df) = 3.1824463 (tables), so the interval is 2.5 -+ 2.0542603.
  const std::vector<double> v{1, 2, 3, 4};
  const auto m = estimate_mean(v);
  EXPECT_EQ(m.count, 4);
  EXPECT_DOUBLE_EQ(m.mean, 2.5);
  EXPECT_NEAR(m.std_error, 0.6454972244, 1e-9);
  EXPECT_NEAR(m.ci_low, 2.5 - 2.0542603, 1e-6);
  EXPECT_NEAR(m.ci_high, 2.5 + 2.0542603, 1e-6);
}

TEST(StatisticsTest, LargeSamplesUseTheNormalQuantile) {
  // n = 10001 alternating +-1: mean 1/10001, sd ~ 1; t(0.975, 10000 df) = 1.9602.
  std::vector<double> v;
  for (int i = 0; i < 10001; ++i) v.push_back(i % 2 ? -1.0 : 1.0);
  const auto m = estimate_mean(v);
  EXPECT_NEAR((m.ci_high - m.ci_low) / (2 * m.std_error), 1.9602, 1e-3);
}

TEST(StatisticsTest, AccurateFarFromZero) {
  // Log-likelihoods in the thousands: a one-pass sum of squares would lose the spread.
  const std::vector<double> v{-1e8 + 1, -1e8 + 2, -1e8 + 3};
  EXPECT_NEAR(estimate_mean(v).std_error, 1.0 / std::sqrt(3.0), 1e-7);
}

TEST(StatisticsTest, OneValueHasNoStandardError) {
  const std::vector<double> v{3.0};
  const auto m = estimate_mean(v);
  EXPECT_DOUBLE_EQ(m.mean, 3.0);
  EXPECT_TRUE(std::isnan(m.std_error));
}

// The budget found, as {samples, draws, probes, cost}, or {} when none was.
std::vector<double> found(const std::optional<Budget>& b) {
  if (!b) return {};
  return {static_cast<double>(b->samples), static_cast<double>(b->draws),
          static_cast<double>(b->probes), b->cost};
}

TEST(BudgetTest, DataAloneNeedsTheSamplesOfTheTargetAndNothingElse) {
  // Var(mean) = 0.5 / n <= 0.01^2: n = 5000, one draw and one probe.
  EXPECT_EQ(found(cheapest_budget({0.5, 0.0, 0.0}, 0.01, 100000, 64, 64)),
            (std::vector<double>{5000, 1, 1, 5000}));
}

TEST(BudgetTest, DrawsAreBoughtOnlyWhenTheSamplesRunOut) {
  // data 1, one draw 100, target 0.1: n M = (M + 100) / 0.01 grows with M, so one draw with
  // n = 10100 is cheapest, if the data have that many samples. With 2000 samples, M must make
  // (1 + 100 / M) / 0.01 <= 2000, M >= 5.26: M = 6 gives n = ceil(1766.67) = 1767, cost 10602 (M =
  // 7: 1529, cost 10703).
  EXPECT_EQ(found(cheapest_budget({1.0, 100.0, 0.0}, 0.1, 1000000, 64, 1)),
            (std::vector<double>{10100, 1, 1, 10100}));
  EXPECT_EQ(found(cheapest_budget({1.0, 100.0, 0.0}, 0.1, 2000, 64, 1)),
            (std::vector<double>{1767, 6, 1, 10602}));
}

TEST(BudgetTest, ProbesShareTheirVarianceWithDraws) {
  // data 0, one probe 10, target 0.1, 100 samples: (10 / (M K)) / 0.01 <= 100 needs M K >= 10; the
  // cost n M K = max(ceil(1000 / (M K)), 2) M K is 1000 whenever n reaches 100 or less without
  // falling below 2; the first such in the search (M = 1, K = 10) is kept.
  EXPECT_EQ(found(cheapest_budget({0.0, 0.0, 10.0}, 0.1, 100, 64, 64)),
            (std::vector<double>{100, 1, 10, 1000}));
}

TEST(BudgetTest, AnUnreachableTargetHasNoBudget) {
  // The data's own part over all 100 samples gives sqrt(1 / 100) = 0.1 > 0.05, whatever M and K.
  EXPECT_FALSE(cheapest_budget({1.0, 1.0, 1.0}, 0.05, 100, 64, 64).has_value());
}

}  // namespace
}  // namespace flowlik
