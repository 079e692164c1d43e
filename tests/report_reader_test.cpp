#include "likelihood/report_reader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
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
  std::filesystem::remove(path);
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

TEST(ReportReaderTest, AShardReportMustHoldTheBlockItsIndexNames) {
  nlohmann::json report = {{"tool", nlohmann::json::object()},
                           {"model", nlohmann::json::object()},
                           {"data", data_json(some_data())},
                           {"preprocessing", nlohmann::json::object()},
                           {"options", nlohmann::json::object()},
                           {"per_sample", "s.csv"},
                           {"wall_time_s", 1.0},
                           {"shard", Shard{1, 3, "--shard"}.json(10)}};
  const auto good = write_temp(report.dump());
  const auto s = read_shard_report(good);
  EXPECT_EQ(s.shard.range(s.n), std::make_pair(int64_t{3}, int64_t{6}));
  EXPECT_EQ(s.shard.index, 1);
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
  std::filesystem::remove(bad);
  std::filesystem::remove(no_shard);
}

}  // namespace
}  // namespace flowlik
