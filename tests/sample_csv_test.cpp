#include "io/sample_csv.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "flowlik/error.h"

namespace flowlik {
namespace {

namespace fs = std::filesystem;

std::string temp_path(const std::string& name) {
  return (fs::temp_directory_path() / ("flowlik_csv_" + std::to_string(::getpid()) + "_" + name))
      .string();
}

SampleResult row(int64_t index, double ll) {
  SampleResult r;
  r.index = index;
  r.log_likelihood = ll;
  r.bpd = -ll / 10;
  r.nfe = 7;
  return r;
}

TEST(SampleCsvTest, JournalRecordsTheIdentityAndBecomesTheFileOnCommit) {
  const auto path = temp_path("a.csv");
  const nlohmann::json identity = {{"model_sha256", "abc"}, {"options", {{"seed", 3}}}};
  {
    SampleCsvWriter writer(path, identity);
    writer.write(row(0, -1.5));
    EXPECT_FALSE(fs::exists(path));
    const auto journal = read_sample_csv(journal_path(path));
    EXPECT_EQ(journal.identity, identity);
    ASSERT_EQ(journal.rows.size(), 1u);
    writer.write(row(1, -2.25));
    writer.commit();
  }
  EXPECT_FALSE(fs::exists(journal_path(path)));
  const auto csv = read_sample_csv(path);
  EXPECT_TRUE(csv.has_header);
  ASSERT_EQ(csv.rows.size(), 2u);
  EXPECT_EQ(csv.rows[1].log_likelihood, -2.25);
  EXPECT_EQ(csv.rows[1].nfe, 7);
  // The finished file is the rows alone; its identity is beside it.
  std::ifstream in(path);
  std::string first;
  std::getline(in, first);
  EXPECT_TRUE(first.starts_with("index,log_likelihood,")) << first;
  EXPECT_FALSE(csv.identity.has_value());
  EXPECT_EQ(recorded_identity(path, csv), identity);
  // Rows that are not the ones the identity was written for are not vouched for.
  std::ofstream(path, std::ios::app) << "2,-3,0.3,7,ok,,,,,,,\n";
  EXPECT_THROW(recorded_identity(path, read_sample_csv(path)), DataError);
  fs::remove(path);
  fs::remove(identity_path(path));
}

TEST(SampleCsvTest, AFileOfTheFirstVersionReadsWithoutIdentity) {
  const auto path = temp_path("old.csv");
  std::ofstream(path)
      << "index,log_likelihood,bpd,nfe,status,model_log_likelihood,log_det,prior_log_density,"
         "estimator_stderr,detail\n0,-1,0.1,5,ok,,,,,\n";
  const auto csv = read_sample_csv(path);
  EXPECT_FALSE(csv.identity.has_value());
  EXPECT_EQ(csv.rows.size(), 1u);
  fs::remove(path);
}

TEST(SampleCsvTest, ACutOffIdentityLineIsNotAHeader) {
  const auto path = temp_path("cut.csv");
  std::ofstream(path) << "# flowlik-run {\"mod";
  const auto csv = read_sample_csv(path);
  EXPECT_FALSE(csv.has_header);
  EXPECT_TRUE(csv.partial_tail);
  EXPECT_EQ(csv.complete_bytes, 0u);
  fs::remove(path);
}

}  // namespace
}  // namespace flowlik
