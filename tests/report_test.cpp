// The report's parts worked out by hand: metrics, the standard error's parts, missing values as
// null.
#include "likelihood/report.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

namespace flowlik {
namespace {

ScoreSummary two_sample_summary() {
  ScoreSummary s;
  s.total = 3;
  s.ok = 2;
  s.bpd = {2, 2.5, 0.5, -3.853, 8.853};
  s.log_likelihood = {2, -100.0, 20.0, -354.1, 154.1};
  s.data_std_error_bpd = 0.4;
  s.dequant_std_error_bpd = 0.3;
  s.nfe_mean = 114.5;
  s.nfe_max = 130;
  return s;
}

TEST(ReportTest, MetricsCarryEveryEstimateAndTheirParts) {
  const auto m = metrics_json(two_sample_summary());
  EXPECT_EQ(m["bpd"]["mean"], 2.5);
  EXPECT_EQ(m["bpd"]["stderr"], 0.5);
  EXPECT_EQ(m["bpd"]["n"], 2);
  EXPECT_EQ(m["bpd"]["ci95"], nlohmann::json({-3.853, 8.853}));
  EXPECT_EQ(m["stderr_by_source"]["bpd"]["total"], 0.5);
  EXPECT_EQ(m["stderr_by_source"]["bpd"]["data"], 0.4);
  EXPECT_EQ(m["stderr_by_source"]["bpd"]["dequantization"], 0.3);
  EXPECT_TRUE(m["stderr_by_source"]["bpd"]["estimator"].is_null());  // exact trace: not estimated
  EXPECT_EQ(m["nfe"]["mean"], 114.5);
  EXPECT_EQ(m["nfe"]["max"], 130);
}

TEST(ReportTest, NumbersThatDoNotExistAreNull) {
  EXPECT_TRUE(number_or_null(NAN).is_null());
  EXPECT_TRUE(number_or_null(INFINITY).is_null());
  EXPECT_EQ(number_or_null(1.5), 1.5);
  ScoreSummary none;  // no ok sample: NaN means
  none.total = 4;
  none.bpd.mean = NAN;
  none.bpd.std_error = NAN;
  const auto m = metrics_json(none);
  EXPECT_TRUE(m["bpd"]["mean"].is_null());
  EXPECT_EQ(samples_json(none), nlohmann::json({{"total", 4}, {"ok", 0}, {"excluded", 4}}));
}

TEST(ReportTest, TheErrorSourcesLineSaysWhatWasNotEstimated) {
  EXPECT_EQ(
      describe_error_sources(two_sample_summary()),
      "0.5000 = data 0.4000 + dequantization 0.3000 + estimator not estimated (exact trace or one "
      "probe) (bpd, in quadrature)");
}

TEST(ReportTest, PreprocessingStatesTheMapAndItsOffset) {
  Preprocessing continuous;
  EXPECT_EQ(preprocessing_json(continuous, 64)["kind"], "continuous");
  Preprocessing pre;
  pre.discrete = true;
  pre.levels = 17;
  pre.scale = ScaleMap::kCentered;
  pre.levels_source = "manifest (embedded)";
  pre.scale_source = "option --scale";
  const auto j = preprocessing_json(pre, 64);
  EXPECT_EQ(j["kind"], "discrete");
  EXPECT_EQ(j["levels"], 17);
  EXPECT_EQ(j["scale"], "centered");
  EXPECT_EQ(j["sources"]["scale"], "option --scale");
  // D ln K (shared/MATH.md section 6); the map's log-determinant is per sample, not part of the
  // offset.
  EXPECT_NEAR(j["log_offset_nats"].get<double>(), 64 * std::log(17.0), 1e-9);
}

TEST(ReportTest, AnImportanceWeightedBoundOverHutchinsonEstimatesCarriesACaveat) {
  Preprocessing pre;
  pre.discrete = true;
  pre.levels = 256;
  pre.draws = 4;
  const auto hutchinson = Trace::kHutchinson;
  const auto exact = Trace::kExact;
  EXPECT_THAT(bound_caveat(pre, hutchinson), ::testing::HasSubstr("biased upward"));
  EXPECT_EQ(bound_caveat(pre, exact), "");
  pre.bound = DrawBound::kMean;  // a mean of unbiased estimates is unbiased
  EXPECT_EQ(bound_caveat(pre, hutchinson), "");
  pre.bound = DrawBound::kImportanceWeighted;
  pre.draws = 1;  // one draw: no logmeanexp
  EXPECT_EQ(bound_caveat(pre, hutchinson), "");
}

}  // namespace
}  // namespace flowlik
