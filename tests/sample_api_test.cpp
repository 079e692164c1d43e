// flowlik::sample and flowlik::round_trip through the public API (issue 22): points generated
// forward score back to the log-likelihood reported with them, the round trip of a tight solve
// retraces its path, and a model that cannot be sampled is refused.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "flowlik/flowlik.h"
#include "flowlik/run.h"
#include "tests/closed_form.h"
#include "tests/expect_error.h"

namespace flowlik {
namespace {

ScoreOptions tight() {
  ScoreOptions options;
  options.solver.rtol = 1e-9;
  options.solver.atol = 1e-9;
  return options;
}

ModelOptions float64() {
  ModelOptions options;
  options.dtype = Dtype::kFloat64;
  return options;
}

TEST(SampleApiTest, GeneratedPointsScoreBackToTheirOwnLogLikelihood) {
  // A VP noise-prediction mixture with its manifest (shape [2], time range [1e-3, 1]).
  const auto model = Model::load(test::fixture_path("vp_noise_embedded.pt"), float64());
  std::vector<int64_t> seen;
  const auto generated =
      sample(model, 12, tight(), [&](const SampleResult& r) { seen.push_back(r.index); });
  ASSERT_EQ(generated.points.sizes(), (std::vector<int64_t>{12, 2}));
  ASSERT_EQ(seen.size(), 12u);
  EXPECT_EQ(generated.summary.ok, 12);
  Data data;
  data.values = generated.points;
  data.name = "generated";
  const auto scored = score(model, data, tight());
  for (size_t i = 0; i < 12; ++i) {
    const auto& forward = generated.samples[i];
    EXPECT_EQ(forward.index, static_cast<int64_t>(i));
    EXPECT_NEAR(scored.samples[i].log_likelihood, forward.log_likelihood, 1e-6) << i;
    EXPECT_NEAR(forward.bpd, -forward.log_likelihood / (2 * std::log(2.0)), 1e-12);
  }
  // Keyed by (seed, index): the first points of a larger draw are the same points.
  const auto more = sample(model, 14, tight());
  EXPECT_TRUE(torch::allclose(more.points.narrow(0, 0, 12), generated.points, 0.0, 1e-12));
}

TEST(SampleApiTest, ATightRoundTripRetracesItsPathAndACoarseOneDoesNot) {
  const auto model = Model::load(test::fixture_path("vp_noise_embedded.pt"), float64());
  Data data;
  data.values = torch::linspace(-2.0, 2.0, 16, torch::kFloat64).view({8, 2});
  data.name = "grid";
  const auto tight_trip = round_trip(model, data, tight());
  EXPECT_EQ(tight_trip.samples, 8);
  EXPECT_EQ(tight_trip.failed, 0);
  EXPECT_LT(tight_trip.max_abs_error, 1e-6);
  EXPECT_LE(tight_trip.mean_abs_error, tight_trip.max_abs_error);
  ScoreOptions coarse;
  coarse.solver.method = Solver::kEuler;
  coarse.solver.steps = 6;
  EXPECT_GT(round_trip(model, data, coarse).max_abs_error, 1e-2);
}

TEST(SampleApiTest, AConditionalModelGeneratesEachClassWithItsOwnDensity) {
  // conditional.pt: class y is N(mu_y, diag(s_y^2)) on the linear path, so log p1(x1 | y) is that
  // Gaussian's log-density at the generated point.
  const auto model = Model::load(test::fixture_path("conditional.pt"), float64());
  std::ifstream in(test::fixture_path("params.json"));
  const auto params = nlohmann::json::parse(in).at("conditional");
  const auto labels = torch::tensor({0, 1, 2, 2, 1, 0}, torch::kInt64);
  const auto generated = sample(model, 6, tight(), {}, labels);
  for (int64_t i = 0; i < 6; ++i) {
    const auto y = labels[i].item<int64_t>();
    double expected = 0.0;
    for (int64_t d = 0; d < 2; ++d) {
      const double mu = params["means"][y][d].get<double>();
      const double s = params["scales"][y][d].get<double>();
      const double z = (generated.points[i][d].item<double>() - mu) / s;
      expected += -0.5 * z * z - std::log(s) - 0.5 * std::log(2 * M_PI);
    }
    EXPECT_NEAR(generated.samples[static_cast<size_t>(i)].log_likelihood, expected, 1e-6) << i;
  }
  test::expect_error<DataError>([&] { sample(model, 5, tight(), {}, labels); },
                                {"labels must have shape (5,), one per sample, found (6)"});
}

TEST(SampleApiTest, ModelsThatCannotBeSampledAreRefused) {
  test::expect_error<ModelError>([] { sample(Model::load(test::fixture_path("gaussian.pt")), 3); },
                                 {"gaussian.pt: the manifest declares no 'shape'"});
  test::expect_error<InvalidArgument>(
      [] { sample(Model::load(test::fixture_path("conditional.pt")), 3); },
      {"labels: ", "is class-conditional; give the class of each sample to generate"});
  test::expect_error<InvalidArgument>(
      [] { sample(Model::load(test::fixture_path("vp_noise_embedded.pt")), 0); },
      {"count: must be at least 1, got 0"});
}

// run_sample (flowlik/run.h), the program's `sample`: shards draw the whole run's points to the
// bit; the report states what was generated; the data's levels need the data's map.
TEST(SampleApiTest, RunSampleShardsDrawTheWholeRunsPoints) {
  const auto model = Model::load(test::fixture_path("vp_noise_embedded.pt"), float64());
  SampleRunOptions options;
  options.score = tight();
  const auto whole = sample(model, 7, options.score);
  nlohmann::json identity;
  std::vector<torch::Tensor> parts;
  for (int64_t index = 0; index < 2; ++index) {
    options.shard = {index, 2, "test"};
    options.on_identity = [&](const nlohmann::json& id) { identity = id; };
    const auto report = run_sample(model, 7, options);
    parts.push_back(report.points);
    EXPECT_EQ(report.summary.ok, report.points.size(0));
    const auto json = to_json(report);
    EXPECT_EQ(json["generated"]["N"], 7);
    EXPECT_EQ(json["shard"]["index"], index);
    EXPECT_EQ(json["tool"]["command"], "sample");
    EXPECT_EQ(identity["generated"], json["generated"]);
    EXPECT_EQ(identity["model_sha256"], model.sha256());
  }
  EXPECT_TRUE(torch::equal(torch::cat(parts), whole.points));

  options.shard = {};
  options.data_levels = true;
  test::expect_error<InvalidArgument>(
      [&] { run_sample(model, 3, options); },
      {"--data-samples: ", "declares no map to the data (manifest field 'data'); give --scale"});
  options.score.data.scale = DataMap{ScaleMap::kCentered};
  const auto levels = run_sample(model, 3, options);
  EXPECT_EQ(levels.levels.scalar_type(), torch::kUInt8);
  EXPECT_EQ(levels.levels.sizes(), (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(to_json(levels)["data_map"]["scale"], "centered");
}

}  // namespace
}  // namespace flowlik
