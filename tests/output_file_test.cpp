#include "flowlik/output_file.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "flowlik/error.h"
#include "tests/expect_error.h"

namespace flowlik {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class OutputFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("flowlik_output_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  static std::string read(const std::string& p) {
    std::ifstream in(p);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  fs::path dir_;
};

TEST_F(OutputFileTest, WritesTheWholeFileAndLeavesNoTemporary) {
  write_file_atomically(path("r.json"), "first");
  write_file_atomically(path("r.json"), "second, longer");
  EXPECT_EQ(read(path("r.json")), "second, longer");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1);
}

TEST_F(OutputFileTest, AFailedWriteLeavesTheEarlierFile) {
  write_file_atomically(path("r.json"), "good");
  fs::create_directory(path("sub"));
  // A directory in the way: the rename fails, the earlier file and the folder are untouched.
  EXPECT_THROW(write_file_atomically(path("sub"), "bad"), OutputError);
  EXPECT_EQ(read(path("r.json")), "good");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 2);
}

TEST_F(OutputFileTest, GivesANewFileTheUsualPermissions) {
  const mode_t mask = ::umask(022);
  write_file_atomically(path("r.json"), "x");
  ::umask(mask);
  EXPECT_EQ(fs::status(path("r.json")).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                fs::perms::others_read);
}

TEST_F(OutputFileTest, CheckCanCreateNamesTheMissingDirectory) {
  EXPECT_NO_THROW(check_can_create(path("new.json")));
  test::expect_error<OutputError>([&] { check_can_create(path("missing/new.json")); },
                                  {"does not exist"});
  fs::create_directory(path("d"));
  EXPECT_THROW(check_can_create(path("d")), OutputError);
}

TEST_F(OutputFileTest, SameFileSeesThroughLinksAndSpellings) {
  std::ofstream(path("a")) << "a";
  fs::create_hard_link(path("a"), path("hard"));
  fs::create_symlink(path("a"), path("soft"));
  fs::create_directory(path("x"));
  EXPECT_TRUE(same_file(path("a"), path("hard")));
  EXPECT_TRUE(same_file(path("a"), path("soft")));
  EXPECT_TRUE(same_file(path("a"), (dir_ / "." / "x" / ".." / "a").string()));
  EXPECT_FALSE(same_file(path("a"), path("b")));
  EXPECT_TRUE(same_file(path("new"), (dir_ / "." / "new").string()));  // neither exists yet
  EXPECT_FALSE(same_file(path("new"), path("other")));
}

TEST_F(OutputFileTest, AnOutputNamingAnInputOrAnotherOutputIsRefused) {
  std::ofstream(path("d.npy")) << "data";
  const std::vector<NamedFile> inputs = {{"--data", path("d.npy")}, {"--labels", ""}};
  test::expect_error<InvalidArgument>(
      [&] {
        const std::vector<NamedFile> outputs = {{"-o", path("d.npy")}};
        check_outputs_distinct(inputs, outputs);
      },
      {"-o", "--data"});
  test::expect_error<InvalidArgument>(
      [&] {
        const std::vector<NamedFile> outputs = {
            {"-o", path("x")}, {"--html", ""}, {"--per-sample", path("x")}};
        check_outputs_distinct(inputs, outputs);
      },
      {"--per-sample", "also given to -o"});
  const std::vector<NamedFile> fine = {{"-o", path("r.json")}, {"--per-sample", path("s.csv")}};
  EXPECT_NO_THROW(check_outputs_distinct(inputs, fine));
}

}  // namespace
}  // namespace flowlik
