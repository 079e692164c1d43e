#include "estimators/counter_rng.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace flowlik {
namespace {

constexpr size_t kN = 200000;

TEST(CounterRngTest, UniformHasTheMomentsOfU01) {
  std::vector<double> u(kN);
  fill_uniform({1, RandomStream::kDequantization, 0, 0}, u);
  double sum = 0, sq = 0;
  for (const double x : u) {
    ASSERT_GE(x, 0.0);
    ASSERT_LT(x, 1.0);
    sum += x;
    sq += x * x;
  }
  // Mean 1/2 (sd of the mean 0.29 / sqrt(N) = 6.5e-4), second moment 1/3.
  EXPECT_NEAR(sum / kN, 0.5, 5 * 6.5e-4);
  EXPECT_NEAR(sq / kN, 1.0 / 3.0, 5 * 6.7e-4);
}

TEST(CounterRngTest, RademacherAndNormalHaveUnitVariance) {
  std::vector<double> r(kN), z(kN);
  fill_rademacher({2, RandomStream::kProbe, 5, 1}, r);
  fill_standard_normal({2, RandomStream::kProbe, 5, 1}, z);
  double rs = 0, zs = 0, zq = 0, z4 = 0;
  for (size_t i = 0; i < kN; ++i) {
    ASSERT_EQ(std::abs(r[i]), 1.0);
    rs += r[i];
    zs += z[i];
    zq += z[i] * z[i];
    z4 += z[i] * z[i] * z[i] * z[i];
  }
  const double se = 1.0 / std::sqrt(static_cast<double>(kN));
  EXPECT_NEAR(rs / kN, 0.0, 5 * se);
  EXPECT_NEAR(zs / kN, 0.0, 5 * se);
  EXPECT_NEAR(zq / kN, 1.0, 5 * std::sqrt(2.0) * se);
  EXPECT_NEAR(z4 / kN, 3.0, 5 * std::sqrt(96.0) * se);  // Var(z^4) = 105 - 9
}

TEST(CounterRngTest, AFunctionOfTheKeyAlone) {
  std::vector<double> a(10), b(10), prefix(3);
  fill_uniform({7, RandomStream::kDequantization, 3, 0}, a);
  fill_uniform({7, RandomStream::kDequantization, 3, 0}, b);
  EXPECT_EQ(a, b);
  // A shorter draw is a prefix of a longer one: a sample's noise does not depend on how much is
  // drawn.
  fill_uniform({7, RandomStream::kDequantization, 3, 0}, prefix);
  EXPECT_EQ(std::vector<double>(a.begin(), a.begin() + 3), prefix);
  // Each part of the key changes the numbers.
  for (const RandomKey other :
       {RandomKey{8, RandomStream::kDequantization, 3, 0}, RandomKey{7, RandomStream::kProbe, 3, 0},
        RandomKey{7, RandomStream::kDequantization, 4, 0},
        RandomKey{7, RandomStream::kDequantization, 3, 1}}) {
    fill_uniform(other, b);
    EXPECT_NE(a, b);
  }
}

}  // namespace
}  // namespace flowlik
