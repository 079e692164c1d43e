// Trace estimators against the closed-form divergence of Gaussian and Gaussian-mixture fields.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "estimators/exact_trace.h"
#include "estimators/hutchinson_trace.h"
#include "estimators/trace_factory.h"
#include "flowlik/error.h"
#include "likelihood/model/velocity_field.h"
#include "tests/closed_form.h"
#include "tests/expect_error.h"

namespace flowlik {
namespace {

using test::FieldValue;
using test::MixtureParams;

VelocityField load_field(const std::string& name, const MixtureParams& p) {
  auto field = VelocityField::load(test::fixture_path(name + ".pt"), torch::kFloat64);
  field.bind_shape(p.shape);
  return field;
}

// Points spread over the path, including near both ends.
std::vector<std::pair<double, std::vector<double>>> probe_points(int64_t dim) {
  std::vector<std::pair<double, std::vector<double>>> points;
  const double times[] = {0.02, 0.3, 0.5, 0.77, 0.98};
  for (int i = 0; i < 5; ++i) {
    std::vector<double> x(dim);
    for (int64_t d = 0; d < dim; ++d) x[d] = std::sin(1.3 * (i + 1) * (d + 1)) * (1.0 + 0.5 * i);
    points.emplace_back(times[i], x);
  }
  return points;
}

class ExactTraceTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ExactTraceTest, MatchesClosedFormVelocityAndDivergence) {
  const auto params = test::load_mixture_params(GetParam());
  const auto field = load_field(GetParam(), params);
  const auto points = probe_points(params.dim());
  // A small row budget forces the dimension chunking to be exercised as well as the one-call path.
  for (const int64_t max_rows : {1, 3, 1 << 14}) {
    const ExactTrace exact(max_rows);
    for (const auto& [t, point] : points) {
      // The same point twice: a batch of B > 1 goes through the row bookkeeping.
      std::vector<double> flat = point;
      flat.insert(flat.end(), point.begin(), point.end());
      const auto x = torch::tensor(flat, torch::kFloat64).view({2, params.dim()});
      const auto result = exact.evaluate(field, x, t, {}, {});
      const FieldValue expected = test::mixture_field(params, t, point);
      for (int64_t b = 0; b < 2; ++b) {
        // Float64 throughout; the only error is rounding in a few dozen operations.
        EXPECT_NEAR(result.trace[b][0].item<double>(), expected.divergence, 1e-10)
            << "t " << t << ", max_rows " << max_rows;
        for (int64_t d = 0; d < params.dim(); ++d) {
          EXPECT_NEAR(result.velocity[b][d].item<double>(), expected.velocity[d], 1e-10);
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Fields, ExactTraceTest, ::testing::Values("gaussian", "mixture"));

// Jacobian of the closed-form velocity by central differences: error O(h^2) ~ 1e-10.
std::vector<std::vector<double>> closed_form_jacobian(const MixtureParams& p, double t,
                                                      const std::vector<double>& x) {
  const double h = 1e-5;
  const auto n = x.size();
  std::vector<std::vector<double>> jac(n, std::vector<double>(n));
  for (size_t j = 0; j < n; ++j) {
    auto plus = x;
    auto minus = x;
    plus[j] += h;
    minus[j] -= h;
    const auto vp = test::mixture_field(p, t, plus).velocity;
    const auto vm = test::mixture_field(p, t, minus).velocity;
    for (size_t i = 0; i < n; ++i) jac[i][j] = (vp[i] - vm[i]) / (2 * h);
  }
  return jac;
}

struct Moments {
  double mean = 0.0;
  double variance = 0.0;
};

Moments hutchinson_moments(const VelocityField& field, ProbeNoise noise, double t,
                           const std::vector<double>& x, int64_t probes) {
  const HutchinsonTrace estimator(noise, probes, /*seed=*/12345);
  const std::vector<int64_t> sample{0};
  const auto drawn = estimator.draw_probes(sample, field.dim(), torch::kFloat64);
  const auto xt = torch::tensor(x, torch::kFloat64).view({1, field.dim()});
  const auto estimates = estimator.evaluate(field, xt, t, drawn, {}).trace[0];  // [K]
  return {estimates.mean().item<double>(), estimates.var().item<double>()};
}

// E[e^T J e] = tr J; Var = 2 ||J||_F^2 for Gaussian probes and 2 (||J||_F^2 - sum J_ii^2) for
// Rademacher probes (shared/MATH.md section 3). Checked on the mixture, whose Jacobian is not
// diagonal.
TEST(HutchinsonTraceTest, UnbiasedWithTheClosedFormVariances) {
  const auto params = test::load_mixture_params("mixture");
  const auto field = load_field("mixture", params);
  constexpr int64_t kProbes = 20000;
  for (const auto& [t, x] : probe_points(params.dim())) {
    const auto expected = test::mixture_field(params, t, x);
    const auto jac = closed_form_jacobian(params, t, x);
    double frobenius = 0.0;
    double diagonal = 0.0;
    for (size_t i = 0; i < jac.size(); ++i) {
      diagonal += jac[i][i] * jac[i][i];
      for (size_t j = 0; j < jac.size(); ++j) frobenius += jac[i][j] * jac[i][j];
    }
    const struct {
      ProbeNoise noise;
      double variance;
    } cases[] = {{ProbeNoise::kGaussian, 2 * frobenius},
                 {ProbeNoise::kRademacher, 2 * (frobenius - diagonal)}};
    for (const auto& c : cases) {
      const auto m = hutchinson_moments(field, c.noise, t, x, kProbes);
      // The mean of K draws is within 5 standard errors of tr J (a 1 in 1.7 million miss per
      // check).
      const double std_error = std::sqrt(c.variance / kProbes);
      EXPECT_NEAR(m.mean, expected.divergence, 5 * std_error + 1e-9) << "t = " << t;
      // The sample variance of K = 20000 draws is within 10% of the true one: its relative standard
      // error is sqrt(2 / K + kurtosis terms) < 2% for these low-dimensional Jacobians.
      EXPECT_NEAR(m.variance, c.variance, 0.1 * c.variance + 1e-9) << "t = " << t;
    }
  }
}

TEST(HutchinsonTraceTest, RademacherIsExactForADiagonalJacobian) {
  // The Gaussian target has independent coordinates, so J is diagonal and e^T J e = tr J for every
  // +-1 probe: zero variance, where Gaussian probes still have 2 sum J_ii^2.
  const auto params = test::load_mixture_params("gaussian");
  const auto field = load_field("gaussian", params);
  for (const auto& [t, x] : probe_points(params.dim())) {
    const auto expected = test::mixture_field(params, t, x).divergence;
    const auto rademacher = hutchinson_moments(field, ProbeNoise::kRademacher, t, x, 64);
    EXPECT_NEAR(rademacher.mean, expected, 1e-10);
    EXPECT_NEAR(rademacher.variance, 0.0, 1e-18);
    const auto gaussian = hutchinson_moments(field, ProbeNoise::kGaussian, t, x, 64);
    EXPECT_GT(gaussian.variance, 1e-6);
  }
}

TEST(HutchinsonTraceTest, ProbesDependOnTheSampleNotTheBatch) {
  const HutchinsonTrace estimator(ProbeNoise::kGaussian, 3, 7);
  const std::vector<int64_t> batch{4, 9, 2};
  const std::vector<int64_t> alone{9};
  const auto in_batch = estimator.draw_probes(batch, 5, torch::kFloat64);  // [K, B, D]
  const auto single = estimator.draw_probes(alone, 5, torch::kFloat64);
  EXPECT_TRUE(torch::equal(in_batch.select(1, 1), single.select(1, 0)));
  // Different samples and different probes of one sample get different noise.
  EXPECT_FALSE(torch::equal(in_batch.select(1, 0), in_batch.select(1, 1)));
  EXPECT_FALSE(torch::equal(single[0], single[1]));
  // A different seed gives different noise.
  const HutchinsonTrace other_seed(ProbeNoise::kGaussian, 3, 8);
  EXPECT_FALSE(torch::equal(other_seed.draw_probes(alone, 5, torch::kFloat64), single));
}

TEST(TraceFactoryTest, RejectsUnknownNamesWithTheValidOnes) {
  test::expect_error<InvalidArgument>(
      [] { parse_trace("skilling"); },
      {"trace: unknown trace estimator 'skilling'", "valid: exact, hutchinson"});
  test::expect_error<InvalidArgument>(
      [] { parse_probe_noise("uniform"); },
      {"noise: unknown probe distribution 'uniform' (valid: rademacher, gaussian)"});
  EXPECT_EQ(parse_trace("hutchinson"), Trace::kHutchinson);
  EXPECT_EQ(to_string(ProbeNoise::kGaussian), "gaussian");
  TraceSpec spec;
  spec.method = Trace::kHutchinson;
  spec.noise = ProbeNoise::kGaussian;
  spec.probes = 0;
  test::expect_error<InvalidArgument>([&] { make_trace_estimator(spec); },
                                      {"probes: must be at least 1"});
}

}  // namespace
}  // namespace flowlik
