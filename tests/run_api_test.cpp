// flowlik::run_score and flowlik::run_compare (include/flowlik/run.h, issue 20): the whole run the
// program makes, through the public API. Results agree with the closed form; shards and resumed
// rows give the unsharded run's values to the bit; the run's identity changes with what changes
// results and not with the batch size; the report carries the hashes and checks.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "flowlik/run.h"
#include "io/file_digest.h"
#include "tests/closed_form.h"
#include "tests/expect_error.h"

namespace flowlik {
namespace {

RunOptions tight() {
  RunOptions options;
  options.score.solver.rtol = 1e-9;
  options.score.solver.atol = 1e-9;
  options.score.batch_size = 5;
  return options;
}

Model mixture() {
  ModelOptions options;
  options.dtype = Dtype::kFloat64;
  return Model::load(test::fixture_path("mixture.pt"), options);
}

Data points(int64_t n) {
  Data data;
  data.values = torch::linspace(-2.5, 2.0, 2 * n, torch::kFloat64).view({n, 2});
  data.name = "points";
  return data;
}

std::vector<double> log_likelihoods(const std::vector<SampleResult>& samples) {
  std::vector<double> out;
  for (const auto& s : samples) out.push_back(s.log_likelihood);
  return out;
}

TEST(RunApiTest, ScoresTheClosedFormAndReportsWhatWasMeasured) {
  const auto model = mixture();
  const auto p = test::load_mixture_params("mixture");
  const auto data = points(7);
  std::vector<std::pair<int64_t, int64_t>> progress;
  auto options = tight();
  options.on_progress = [&](int64_t done, int64_t total) { progress.emplace_back(done, total); };
  const auto report = run_score(model, data, options);
  ASSERT_EQ(report.summary.ok, 7);
  for (int64_t i = 0; i < 7; ++i) {
    const auto row = data.values[i].contiguous();
    const double expected =
        test::mixture_log_density(p, 1.0, std::span<const double>(row.data_ptr<double>(), 2));
    EXPECT_NEAR(report.samples[static_cast<size_t>(i)].log_likelihood, expected, 1e-6) << i;
  }
  ASSERT_EQ(progress.size(), 7u);
  EXPECT_EQ(progress.back(), (std::pair<int64_t, int64_t>{7, 7}));

  // Provenance: the model file's hash, the tensor's bytes' hash (no file), the options in effect.
  EXPECT_EQ(model.sha256(), sha256_file(test::fixture_path("mixture.pt")));
  const auto json = to_json(report);
  EXPECT_EQ(json["model"]["sha256"], model.sha256());
  EXPECT_EQ(json["data"]["sha256"], sha256_bytes({static_cast<const char*>(data.values.data_ptr()),
                                                  static_cast<size_t>(data.values.nbytes())}));
  EXPECT_EQ(json["options"]["rtol"], 1e-9);
  EXPECT_EQ(json["samples"]["ok"], 7);
  EXPECT_FALSE(json.contains("shard"));
  EXPECT_FALSE(json.contains("check_solve"));
  EXPECT_FALSE(report.preprocessing.discrete);
  EXPECT_EQ(describe(report.preprocessing), "continuous, scored as given");
}

TEST(RunApiTest, ShardsAndResumedRowsGiveTheWholeRunsValuesToTheBit) {
  const auto model = mixture();
  const auto data = points(9);
  const auto whole = run_score(model, data, tight());

  std::vector<double> joined;
  for (int64_t i = 0; i < 2; ++i) {
    auto options = tight();
    options.shard = {i, 2, "test"};
    const auto part = run_score(model, data, options);
    const auto values = log_likelihoods(part.samples);
    joined.insert(joined.end(), values.begin(), values.end());
    EXPECT_EQ(to_json(part)["shard"]["count"], 2);
  }
  EXPECT_EQ(joined, log_likelihoods(whole.samples));

  // Resume: the first four rows are given; only the others are scored, and all nine reported.
  auto options = tight();
  std::vector<int64_t> scored;
  nlohmann::json seen_identity;
  options.resume = [&](const nlohmann::json& identity) {
    seen_identity = identity;
    return std::vector<SampleResult>(whole.samples.begin(), whole.samples.begin() + 4);
  };
  options.on_sample = [&](const SampleResult& r) { scored.push_back(r.index); };
  const auto resumed = run_score(model, data, options);
  EXPECT_EQ(scored, (std::vector<int64_t>{4, 5, 6, 7, 8}));
  EXPECT_EQ(log_likelihoods(resumed.samples), log_likelihoods(whole.samples));
  EXPECT_EQ(resumed.resumed_samples, 4);

  // The identity: the batch size does not change what is measured, the seed does.
  auto other_batch = tight();
  other_batch.score.batch_size = 2;
  nlohmann::json identity_batch;
  other_batch.resume = [&](const nlohmann::json& identity) {
    identity_batch = identity;
    return std::vector<SampleResult>(whole.samples.begin(), whole.samples.end());
  };
  run_score(model, data, other_batch);
  EXPECT_EQ(identity_difference(seen_identity, identity_batch), "");
  auto other_seed = other_batch;
  other_seed.score.seed = 3;
  nlohmann::json identity_seed;
  other_seed.resume = [&](const nlohmann::json& identity) {
    identity_seed = identity;
    return std::vector<SampleResult>(whole.samples.begin(), whole.samples.end());
  };
  run_score(model, data, other_seed);
  EXPECT_NE(identity_difference(seen_identity, identity_seed).find("'options.seed' differs"),
            std::string::npos)
      << identity_difference(seen_identity, identity_seed);
}

TEST(RunApiTest, ResumedRowsOutsideTheShardAreRefused) {
  const auto model = mixture();
  auto options = tight();
  options.shard = {0, 2, "test"};
  options.resume = [](const nlohmann::json&) {
    SampleResult r;
    r.index = 8;  // in shard 1 of 2
    return std::vector<SampleResult>{r};
  };
  test::expect_error<InvalidArgument>([&] { run_score(model, points(9), options); },
                                      {"sample 8 is outside this run's samples [0, "});
}

TEST(RunApiTest, ChecksTheSolveAndTheRoundTrip) {
  const auto model = mixture();
  auto options = tight();
  options.score.solver.rtol = 1e-4;
  options.score.solver.atol = 1e-4;
  options.check_solve = 3;
  options.round_trip = true;
  const auto report = run_score(model, points(6), options);
  ASSERT_TRUE(report.check_solve.has_value());
  const auto& check = *report.check_solve;
  EXPECT_EQ(check.error, "");
  EXPECT_EQ(check.samples, 3);
  EXPECT_EQ(check.solver, "dopri5");
  EXPECT_DOUBLE_EQ(check.rtol, 1e-6);
  // A solve at 1e-4 is off by more than nothing and by less than its tolerance's order.
  EXPECT_GT(check.max_abs_error_nats, 0.0);
  EXPECT_LT(check.max_abs_error_nats, 1e-2);
  EXPECT_NE(describe(check).find("on 3 samples"), std::string::npos);
  ASSERT_TRUE(report.round_trip.has_value());
  // The report's round trip is flowlik::round_trip's under the run's options.
  const auto trip = round_trip(model, points(6), options.score);
  EXPECT_EQ(report.round_trip->samples, 6);
  EXPECT_EQ(report.round_trip->max_abs_error, trip.max_abs_error);
  EXPECT_EQ(report.round_trip->mean_abs_error, trip.mean_abs_error);
  EXPECT_GT(trip.max_abs_error, 0.0);
  const auto json = to_json(report);
  EXPECT_EQ(json["check_solve"]["samples"], 3);
  EXPECT_EQ(json["round_trip"]["samples"], 6);
}

TEST(RunApiTest, ComparesWithCommonRandomNumbers) {
  const auto model = mixture();
  const std::vector<Model> models = {model, model};
  auto options = tight();
  options.score.trace.method = Trace::kHutchinson;
  std::vector<std::pair<int64_t, int64_t>> progress;
  options.on_progress = [&](int64_t done, int64_t total) { progress.emplace_back(done, total); };
  const auto report = run_compare(models, points(6), options);
  ASSERT_EQ(report.models.size(), 2u);
  ASSERT_EQ(report.paired.size(), 1u);
  // The same model with the same probes: every paired difference is exactly zero.
  EXPECT_EQ(report.paired[0].bpd_diff.mean, 0.0);
  EXPECT_EQ(log_likelihoods(report.models[0].samples), log_likelihoods(report.models[1].samples));
  ASSERT_EQ(progress.size(), 12u);
  EXPECT_EQ(progress.back(), (std::pair<int64_t, int64_t>{12, 12}));
  const auto json = to_json(report);
  EXPECT_EQ(json["tool"]["command"], "compare");
  EXPECT_EQ(json["models"].size(), 2u);
  EXPECT_EQ(json["paired"][0]["b"], 1);
  test::expect_error<InvalidArgument>(
      [&] { run_compare(std::span(models).first(1), points(6), options); }, {"two or more"});
}

TEST(RunApiTest, GatesOnTheSolveErrorAndOnABaseline) {
  SolveCheckReport check;
  check.samples = 4;
  check.mean_abs_error_bpd = 2e-3;
  EXPECT_TRUE(gate_solve_error(check, 5e-3).passed);
  const auto failed = gate_solve_error(check, 1e-3);
  EXPECT_FALSE(failed.passed);
  EXPECT_EQ(failed.message,
            "solve error: FAILED, mean |error| 0.002 bpd on 4 samples against a limit of 0.001");
  check.error = "the model cannot run in float64";
  EXPECT_EQ(gate_solve_error(check, 1.0).message,
            "solve error: FAILED, not measured (the model cannot run in float64)");

  // Against a baseline: the same run passes a zero-regression gate; other data are refused.
  const auto model = mixture();
  const auto report = run_score(model, points(5), tight());
  const auto baseline = (std::filesystem::temp_directory_path() /
                         ("flowlik_baseline_" + std::to_string(::getpid()) + ".json"))
                            .string();
  std::ofstream(baseline) << to_json(report).dump();
  const auto gate = gate_against_baseline(report, baseline, 0.0, GateRule::kMean, "same");
  EXPECT_TRUE(gate.passed) << gate.message;
  EXPECT_EQ(gate.regression, 0.0);
  const auto other = run_score(model, points(6), tight());
  test::expect_error<DataError>(
      [&] { gate_against_baseline(other, baseline, 0.0, GateRule::kMean, "other"); },
      {"baseline was measured on other data"});
  std::filesystem::remove(baseline);
}

}  // namespace
}  // namespace flowlik
