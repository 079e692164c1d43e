// flowlik::PerSampleFile and read_per_sample (include/flowlik/per_sample.h, issue 20): the
// per-sample file and --resume through the public API. A finished file reads back as written; an
// interrupted run's journal is resumed by a run of the same identity, refused for another; a second
// writer of the same file is refused; merge_shards joins shards to the unsharded run's values.
#include "flowlik/per_sample.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <vector>

#include "flowlik/output_file.h"
#include "flowlik/run.h"
#include "tests/closed_form.h"
#include "tests/expect_error.h"

namespace flowlik {
namespace {

namespace fs = std::filesystem;

class PerSampleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("flowlik_per_sample_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  fs::path dir_;
};

SampleResult row(int64_t index, double log_likelihood) {
  SampleResult r;
  r.index = index;
  r.log_likelihood = log_likelihood;
  r.model_log_likelihood = log_likelihood;
  r.bpd = -log_likelihood / (2 * std::log(2.0));
  r.nfe = 10 + index;
  return r;
}

const nlohmann::json kIdentity = {{"model_sha256", "abc"}, {"options", {{"seed", 0}}}};

TEST_F(PerSampleTest, AFinishedFileReadsBackAsWritten) {
  const auto csv = path("scores.csv");
  {
    PerSampleFile file(csv);
    EXPECT_TRUE(file.open(kIdentity, /*resume=*/false).empty());
    file.write(row(0, -1.25));
    file.write(row(1, -0.1 / 3));
    file.commit();
  }
  const auto rows = read_per_sample(csv);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1].index, 1);
  EXPECT_EQ(rows[1].log_likelihood, -0.1 / 3);  // every digit kept
  EXPECT_EQ(rows[1].nfe, 11);
  EXPECT_FALSE(fs::exists(journal_path(csv)));
  EXPECT_TRUE(fs::exists(identity_path(csv)));
}

TEST_F(PerSampleTest, AnInterruptedRunIsResumedByItsOwnIdentityOnly) {
  const auto csv = path("scores.csv");
  {
    PerSampleFile file(csv);
    file.open(kIdentity, false);
    file.write(row(0, -1.0));
    file.write(row(3, -2.0));
  }  // not committed: the journal stays, as after a kill
  ASSERT_TRUE(fs::exists(journal_path(csv)));
  {
    auto other = kIdentity;
    other["options"]["seed"] = 1;
    PerSampleFile file(csv);
    const auto message = test::expect_error<InvalidArgument>(
        [&] { file.open(other, /*resume=*/true); },
        {"scores.csv.partial was written by another run: 'options.seed' differs (file: 0, this "
         "run: 1)"});
  }
  std::vector<std::string> notes;
  PerSampleFile file(csv);
  const auto done =
      file.open(kIdentity, /*resume=*/true, [&](const std::string& n) { notes.push_back(n); });
  ASSERT_EQ(done.size(), 2u);
  EXPECT_EQ(done[1].index, 3);
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].find("resuming: 2 samples already in"), std::string::npos) << notes[0];
  file.write(row(1, -3.0));
  file.commit();
  const auto rows = read_per_sample(csv);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[2].index, 1);
}

TEST_F(PerSampleTest, OneWriterAtATime) {
  const auto csv = path("scores.csv");
  PerSampleFile first(csv);
  test::expect_error<OutputError>([&] { PerSampleFile second(csv); }, {"scores.csv"});
}

TEST_F(PerSampleTest, ATruncatedFileIsRefusedWhenRead) {
  const auto csv = path("scores.csv");
  {
    PerSampleFile file(csv);
    file.open(kIdentity, false);
    file.write(row(0, -1.0));
    file.commit();
  }
  std::ofstream(csv, std::ios::app) << "1,-2.5,3";  // a row cut off mid-write
  test::expect_error<DataError>([&] { read_per_sample(csv); },
                                {"scores.csv: truncated: its last row was cut off mid-write"});
}

// Two shards of a run, each with its report and per-sample file, merged: the unsharded run's values
// to the bit; a missing or repeated shard is refused naming the file.
TEST_F(PerSampleTest, MergedShardsGiveTheWholeRunsValues) {
  ModelOptions model_options;
  model_options.dtype = Dtype::kFloat64;
  const auto model = Model::load(test::fixture_path("mixture.pt"), model_options);
  Data data;
  data.values = torch::linspace(-2.5, 2.0, 18, torch::kFloat64).view({9, 2});
  data.name = "points";
  RunOptions options;
  options.score.solver.rtol = options.score.solver.atol = 1e-8;
  const auto whole = run_score(model, data, options);

  std::vector<std::string> reports;
  for (int64_t index = 0; index < 2; ++index) {
    const auto csv = path("shard" + std::to_string(index) + ".csv");
    PerSampleFile file(csv);
    auto sharded = options;
    sharded.shard = {index, 2, "test"};
    sharded.resume = [&](const nlohmann::json& identity) { return file.open(identity, false); };
    sharded.on_sample = [&](const SampleResult& r) { file.write(r); };
    auto report = run_score(model, data, sharded);
    file.commit();
    report.per_sample = csv;
    reports.push_back(path("shard" + std::to_string(index) + ".json"));
    write_file_atomically(reports.back(), to_json(report).dump());
  }
  const auto merged = merge_shards(reports, path("merged.csv"));
  ASSERT_EQ(merged.run.samples.size(), 9u);
  for (size_t i = 0; i < 9; ++i) {
    EXPECT_EQ(merged.run.samples[i].log_likelihood, whole.samples[i].log_likelihood) << i;
  }
  EXPECT_EQ(merged.run.summary.bpd.mean, whole.summary.bpd.mean);
  EXPECT_EQ(read_per_sample(path("merged.csv")).size(), 9u);
  const auto json = to_json(merged);
  EXPECT_EQ(json["merged_from"], reports);
  EXPECT_FALSE(json.contains("shard"));
  EXPECT_EQ(json["model"]["sha256"], model.sha256());

  test::expect_error<DataError>([&] { merge_shards(std::vector{reports[0]}); },
                                {"merge: shard 1 of 2 is missing"});
  test::expect_error<DataError>([&] { merge_shards(std::vector{reports[0], reports[0]}); },
                                {"shard0.json: shard 0 given twice"});
  // The merged file may not replace a file the merge reads; nothing is written then.
  const auto shard_csv = read_per_sample(path("shard0.csv"));
  test::expect_error<InvalidArgument>(
      [&] { merge_shards(reports, path("shard0.csv")); },
      {"--per-sample: ", "shard0.csv", "per-sample file of " + reports[0], "would be destroyed"});
  test::expect_error<InvalidArgument>([&] { merge_shards(reports, reports[1]); },
                                      {"--per-sample: ", "shard report"});
  EXPECT_EQ(read_per_sample(path("shard0.csv")).size(), shard_csv.size());
}

}  // namespace
}  // namespace flowlik
