// Dequantization, the maps to model space and the bpd offsets (shared/MATH.md section 6), against
// values worked out by hand.
#include "likelihood/preprocessing.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "flowlik/error.h"
#include "tests/expect_error.h"

namespace flowlik {
namespace {

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

}  // namespace
}  // namespace flowlik
