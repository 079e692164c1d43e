#include "likelihood/statistics.h"

#include <gtest/gtest.h>

#include <cmath>
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

}  // namespace
}  // namespace flowlik
