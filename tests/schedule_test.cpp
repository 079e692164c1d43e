// Schedules against their definitions (shared/MATH.md section 4): alpha and sigma at the ends and
// in the middle, worked out by hand, and the time derivatives against central differences.
#include "likelihood/model/schedule.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "tests/expect_error.h"

namespace flowlik {
namespace {

TEST(ScheduleTest, LinearPathIsTheStraightLineFromNoiseToData) {
  Schedule s;  // linear, sigma_min 0
  auto c = path_coefficients(s, 0.25);
  EXPECT_DOUBLE_EQ(c.alpha, 0.25);
  EXPECT_DOUBLE_EQ(c.sigma, 0.75);
  EXPECT_DOUBLE_EQ(c.alpha_dot, 1.0);
  EXPECT_DOUBLE_EQ(c.sigma_dot, -1.0);
  s.sigma_min = 0.1;  // sigma = 1 - 0.9 t
  c = path_coefficients(s, 1.0);
  EXPECT_DOUBLE_EQ(c.sigma, 0.1);
  EXPECT_DOUBLE_EQ(c.sigma_dot, -0.9);
}

TEST(ScheduleTest, VpAndCosineArePreservingVarianceWithTheirClosedForms) {
  Schedule vp;
  vp.kind = ScheduleKind::kVp;  // beta 0.1 .. 20
  // At flow time t = 0.5 (s = 0.5): T = 0.1 * 0.5 + 19.9 * 0.25 / 2 = 2.5375, alpha = exp(-T / 2).
  auto c = path_coefficients(vp, 0.5);
  EXPECT_NEAR(c.alpha, std::exp(-2.5375 / 2), 1e-15);
  EXPECT_NEAR(c.alpha * c.alpha + c.sigma * c.sigma, 1.0, 1e-15);
  EXPECT_NEAR(path_coefficients(vp, 1.0).alpha, 1.0, 1e-15);  // the data end
  Schedule cosine;
  cosine.kind = ScheduleKind::kCosine;
  cosine.cosine_offset = 0.0;  // alpha = cos(pi s / 2)
  c = path_coefficients(cosine, 1.0 / 3.0);
  EXPECT_NEAR(c.alpha, std::cos(std::numbers::pi / 3), 1e-15);
  EXPECT_NEAR(c.sigma, std::sin(std::numbers::pi / 3), 1e-15);
}

TEST(ScheduleTest, VeKeepsTheDataAndGrowsSigmaGeometrically) {
  Schedule ve;
  ve.kind = ScheduleKind::kVe;
  ve.sigma_min = 0.01;
  ve.sigma_max = 100.0;
  const auto c = path_coefficients(ve, 0.5);  // the geometric mean
  EXPECT_DOUBLE_EQ(c.alpha, 1.0);
  EXPECT_DOUBLE_EQ(c.alpha_dot, 0.0);
  EXPECT_NEAR(c.sigma, 1.0, 1e-12);
  EXPECT_NEAR(path_coefficients(ve, 0.0).sigma, 100.0, 1e-10);
}

TEST(ScheduleTest, DerivativesMatchCentralDifferences) {
  for (const auto* text : {"linear:0.05", "vp", "vp:0.2,10", "cosine", "ve:0.02,50"}) {
    const auto s = parse_schedule(text);
    for (const double t : {0.2, 0.5, 0.8}) {
      constexpr double h = 1e-6;
      const auto lo = path_coefficients(s, t - h);
      const auto hi = path_coefficients(s, t + h);
      const auto c = path_coefficients(s, t);
      // Central differences err by O(h^2) times the third derivative, and by rounding / h.
      const double tolerance = 1e-6 * (1 + std::abs(c.sigma_dot) + std::abs(c.alpha_dot));
      EXPECT_NEAR(c.alpha_dot, (hi.alpha - lo.alpha) / (2 * h), tolerance) << text << " t " << t;
      EXPECT_NEAR(c.sigma_dot, (hi.sigma - lo.sigma) / (2 * h), tolerance) << text << " t " << t;
    }
  }
}

TEST(ScheduleTest, TheTextFormRoundTripsThroughDescribe) {
  for (const auto* text : {"linear:0.1", "vp:0.1,20", "cosine:0.008", "ve:0.01,50"}) {
    EXPECT_EQ(to_string(parse_schedule(text)), text);
  }
}

TEST(ScheduleTest, BadFormsAreRefusedNamingTheArgument) {
  test::expect_error<InvalidArgument>(
      [] { parse_schedule("karras"); },
      {"schedule: unknown schedule 'karras' (valid: linear, vp, cosine, ve)"});
  test::expect_error<InvalidArgument>([] { parse_schedule("vp:20,0.1"); },
                                      {"vp needs 0 < beta_min < beta_max, got 20, 0.1"});
  test::expect_error<InvalidArgument>([] { parse_schedule("ve"); }, {"ve needs its range"});
  test::expect_error<InvalidArgument>([] { parse_schedule("linear:1.5"); },
                                      {"linear sigma_min must be in [0, 1), got 1.5"});
  test::expect_error<InvalidArgument>([] { parse_schedule("vp:0.1"); },
                                      {"--schedule: 'vp:0.1' takes 2 parameter(s)"});
  test::expect_error<InvalidArgument>([] { parse_schedule("cosine:x"); }, {"'x' is not a number"});
}

}  // namespace
}  // namespace flowlik
