// The summary of per-sample results: the standard error of the mean and its parts by source,
// against values worked out by hand.
#include "likelihood/score.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "likelihood/report.h"

namespace flowlik {
namespace {

SampleResult ok(double ll, double estimator_se, double dequant_se) {
  SampleResult r;
  r.log_likelihood = ll;
  r.bpd = bits_per_dim(ll, 1);
  r.estimator_std_error = estimator_se;
  r.dequant_std_error = dequant_se;
  return r;
}

TEST(ScoreSummaryTest, StandardErrorSplitsBySourceInQuadrature) {
  // Values 1, 2, 4: mean 7/3, sample variance 7/3, standard error sqrt(7/9).
  // Estimator: sqrt(0.3^2 + 0.4^2 + 0) / 3 = 1/6. Dequantization: sqrt(0.6^2 + 0.8^2 + 0) / 3 =
  // 1/3. Data: sqrt(7/9 - 1/36 - 1/9) = sqrt(23/36).
  const std::vector<SampleResult> results = {ok(1, 0.3, 0.6), ok(2, 0.4, 0.8), ok(4, 0.0, 0.0)};
  const auto s = summarize_results(results, 1);
  EXPECT_NEAR(s.log_likelihood.mean, 7.0 / 3.0, 1e-15);
  EXPECT_NEAR(s.log_likelihood.std_error, std::sqrt(7.0 / 9.0), 1e-15);
  EXPECT_NEAR(s.estimator_std_error_log_likelihood, 1.0 / 6.0, 1e-15);
  EXPECT_NEAR(s.dequant_std_error_log_likelihood, 1.0 / 3.0, 1e-15);
  EXPECT_NEAR(s.data_std_error_log_likelihood, std::sqrt(23.0 / 36.0), 1e-15);
  EXPECT_NEAR(s.data_std_error_bpd, std::sqrt(23.0 / 36.0) / std::log(2.0), 1e-15);
  EXPECT_NEAR(s.dequant_std_error_bpd, 1.0 / 3.0 / std::log(2.0), 1e-15);
}

TEST(ScoreSummaryTest, AnUnestimatedPartIsNaNAndCountsAsZero) {
  const std::vector<SampleResult> results = {ok(1, NAN, NAN), ok(3, NAN, NAN)};
  const auto s = summarize_results(results, 1);
  EXPECT_TRUE(std::isnan(s.estimator_std_error_log_likelihood));
  EXPECT_TRUE(std::isnan(s.dequant_std_error_log_likelihood));
  EXPECT_NEAR(s.data_std_error_log_likelihood, s.log_likelihood.std_error, 1e-15);
}

TEST(ScoreSummaryTest, ASplitThatCannotBeIdentifiedIsSaidToBe) {
  // Values 1 and 1.1: standard error 0.05; each sample's estimator error 0.3 gives an estimator
  // part of sqrt(0.18) / 2 = 0.21, larger than the total. The data's part is not clamped to 0.
  const std::vector<SampleResult> results = {ok(1, 0.3, NAN), ok(1.1, 0.3, NAN)};
  const auto s = summarize_results(results, 1);
  EXPECT_NEAR(s.log_likelihood.std_error, 0.05, 1e-12);
  EXPECT_TRUE(std::isnan(s.data_std_error_log_likelihood));
  EXPECT_TRUE(std::isnan(s.data_std_error_bpd));
  EXPECT_THAT(describe_error_sources(s), ::testing::HasSubstr("not identifiable from 2 samples"));
}

TEST(ScoreSummaryTest, NoSampleOkGivesNaNMeansNotAnError) {
  SampleResult failed;
  failed.status = SampleStatus::kFailed;
  const std::vector<SampleResult> results = {failed, failed};
  const auto s = summarize_results(results, 2);
  EXPECT_EQ(s.ok, 0);
  EXPECT_EQ(s.total, 2);
  EXPECT_TRUE(std::isnan(s.bpd.mean));
}

}  // namespace
}  // namespace flowlik
