#include "io/report_reader.h"

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

}  // namespace
}  // namespace flowlik
