// The SQLite history: rows appended from reports read back whole, in order, filtered by model.
#include "flowlik/history.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "tests/expect_error.h"

namespace flowlik {
namespace {

namespace fs = std::filesystem;

class HistoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("flowlik_history_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  static nlohmann::json report(const std::string& model, const std::string& sha, double bpd,
                               nlohmann::json stderr_value) {
    return {{"model", {{"path", model}, {"sha256", sha}}},
            {"data", {{"path", "test.npy"}, {"sha256", "d0"}}},
            {"samples", {{"ok", 63}, {"total", 64}}},
            {"metrics",
             {{"bpd", {{"mean", bpd}, {"stderr", stderr_value}}},
              {"log_likelihood", {{"mean", -100.0}}}}}};
  }

  fs::path dir_;
};

TEST_F(HistoryTest, AppendedRowsReadBackInOrderWithTheirReports) {
  const auto db = path("h.sqlite");
  append_history(db, "score", report("a.pt2", "aa", 2.51, 0.01));
  append_history(db, "compare", report("b.pt2", "bb", 2.49, nullptr));
  append_history(db, "score", report("a.pt2", "aa", 2.50, 0.02));
  const auto rows = read_history(db);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].command, "score");
  EXPECT_EQ(rows[0].model_path, "a.pt2");
  EXPECT_EQ(rows[0].bpd_mean, 2.51);
  EXPECT_EQ(rows[0].bpd_stderr, 0.01);
  EXPECT_EQ(rows[0].samples_ok, 63);
  EXPECT_EQ(rows[0].samples_total, 64);
  EXPECT_EQ(rows[0].data_sha256, "d0");
  EXPECT_TRUE(std::isnan(rows[1].bpd_stderr));  // a null standard error stays missing
  EXPECT_EQ(rows[1].report["model"]["sha256"], "bb");
  EXPECT_LT(rows[0].id, rows[2].id);
  EXPECT_EQ(rows[2].time_utc.size(), std::string("2026-12-02T06:00:00Z").size());
}

TEST_F(HistoryTest, TheFilterMatchesAModelByPathOrDigest) {
  const auto db = path("h.sqlite");
  append_history(db, "score", report("a.pt2", "aa", 2.51, 0.01));
  append_history(db, "score", report("b.pt2", "bb", 2.49, 0.01));
  EXPECT_EQ(read_history(db, "b.pt2").size(), 1u);
  EXPECT_EQ(read_history(db, "aa").size(), 1u);
  EXPECT_EQ(read_history(db, "aa")[0].model_path, "a.pt2");
  EXPECT_TRUE(read_history(db, "c.pt2").empty());
}

TEST_F(HistoryTest, UnreadableFilesAreNamed) {
  test::expect_error<DataError>([&] { read_history(path("missing.sqlite")); },
                                {"missing.sqlite: cannot read history"});
  std::ofstream(path("text.sqlite"))
      << "not a database, just text that is long enough to have a header";
  test::expect_error<DataError>([&] { read_history(path("text.sqlite")); },
                                {"text.sqlite: cannot read history"});
  test::expect_error<OutputError>(
      [&] { append_history(path("no/such/dir.sqlite"), "score", report("a", "a", 1, 1)); },
      {"dir.sqlite: cannot append to history"});
}

}  // namespace
}  // namespace flowlik
