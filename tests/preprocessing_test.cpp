// Dequantization, the maps to model space and the bpd offsets (shared/MATH.md section 6), against
// values worked out by hand.
#include "likelihood/model/preprocessing.h"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <vector>

#include "flowlik/error.h"
#include "tests/expect_error.h"

namespace flowlik {
namespace {

// The map and the noise written as the options write them, into a Preprocessing.
void parse_scale(const std::string& text, Preprocessing& pre) {
  const auto map = parse_data_map(text);
  pre.scale = map.kind;
  pre.logit_lambda = map.logit_lambda;
}
void parse_noise(const std::string& text, Preprocessing& pre) {
  const auto noise = parse_dequantization(text);
  pre.dequantization = noise.kind;
  pre.noise_sigma = noise.sigma.value_or(0.0);
}

Preprocessing discrete(const std::string& scale, int64_t levels = 256) {
  Preprocessing pre;
  pre.discrete = true;
  pre.levels = levels;
  pre.seed = 3;
  parse_scale(scale, pre);
  return pre;
}

double raw_bpd(double model_log_likelihood, double log_det, const Preprocessing& pre, int64_t dim) {
  return bits_per_dim(model_log_likelihood + log_det - data_log_offset(pre, dim), dim);
}

TEST(PreprocessingTest, CenteredEightBitDataAddSevenBits) {
  // D = 10, NLL = 100 nats: 100 / (10 ln 2) = 14.4269504 bits/dim, + log2(256) - 1 = 7.
  const auto pre = discrete("centered");
  const auto in =
      to_model_space(torch::zeros({1, 10}, torch::kFloat64), std::vector<int64_t>{0}, pre);
  EXPECT_NEAR(in.log_det[0].item<double>(), 10 * std::log(2.0), 1e-12);
  EXPECT_NEAR(raw_bpd(-100.0, in.log_det[0].item<double>(), pre, 10), 14.4269504089 + 7.0, 1e-9);
}

TEST(PreprocessingTest, UnitEightBitDataAddEightBits) {
  const auto pre = discrete("unit");
  const auto in =
      to_model_space(torch::zeros({1, 10}, torch::kFloat64), std::vector<int64_t>{0}, pre);
  EXPECT_EQ(in.log_det[0].item<double>(), 0.0);
  EXPECT_NEAR(raw_bpd(-100.0, 0.0, pre, 10), 14.4269504089 + 8.0, 1e-9);
}

TEST(PreprocessingTest, SeventeenLevelsAddLog2Of17) {
  // The digits example: K = 17, centered: + log2(17) - 1 = 3.0874628.
  const auto pre = discrete("centered", 17);
  EXPECT_NEAR(raw_bpd(-100.0, 64 * std::log(2.0), pre, 64),
              100 / (64 * std::log(2.0)) + 3.0874628413, 1e-9);
}

TEST(PreprocessingTest, ContinuousDataHaveNoOffset) {
  Preprocessing pre;
  const auto values = torch::tensor({0.25, -3.0}, torch::kFloat64).view({1, 2});
  const auto in = to_model_space(values, std::vector<int64_t>{0}, pre);
  EXPECT_TRUE(torch::equal(in.y, values));
  EXPECT_EQ(in.log_det[0].item<double>(), 0.0);
  EXPECT_EQ(data_log_offset(pre, 2), 0.0);
}

TEST(PreprocessingTest, DequantizedValuesStayInTheirBins) {
  const auto pre = discrete("centered", 17);
  const auto k = torch::arange(17, torch::kFloat64).view({1, 17}).repeat({50, 1});
  std::vector<int64_t> samples(50);
  for (int i = 0; i < 50; ++i) samples[i] = 1000 + i;
  const auto y = to_model_space(k, samples, pre).y;  // 2 (k + u) / 17 - 1
  const auto low = 2 * k / 17 - 1;
  const auto high = 2 * (k + 1) / 17 - 1;
  EXPECT_TRUE((y >= low).all().item<bool>());
  EXPECT_TRUE((y < high).all().item<bool>());
}

TEST(PreprocessingTest, NoiseDependsOnTheSampleIndexNotTheBatch) {
  const auto pre = discrete("unit");
  const auto k = torch::full({3, 5}, 7.0, torch::kFloat64);
  const auto batch = to_model_space(k, std::vector<int64_t>{10, 11, 12}, pre).y;
  const auto alone = to_model_space(k.narrow(0, 0, 1), std::vector<int64_t>{11}, pre).y;
  EXPECT_TRUE(torch::equal(batch[1], alone[0]));
  EXPECT_FALSE(torch::equal(batch[0], batch[1]));
  auto other = pre;
  other.seed = 4;
  EXPECT_FALSE(torch::equal(to_model_space(k.narrow(0, 0, 1), std::vector<int64_t>{11}, other).y[0],
                            alone[0]));
}

TEST(PreprocessingTest, LogitLogDeterminantMatchesTheDerivative) {
  // y = logit(lam + (1 - 2 lam) x01): dy/dx01 = (1 - 2 lam) / (s (1 - s)) per dimension, by hand;
  // checked here against a central difference of the map itself.
  for (const double lambda : {1e-6, 0.05}) {
    auto pre = discrete("logit:" + std::to_string(lambda));
    const auto k = torch::tensor({0.0, 37.0, 128.0, 255.0}, torch::kFloat64).view({1, 4});
    const auto in = to_model_space(k, std::vector<int64_t>{5}, pre);
    const auto s = (torch::sigmoid(in.y) - lambda) / (1 - 2 * lambda);  // x01, inverted from y
    double expected = 0.0;
    const double h = 1e-7;
    for (int64_t i = 0; i < 4; ++i) {
      const double x = s[0][i].item<double>();
      auto map = [&](double v) {
        const double z = lambda + (1 - 2 * lambda) * v;
        return std::log(z) - std::log1p(-z);
      };
      expected += std::log((map(x + h) - map(x - h)) / (2 * h));
    }
    EXPECT_NEAR(in.log_det[0].item<double>(), expected, 1e-5) << "lambda " << lambda;
  }
}

TEST(PreprocessingTest, ParseScaleRejectsWhatItDoesNotKnow) {
  Preprocessing pre;
  parse_scale("logit", pre);
  EXPECT_EQ(pre.logit_lambda, 1e-6);
  parse_scale("logit:0.05", pre);
  EXPECT_EQ(pre.logit_lambda, 0.05);
  for (const std::string bad : {"logit:0.5", "logit:-1", "logit:abc", "logit:0.1x"}) {
    test::expect_error<InvalidArgument>([&] { parse_scale(bad, pre); },
                                        {"scale: logit lambda must be a number in [0, 0.5)"});
  }
  test::expect_error<InvalidArgument>(
      [&] { parse_scale("minmax", pre); },
      {"scale: unknown map 'minmax' (valid: unit, centered, logit, logit:LAMBDA)"});
}

// Truncated-normal dequantization (i-DODE): u = 0.5 + sigma e, e ~ N(0, 1) truncated to the bin.
// `sigma` in bins; D values of level 3 from `count` samples, one row each.
ModelInput truncated_normal_rows(double sigma, int64_t count, int64_t dim,
                                 const std::string& scale = "unit") {
  auto pre = discrete(scale, 16);
  parse_noise(fmt::format("truncated-normal:{}", sigma), pre);
  std::vector<int64_t> samples(static_cast<size_t>(count));
  std::iota(samples.begin(), samples.end(), 0);
  return to_model_space(torch::full({count, dim}, 3.0, torch::kFloat64), samples, pre);
}

TEST(PreprocessingTest, TruncatedNormalNoiseHasTheTruncatedNormalsMoments) {
  // sigma = 0.25 bins: tau = 0.5 / sigma = 2. The truncated normal on [-tau, tau] has mean 0 and
  // variance 1 - 2 tau phi(tau) / Z, Z = erf(tau / sqrt 2) (its textbook moments), so u has mean
  // 0.5 and variance sigma^2 (1 - 2 tau phi(tau) / Z); and a fraction (2 Phi(1) - 1) / Z of e lies
  // in
  // [-1, 1].
  const double sigma = 0.25;
  const double tau = 2.0;
  const int64_t n = 200000;
  const auto in = truncated_normal_rows(sigma, n, 1);
  const auto u = (in.y * 16.0 - 3.0).flatten();  // x01 = (3 + u) / 16
  EXPECT_GE(u.min().item<double>(), 0.0);
  EXPECT_LE(u.max().item<double>(), 1.0);
  const double z = std::erf(tau / std::sqrt(2.0));
  const double phi = std::exp(-0.5 * tau * tau) / std::sqrt(2.0 * M_PI);
  const double variance = sigma * sigma * (1.0 - 2.0 * tau * phi / z);
  const double se_mean = std::sqrt(variance / n);
  EXPECT_NEAR(u.mean().item<double>(), 0.5, 5 * se_mean);
  EXPECT_NEAR(u.var().item<double>(), variance, 5 * variance * std::sqrt(2.0 / n));
  const double inside = ((u - 0.5).abs() <= sigma).to(torch::kFloat64).mean().item<double>();
  const double expected = std::erf(1.0 / std::sqrt(2.0)) / z;
  EXPECT_NEAR(inside, expected, 5 * std::sqrt(expected * (1 - expected) / n));
}

TEST(PreprocessingTest, TruncatedNormalLogDensityIntegratesToOneOverTheBin) {
  // q's support is the whole bin [0, 1), so E_q[1 / q(u)] = integral of 1 du = 1: the log-density
  // is normalized, whatever its formula. Checked per dimension (D = 1) at three widths.
  for (const double sigma : {0.2, 0.5, 2.0}) {
    const int64_t n = 200000;
    const auto in = truncated_normal_rows(sigma, n, 1);
    const auto inverse = torch::exp(-in.log_q);
    const double se = inverse.std().item<double>() / std::sqrt(static_cast<double>(n));
    EXPECT_NEAR(inverse.mean().item<double>(), 1.0, 5 * se) << "sigma " << sigma;
  }
}

TEST(PreprocessingTest, TruncatedNormalLogDensityAddsOverDimensions) {
  // A row's log q is the sum over its D = 4 dimensions of -e_i^2 / 2 - log(sigma sqrt(2 pi)) - log
  // Z, recomputed here from the row's own u; no row exceeds the value at the bin's centre.
  const double sigma = 0.3;
  const auto in = truncated_normal_rows(sigma, 1000, 4);
  const double z = std::erf(0.5 / sigma / std::sqrt(2.0));
  const double peak = 4 * (-std::log(sigma * std::sqrt(2.0 * M_PI)) - std::log(z));
  EXPECT_LE(in.log_q.max().item<double>(), peak + 1e-12);
  // Each row's log q from its own u: sum_i [-e_i^2 / 2] + the peak.
  const auto e = ((in.y * 16.0 - 3.0) - 0.5) / sigma;  // [1000, 4]
  const auto from_u = peak - 0.5 * (e * e).sum(1);
  EXPECT_TRUE(torch::allclose(in.log_q, from_u, 1e-10, 1e-10));
}

TEST(PreprocessingTest, UniformNoiseHasNoLogDensity) {
  const auto pre = discrete("centered", 16);
  const auto in =
      to_model_space(torch::zeros({3, 5}, torch::kFloat64), std::vector<int64_t>{0, 1, 2}, pre);
  EXPECT_TRUE(torch::equal(in.log_q, torch::zeros({3}, torch::kFloat64)));
}

TEST(PreprocessingTest, ParseDequantizationRejectsWhatItDoesNotKnow) {
  EXPECT_EQ(
      parse_dequantization("truncated-normal"),
      (Dequantization{DequantizationKind::kTruncatedNormal, std::nullopt}));  // SIGMA: schedule's
  EXPECT_EQ(parse_dequantization("truncated-normal:0.17"),
            (Dequantization{DequantizationKind::kTruncatedNormal, 0.17}));
  EXPECT_EQ(to_string(parse_dequantization("truncated-normal:0.17")), "truncated-normal:0.17");
  EXPECT_EQ(parse_dequantization("uniform"), Dequantization{});
  Preprocessing pre;
  parse_noise("truncated-normal:0.17", pre);
  EXPECT_EQ(describe_dequantization(pre), "truncated-normal:0.17");
  for (const std::string bad :
       {"truncated-normal:0", "truncated-normal:-1", "truncated-normal:11", "truncated-normal:x"}) {
    test::expect_error<InvalidArgument>(
        [&] { parse_dequantization(bad); },
        {"dequantization: truncated-normal SIGMA must be a number of bins in [1e-6, 10]"});
  }
  for (const std::string bad : {"gaussian", "truncated-normalx", "truncated"}) {
    test::expect_error<InvalidArgument>([&] { parse_dequantization(bad); },
                                        {"dequantization: unknown dequantization"});
  }
  // Built in code: checked as the text is.
  test::expect_error<InvalidArgument>(
      [] { check(Dequantization{DequantizationKind::kTruncatedNormal, 20.0}); },
      {"dequantization: truncated-normal SIGMA must be a number of bins in [1e-6, 10]"});
  test::expect_error<InvalidArgument>([] { check(DataMap{ScaleMap::kLogit, 0.5}); },
                                      {"scale: logit lambda must be a number in [0, 0.5)"});
  EXPECT_EQ(parse_draw_bound("mean"), DrawBound::kMean);
  EXPECT_EQ(parse_draw_bound("importance-weighted"), DrawBound::kImportanceWeighted);
  test::expect_error<InvalidArgument>([&] { parse_draw_bound("iw"); },
                                      {"--dequant-bound: unknown bound 'iw'"});
}

}  // namespace
}  // namespace flowlik
