#include "likelihood/report_reader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include "flowlik/error.h"
#include "likelihood/report.h"
#include "tests/expect_error.h"

namespace flowlik {
namespace {

using ::testing::HasSubstr;

// A file of its own per call.
std::string write_temp(const std::string& text) {
  static int calls = 0;
  const auto path =
      (std::filesystem::temp_directory_path() /
       ("flowlik_report_" + std::to_string(::getpid()) + "_" + std::to_string(++calls) + ".json"))
          .string();
  std::ofstream(path) << text;
  return path;
}

std::string error_of(const std::string& text, void (*use)(const ReportReader&)) {
  const auto path = write_temp(text);
  const auto message = test::expect_error<DataError>([&] {
    const ReportReader r(path, "shard report");
    use(r);
  });
  std::filesystem::remove(path);
  return message;
}

TEST(ReportReaderTest, ReadsCheckedValuesByDottedKey) {
  const auto path = write_temp(
      R"({"shard": {"count": 3, "name": "x"}, "m": {"bpd": {"mean": 2.5, "se": null}}})");
  const ReportReader r(path, "report");
  EXPECT_EQ(r.integer("shard.count"), 3);
  EXPECT_EQ(r.string("shard.name"), "x");
  EXPECT_DOUBLE_EQ(r.number("m.bpd.mean"), 2.5);
  EXPECT_FALSE(r.number_or_null("m.bpd.se").has_value());
  EXPECT_TRUE(r.contains("m.bpd"));
  EXPECT_FALSE(r.contains("m.bpd.mean.x"));
  EXPECT_EQ(r.size("nothing"), 0u);  // not there: no elements
  std::filesystem::remove(path);
  const auto arrays = write_temp(R"({"gates": [{"passed": true}, {"passed": 1}]})");
  const ReportReader a(arrays, "report");
  EXPECT_EQ(a.size("gates"), 2u);
  EXPECT_TRUE(a.boolean("gates.0.passed"));
  EXPECT_FALSE(a.contains("gates.2"));
  EXPECT_FALSE(a.contains("gates.x"));
  test::expect_error<DataError>([&] { a.boolean("gates.1.passed"); },
                                {"key 'gates.1.passed': expected true or false, found number"});
  std::filesystem::remove(arrays);
}

TEST(ReportReaderTest, EveryMistakeNamesTheFileAndKey) {
  EXPECT_THAT(error_of(R"({"shard": {}})", [](const ReportReader& r) { r.integer("shard.count"); }),
              HasSubstr("key 'shard.count': expected a value, found nothing"));
  EXPECT_THAT(error_of(R"({"shard": {"count": "2"}})",
                       [](const ReportReader& r) { r.integer("shard.count"); }),
              HasSubstr("key 'shard.count': expected an integer, found string"));
  EXPECT_THAT(error_of(R"({"shard": []})", [](const ReportReader& r) { r.integer("shard.count"); }),
              HasSubstr("expected an object, found array"));
  EXPECT_THAT(error_of(R"({"n": 1e300})", [](const ReportReader& r) { r.integer("n"); }),
              HasSubstr("expected an integer"));
  EXPECT_THAT(error_of("[1, 2]", [](const ReportReader&) {}), HasSubstr("not a JSON object"));
  EXPECT_THAT(error_of("{\"a\": ", [](const ReportReader&) {}), HasSubstr("not valid JSON"));
  EXPECT_THAT(
      error_of(std::string(100000, '[') + std::string(100000, ']'), [](const ReportReader&) {}),
      HasSubstr("deeper"));
}

RunReport::DataRecord some_data() {
  RunReport::DataRecord d;
  d.path = "digits.npy";
  d.sha256 = "ab";
  d.dtype = "uint8";
  d.shape = {10, 2, 2};
  d.n = 10;
  d.dim = 4;
  return d;
}

// The readers are the writers' inverses: what flowlik writes reads back as the same values.
TEST(ReportReaderTest, EachSectionReadsBackAsItWasWritten) {
  const MeanEstimate mean{5, 2.5, 0.125, 2.25, 2.75};
  const MeanEstimate one_sample{1, 2.0, NAN, NAN, NAN};
  auto labelled = some_data();
  labelled.labels = "labels.npy";
  const Shard shard{1, 3, "--shard"};
  const nlohmann::json written = {{"mean", mean_json(mean)},
                                  {"one", mean_json(one_sample)},
                                  {"data", data_json(labelled)},
                                  {"unlabelled", {{"data", data_json(some_data())}}},
                                  {"shard", shard.json(10)}};
  const auto path = write_temp(written.dump());
  const ReportReader r(path, "report");

  const auto m = read_mean(r, "mean");
  EXPECT_EQ(m.count, 5);
  EXPECT_EQ(m.mean, 2.5);
  EXPECT_EQ(m.std_error, 0.125);
  EXPECT_EQ(m.ci_low, 2.25);
  EXPECT_EQ(m.ci_high, 2.75);
  const auto o = read_mean(r, "one");  // JSON's nulls read back as the NaNs written
  EXPECT_EQ(o.count, 1);
  EXPECT_EQ(o.mean, 2.0);
  EXPECT_TRUE(std::isnan(o.std_error) && std::isnan(o.ci_low) && std::isnan(o.ci_high));

  const auto d = read_data_record(r);
  EXPECT_EQ(d.path, "digits.npy");
  EXPECT_EQ(d.sha256, "ab");
  EXPECT_EQ(d.dtype, "uint8");
  EXPECT_EQ(d.shape, (std::vector<int64_t>{10, 2, 2}));
  EXPECT_EQ(d.n, 10);
  EXPECT_EQ(d.dim, 4);
  EXPECT_EQ(d.labels, "labels.npy");
  EXPECT_EQ(data_json(d), written["data"]);
  const auto unlabelled = write_temp(written["unlabelled"].dump());
  EXPECT_EQ(read_data_record(ReportReader(unlabelled, "report")).labels, "");  // null: none
  std::filesystem::remove(unlabelled);

  const auto s = read_shard(r, 10);
  EXPECT_EQ(s.index, 1);
  EXPECT_EQ(s.count, 3);
  EXPECT_EQ(s.source, "--shard");
  EXPECT_EQ(s.json(10), written["shard"]);
  std::filesystem::remove(path);
}

TEST(ReportReaderTest, ABaselineReadsAsItsBpdAndData) {
  const nlohmann::json report = {{"metrics", {{"bpd", mean_json({1, 2.5, NAN, NAN, NAN})}}},
                                 {"data", data_json(some_data())}};
  const auto path = write_temp(report.dump());
  const auto baseline = read_baseline_report(path);
  EXPECT_EQ(baseline.bpd.mean, 2.5);
  EXPECT_EQ(baseline.bpd.std_error, 0.0);  // one sample: no standard error, counted as 0
  EXPECT_EQ(baseline.bpd.count, 1);
  EXPECT_EQ(baseline.data_sha256, "ab");
  std::filesystem::remove(path);
  const nlohmann::json empty = {{"metrics", {{"bpd", mean_json({0, NAN, NAN, NAN, NAN})}}},
                                {"data", data_json(some_data())}};
  const auto none = write_temp(empty.dump());
  test::expect_error<DataError>([&] { read_baseline_report(none); },
                                {"baseline report has no bpd (metrics.bpd.mean is null)"});
  std::filesystem::remove(none);
}

// A report with every section a run can write, as the library fills them in.
RunReport every_section() {
  RunReport r;
  Contract contract;  // every field away from its default
  contract.signature = Signature::kTX;
  contract.time_input = TimeInput::kScalar;
  contract.time = TimeConvention::kDiffusion;
  contract.parameterization = Parameterization::kV;
  contract.schedule = Schedule{ScheduleKind::kVp, 0.0, 0.1, 20.0};
  contract.time_lo = 1e-5;
  contract.time_hi = 0.999;
  contract.prior_scale = 2.5;
  contract.shape = std::vector<int64_t>{1, 8, 8};
  contract.data_levels = 16;
  contract.data_scale = DataMap{ScaleMap::kLogit, 0.05};
  contract.conditional = true;
  contract.sources = {{"time", "default"}, {"schedule", "option --schedule"}};
  r.model = {"m.pt2", "pt2", "cd", 1234, contract};
  r.data = some_data();
  r.preprocessing.discrete = true;
  r.preprocessing.levels = 16;
  r.preprocessing.scale = ScaleMap::kLogit;
  r.preprocessing.logit_lambda = 0.05;
  r.preprocessing.seed = (uint64_t{1} << 63) + 7;
  r.preprocessing.draws = 4;
  r.preprocessing.dequantization = DequantizationKind::kTruncatedNormal;
  r.preprocessing.noise_sigma = 0.125;
  r.preprocessing.bound = DrawBound::kMean;
  r.preprocessing.dequantization_source = "option --dequantization";
  r.preprocessing.levels_source = "manifest (embedded)";
  r.preprocessing.scale_source = "option --scale";
  r.caveat = "a caveat";
  r.options.solver.rtol = 1e-6;
  r.options.solver.error_norm = ErrorNorm::kMixed;
  r.options.trace.method = Trace::kHutchinson;
  r.options.trace.noise = ProbeNoise::kGaussian;
  r.options.trace.probes = 2;
  r.options.seed = (uint64_t{1} << 63) + 5;  // beyond int64
  r.options.dequant_draws = 4;
  r.options.dtype = Dtype::kFloat64;
  r.options.device = Device::cuda(1);
  r.options.batch_size = 64;
  r.options.rows_per_call = 16;
  r.options.threads = 2;
  r.options.flow_time_prior = 0.0;
  r.options.flow_time_data = 0.999;
  r.summary.total = 10;
  r.summary.ok = 9;
  r.summary.log_likelihood = {9, -30.5, 0.5, -31.6, -29.4};
  r.summary.bpd = {9, 2.5, 0.01, 2.48, 2.52};
  r.summary.data_std_error_log_likelihood = 0.4;
  r.summary.dequant_std_error_log_likelihood = 0.3;
  r.summary.data_std_error_bpd = 0.008;
  r.summary.dequant_std_error_bpd = 0.006;  // the estimator's parts stay NaN (exact trace)
  r.summary.nfe_mean = 86.5;
  r.summary.nfe_max = 110;
  r.wall_seconds = 12.25;
  r.shard = Shard{1, 3, "--shard"};
  r.resumed_samples = 2;
  r.exact_trace_rows = "auto: 4096 rows";
  r.protocol = ProtocolRecord{"score-sde",
                              "Song et al. 2021",
                              {{"--dequantization", "uniform", true, ""},
                               {"--scale", "centered", false, "option --scale"}}};
  BudgetAdvice advice;
  advice.target_stderr_bpd = 0.01;
  advice.pilot = {32, 2, 2, 31, {0.02, 0.015, 0.01, NAN}};
  advice.per_sample_variance_bpd2 = BudgetVariances{0.5, 0.25, 0.0};
  advice.advice = Budget{100, 4, 0, 400.0};
  advice.note = "a note";
  r.budget_advice = advice;
  r.check_solve =
      SolveCheckReport{2, "", "dopri5", 1e-7, 1e-7, "rms", 2, 1e-4, 2e-4, -1e-5, 1e-6, -1e-7};
  r.round_trip = RoundTripError{2, 1, 3e-4, NAN};
  r.per_sample = "s.csv";
  r.gates.push_back({"b vs a", 0.01, 0.002, 0.006, 0.05, GateRule::kSignificant, true, "ok"});
  r.gates.push_back({"c vs a", NAN, NAN, 0.0, 0.05, GateRule::kMean, false, "no samples"});
  return r;
}

TEST(ReportReaderTest, AWholeReportReadsBackAsItWasWritten) {
  const auto written = every_section();
  const auto json = to_json(written);
  const auto path = write_temp(json.dump());
  const auto r = read_run_report(path);
  EXPECT_EQ(to_json(r).dump(), json.dump());  // every section, key and value (NaN as null)
  EXPECT_EQ(r.tool_version, json["tool"]["version"]);
  EXPECT_EQ(r.model.parameters, 1234);
  EXPECT_EQ(r.caveat, "a caveat");
  EXPECT_EQ(r.model.contract, written.model.contract);  // every field, the sources included
  EXPECT_EQ(r.preprocessing, written.preprocessing);
  EXPECT_EQ(json["model"]["contract"]["prior"], "normal, scale 2.5");
  EXPECT_EQ(json["preprocessing"]["dequant_noise"], "truncated-normal:0.125");
  EXPECT_EQ(r.summary.ok, 9);
  EXPECT_EQ(r.summary.bpd.mean, 2.5);
  EXPECT_EQ(r.summary.dequant_std_error_bpd, 0.006);
  EXPECT_TRUE(std::isnan(r.summary.estimator_std_error_bpd));
  EXPECT_EQ(r.summary.nfe_max, 110);
  EXPECT_EQ(r.options.seed, (uint64_t{1} << 63) + 5);
  EXPECT_EQ(r.options.device, Device::cuda(1));
  EXPECT_EQ(r.options.trace.noise, ProbeNoise::kGaussian);
  EXPECT_EQ(r.options.rows_per_call, 16);
  ASSERT_TRUE(r.shard && r.check_solve && r.round_trip && r.resumed_samples);
  EXPECT_EQ(r.shard->range(r.data.n), std::make_pair(int64_t{3}, int64_t{6}));
  EXPECT_EQ(r.check_solve->max_abs_error_nats, 2e-4);
  EXPECT_TRUE(std::isnan(r.round_trip->mean_abs_error));
  ASSERT_EQ(r.gates.size(), 2u);
  EXPECT_EQ(r.gates[0].rule, GateRule::kSignificant);
  EXPECT_FALSE(r.gates[1].passed);
  EXPECT_TRUE(r.samples.empty());  // the rows are in the per-sample file
  ASSERT_TRUE(r.protocol && r.budget_advice);
  ASSERT_EQ(r.protocol->settings.size(), 2u);
  EXPECT_FALSE(r.protocol->settings[1].applied);
  EXPECT_EQ(r.protocol->settings[1].replaced_by, "option --scale");
  EXPECT_TRUE(std::isnan(r.budget_advice->pilot.stderr_by_source.estimator));
  ASSERT_TRUE(r.budget_advice->advice && r.budget_advice->per_sample_variance_bpd2);
  EXPECT_EQ(r.budget_advice->advice->samples, 100);
  EXPECT_EQ(r.budget_advice->per_sample_variance_bpd2->one_draw, 0.25);
  std::filesystem::remove(path);

  // Advice that could not be given reads back as its note alone.
  RunReport unreachable = every_section();
  unreachable.budget_advice->advice.reset();
  unreachable.budget_advice->per_sample_variance_bpd2.reset();
  // One uniform draw, which names no bound: a preprocessing of defaults reads back as it was.
  unreachable.preprocessing.draws = 1;
  unreachable.preprocessing.bound = DrawBound::kImportanceWeighted;
  unreachable.preprocessing.dequantization = DequantizationKind::kUniform;
  unreachable.preprocessing.noise_sigma = 0.0;
  unreachable.preprocessing.scale = ScaleMap::kCentered;
  unreachable.preprocessing.logit_lambda = DataMap{}.logit_lambda;
  unreachable.caveat.clear();
  const auto unreachable_path = write_temp(to_json(unreachable).dump());
  const auto read = read_run_report(unreachable_path);
  EXPECT_EQ(to_json(read).dump(), to_json(unreachable).dump());
  EXPECT_TRUE(to_json(read)["budget_advice"]["advice"].is_null());
  EXPECT_FALSE(read.budget_advice->advice || read.budget_advice->per_sample_variance_bpd2);
  EXPECT_EQ(read.preprocessing, unreachable.preprocessing);
  EXPECT_FALSE(to_json(read)["preprocessing"].contains("dequant_bound"));
  std::filesystem::remove(unreachable_path);

  // A check that could not be made reads back as its reason; optional sections absent stay so.
  RunReport plain = every_section();
  plain.check_solve = SolveCheckReport{};
  plain.check_solve->samples_requested = 4;
  plain.check_solve->error = "every sample failed";
  plain.shard.reset();
  plain.resumed_samples.reset();
  plain.round_trip.reset();
  plain.gates.clear();
  plain.protocol.reset();
  plain.budget_advice.reset();
  plain.options.solver.method = Solver::kRk4;  // a fixed-step solve, the exact trace, no data draws
  plain.options.solver.steps = 50;
  plain.options.trace.method = Trace::kExact;
  plain.options.trace.max_rows = 4096;
  plain.options.dequant_draws.reset();
  plain.exact_trace_rows.clear();
  plain.preprocessing = Preprocessing{};  // continuous data, scored as given
  plain.caveat.clear();
  plain.model.contract = Contract{};  // no schedule, shape or data map declared
  plain.model.contract.sources = {{"schedule", "not declared"}};
  plain.per_sample.clear();
  const auto plain_path = write_temp(to_json(plain).dump());
  const auto back = read_run_report(plain_path);
  EXPECT_EQ(to_json(back).dump(), to_json(plain).dump());
  EXPECT_EQ(back.check_solve->error, "every sample failed");
  EXPECT_EQ(back.options.solver.steps, 50);
  EXPECT_EQ(back.options.trace.max_rows, 4096);
  EXPECT_FALSE(back.options.dequant_draws);
  EXPECT_FALSE(back.shard || back.round_trip || back.resumed_samples);
  EXPECT_FALSE(back.preprocessing.discrete);
  EXPECT_EQ(back.model.contract, plain.model.contract);
  EXPECT_TRUE(to_json(back)["model"]["contract"]["schedule"].is_null());
  std::filesystem::remove(plain_path);
}

TEST(ReportReaderTest, AWholeReportIsRefusedNamingTheKeyAtFault) {
  // Each fault alone in an otherwise whole report, and what the refusal must say.
  const std::pair<std::function<void(nlohmann::json&)>, std::string> faults[] = {
      {[](auto& j) { j["gates"][1]["rule"] = "median"; }, "gates.1.rule: unknown rule 'median'"},
      {[](auto& j) { j["metrics"]["nfe"].erase("max"); },
       "key 'metrics.nfe.max': expected a value, found nothing"},
      {[](auto& j) { j["tool"]["command"] = "compare"; },
       "a report of flowlik compare, not of flowlik score"},
      {[](auto& j) { j["samples"]["ok"] = 11; },
       "samples.ok = 11 of samples.total = 10 is not a count"},
      {[](auto& j) { j["options"]["solver"] = "rk5"; }, "options.solver: unknown solver 'rk5'"},
      {[](auto& j) { j["budget_advice"]["advice"]["samples"] = "many"; },
       "budget_advice.advice.samples"},
      {[](auto& j) { j["protocol"]["settings"][1].erase("replaced_by"); },
       "protocol.settings.1.replaced_by"},
      // The contract and the preprocessing: each field parsed as a manifest's or an option's.
      {[](auto& j) { j["model"]["contract"]["schedule"] = "vp:1"; }, "model.contract.schedule: "},
      {[](auto& j) { j["model"]["contract"]["prior_scale"] = -1; },
       "model.contract.prior_scale: not a positive scale"},
      {[](auto& j) { j["model"]["contract"]["time_range"] = {0.5, 0.25}; },
       "model.contract.time_range: must satisfy 0 <= LO < HI <= 1, got [0.5, 0.25]"},
      {[](auto& j) { j["model"]["contract"]["shape"] = {1, 0, 8}; },
       "model.contract.shape: not a sample's shape"},
      {[](auto& j) { j["model"]["contract"]["data"]["levels"] = 1; },
       "model.contract.data.levels: not a number of levels"},
      {[](auto& j) { j["model"]["contract"]["sources"]["time"] = 3; },
       "key 'model.contract.sources.time': expected a string, found number"},
      {[](auto& j) { j["model"]["contract"]["conditioning"] = "text"; },
       "model.contract.conditioning: "},
      {[](auto& j) { j["preprocessing"]["dequant_noise"] = "gaussian"; },
       "preprocessing.dequant_noise: unknown dequantization 'gaussian'"},
      {[](auto& j) { j["preprocessing"]["dequant_noise"] = "truncated-normal"; },
       "preprocessing.dequant_noise: truncated-normal without its SIGMA"},
      {[](auto& j) { j["preprocessing"].erase("dequant_bound"); },
       "key 'preprocessing.dequant_bound': expected a value, found nothing"},
      {[](auto& j) { j["preprocessing"]["levels"] = 300; }, "preprocessing.levels: not a number"},
      {[](auto& j) { j["preprocessing"]["kind"] = "generated"; }, "preprocessing.kind: "},
  };
  for (const auto& [edit, message] : faults) {
    auto json = to_json(every_section());
    edit(json);
    const auto path = write_temp(json.dump());
    test::expect_error<DataError>([&] { read_run_report(path); }, {message});
    std::filesystem::remove(path);
  }
}

TEST(ReportReaderTest, AShardReportMustHoldTheBlockItsIndexNames) {
  auto report = to_json(every_section());
  const auto good = write_temp(report.dump());
  const auto s = read_shard_report(good);
  EXPECT_EQ(s.shard->range(s.data.n), std::make_pair(int64_t{3}, int64_t{6}));
  EXPECT_EQ(s.shard->index, 1);
  EXPECT_EQ(shard_block(1, 3, 10), std::make_pair(int64_t{3}, int64_t{6}));
  std::filesystem::remove(good);
  report["shard"]["first"] = 0;
  const auto bad = write_temp(report.dump());
  test::expect_error<DataError>(
      [&] { read_shard_report(bad); },
      {"shard.first/shard.end [0, 6) are not block 1 of 3 of 10 samples ([3, 6))"});
  report["shard"]["index"] = 3;
  const auto no_shard = write_temp(report.dump());
  test::expect_error<DataError>([&] { read_shard_report(no_shard); },
                                {"shard.index 3 of shard.count 3 is not a shard"});
  report.erase("shard");
  const auto unsharded = write_temp(report.dump());
  test::expect_error<DataError>([&] { read_shard_report(unsharded); },
                                {"not a shard report of flowlik score (no 'shard'"});
  for (const auto& path : {bad, no_shard, unsharded}) std::filesystem::remove(path);
}

}  // namespace
}  // namespace flowlik
