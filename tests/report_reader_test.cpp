#include "likelihood/report_reader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "flowlik/error.h"
#include "tests/expect_error.h"

namespace flowlik {
namespace {

using ::testing::HasSubstr;

std::string write_temp(const std::string& text) {
  const auto path = (std::filesystem::temp_directory_path() /
                     ("flowlik_report_" + std::to_string(::getpid()) + ".json"))
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

TEST(ReportReaderTest, ABaselineReadsAsItsBpdAndData) {
  const auto path = write_temp(
      R"({"metrics": {"bpd": {"mean": 2.5, "stderr": null, "n": 1}}, "data": {"sha256": "ab"}})");
  const auto baseline = read_baseline_report(path);
  EXPECT_EQ(baseline.bpd.mean, 2.5);
  EXPECT_EQ(baseline.bpd.std_error, 0.0);  // one sample: no standard error, counted as 0
  EXPECT_EQ(baseline.bpd.count, 1);
  EXPECT_EQ(baseline.data_sha256, "ab");
  std::filesystem::remove(path);
  const auto none =
      write_temp(R"({"metrics": {"bpd": {"mean": null, "n": 0}}, "data": {"sha256": "ab"}})");
  test::expect_error<DataError>([&] { read_baseline_report(none); },
                                {"baseline report has no bpd (metrics.bpd.mean is null)"});
  std::filesystem::remove(none);
}

TEST(ReportReaderTest, AShardReportMustHoldTheBlockItsIndexNames) {
  const std::string head =
      R"({"tool": {}, "model": {}, "data": {"N": 10, "D": 4}, "preprocessing": {},
      "options": {}, "per_sample": "s.csv", "wall_time_s": 1.0, "shard": {"index": 1, "count": 3, )";
  const auto good = write_temp(head + R"("first": 3, "end": 6}})");
  const auto s = read_shard_report(good);
  EXPECT_EQ(s.first, 3);
  EXPECT_EQ(s.end, 6);
  EXPECT_EQ(shard_block(1, 3, 10), std::make_pair(int64_t{3}, int64_t{6}));
  std::filesystem::remove(good);
  const auto bad = write_temp(head + R"("first": 0, "end": 6}})");
  test::expect_error<DataError>(
      [&] { read_shard_report(bad); },
      {"shard.first/shard.end [0, 6) are not block 1 of 3 of 10 samples ([3, 6))"});
  std::filesystem::remove(bad);
}

}  // namespace
}  // namespace flowlik
