// Model archives as untrusted input (likelihood/model/model_archive.h): the documented limits,
// reads and extraction bounded by each member's stated size, private folders, and the removal of
// folders that dead flowlik processes left behind. The hostile names themselves are tested end to
// end in tests/python/test_hostile_packages.py.
#include "likelihood/model/model_archive.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "flowlik/error.h"
#include "likelihood/model/aoti_network.h"
#include "tests/expect_error.h"

namespace flowlik {
namespace {

namespace fs = std::filesystem;

class ModelArchiveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("flowlik_archive_test_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A zip of (name, contents), stored uncompressed unless `deflate`.
  std::string write_zip(const std::vector<std::pair<std::string, std::string>>& members,
                        bool deflate = false) {
    const auto path = (dir_ / ("a" + std::to_string(count_++) + ".zip")).string();
    int error = 0;
    zip_t* zip = zip_open(path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &error);
    EXPECT_NE(zip, nullptr);
    for (const auto& [name, contents] : members) {
      auto* source = zip_source_buffer(zip, contents.data(), contents.size(), 0);
      const auto index = zip_file_add(zip, name.c_str(), source, ZIP_FL_ENC_UTF_8);
      EXPECT_GE(index, 0) << name;
      zip_set_file_compression(zip, static_cast<zip_uint64_t>(index),
                               deflate ? ZIP_CM_DEFLATE : ZIP_CM_STORE, 9);
    }
    EXPECT_EQ(zip_close(zip), 0);
    return path;
  }

  fs::path dir_;
  int count_ = 0;
};

TEST_F(ModelArchiveTest, ListsMembersBelowTheTopFolderAndReadsThem) {
  const auto path = write_zip({{"model/archive_format", "pt2"}, {"model/data/x.txt", "hello"}});
  const ModelArchive archive(path);
  EXPECT_EQ(archive.root(), "model");
  EXPECT_TRUE(archive.has("archive_format"));
  EXPECT_TRUE(archive.has("data/x.txt"));
  EXPECT_FALSE(archive.has("model/data/x.txt"));
  EXPECT_EQ(archive.read("data/x.txt"), "hello");
}

TEST_F(ModelArchiveTest, RefusesArchivesBeyondTheLimits) {
  const auto path =
      write_zip({{"model/a", std::string(3000, 'a')}, {"model/b", std::string(3000, 'b')}});
  ArchiveLimits few;
  few.max_members = 1;
  test::expect_error<ModelError>([&] { ModelArchive(path, few); },
                                 {path, "2 members", "more than the 1"});
  ArchiveLimits small;
  small.max_total_bytes = 5000;
  test::expect_error<ModelError>([&] { ModelArchive(path, small); },
                                 {"member 'model/b'", "uncompressed size past"});
  ArchiveLimits tiny_reads;
  tiny_reads.max_read_bytes = 100;
  const ModelArchive archive(path, tiny_reads);
  test::expect_error<ModelError>([&] { archive.read("a"); },
                                 {"member 'model/a' is 3000 bytes", "more than the 100"});
}

TEST_F(ModelArchiveTest, RefusesAHighlyCompressedMemberAsABomb) {
  const auto path = write_zip({{"model/zeros.so", std::string(4 << 20, '\0')}}, true);
  test::expect_error<ModelError>([&] { ModelArchive{path}; },
                                 {"member 'model/zeros.so'", "compression ratio", "zip bomb"});
}

TEST_F(ModelArchiveTest, RefusesHostileNames) {
  for (const std::string name :
       {"model/../x", "model/a/../../x", "/abs/x", "model/./x", "model//x", "other/x", "x"}) {
    const auto path = write_zip({{"model/archive_format", "pt2"}, {name, "x"}});
    EXPECT_THROW(ModelArchive{path}, ModelError) << name;
  }
}

TEST_F(ModelArchiveTest, ExtractsPrivatelyAndOnlyThePrefix) {
  const auto path = write_zip({{"model/data/f/a.so", "aaa"},
                               {"model/data/f/b_metadata.json", "{}"},
                               {"model/data/g/c.so", "ccc"}});
  const ModelArchive archive(path);
  const PackageFolder folder(path);
  std::vector<fs::path> created;
  archive.extract("data/f/", folder.path(), [&](const fs::path& p) { created.push_back(p); });
  EXPECT_TRUE(fs::is_regular_file(folder.path() / "data/f/a.so"));
  EXPECT_FALSE(fs::exists(folder.path() / "data/g"));
  EXPECT_EQ(created.size(), 4u);  // data, data/f, and the two files
  struct stat st {};
  ASSERT_EQ(::stat(folder.path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_EQ(::stat((folder.path() / "data/f/a.so").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // Extracting the same member again never writes through what is there.
  EXPECT_THROW(archive.extract("data/f/", folder.path(), [](const fs::path&) {}), ModelError);
}

TEST_F(ModelArchiveTest, APackageFolderIsRemovedWithItsObject) {
  fs::path where;
  {
    const PackageFolder folder("model.pt2");
    where = folder.path();
    EXPECT_TRUE(where.filename().string().starts_with("flowlik-" + std::to_string(::getpid())));
    std::ofstream(where / "x") << "x";
  }
  EXPECT_FALSE(fs::exists(where));
}

TEST_F(ModelArchiveTest, RemovesFoldersOfDeadProcessesOnly) {
  // No process has a pid this large (pid_max is at most 2^22).
  const auto dead = dir_ / "flowlik-999999999-abcdef";
  const auto alive = dir_ / ("flowlik-" + std::to_string(::getppid()) + "-abcdef");
  const auto mine = dir_ / ("flowlik-" + std::to_string(::getpid()) + "-abcdef");
  const auto other = dir_ / "flowlikish-999999999-x";
  for (const auto& d : {dead, alive, mine, other}) fs::create_directories(d / "sub");
  EXPECT_EQ(remove_stale_package_folders(dir_), 1);
  EXPECT_FALSE(fs::exists(dead));
  EXPECT_TRUE(fs::exists(alive));
  EXPECT_TRUE(fs::exists(mine));
  EXPECT_TRUE(fs::exists(other));
}

TEST_F(ModelArchiveTest, AMissingTmpdirIsNamed) {
  const auto missing = (dir_ / "no-such-folder").string();
  ::setenv("TMPDIR", missing.c_str(), 1);
  test::expect_error<ModelError>([] { PackageFolder("model.pt2"); },
                                 {"model.pt2", missing, "set TMPDIR"});
  ::unsetenv("TMPDIR");
}

TEST(CpuFeaturesTest, AnotherMachineOrAnUnknownFeatureIsNamed) {
  EXPECT_THAT(missing_cpu_features("a-machine-that-is-not-this-one", ""),
              ::testing::HasSubstr("a-machine-that-is-not-this-one processor"));
  EXPECT_EQ(missing_cpu_features("", ""), "");
}

TEST(CpuFeaturesTest, AnX8664LevelNeedsEveryOneOfItsInstructionSets) {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line) && !line.starts_with("flags")) {
  }
  if (line.empty()) GTEST_SKIP() << "no CPU flags in /proc/cpuinfo to check against";
  std::set<std::string> flags;
  std::istringstream words(line.substr(line.find(':') + 1));
  for (std::string w; words >> w;) flags.insert(w);
  // x86-64-v4 is x86-64-v3 and AVX-512: what it lacks here is the v3 set's lack and more.
  const auto v3 = missing_cpu_features("x86_64", "AVX2 x86-64-v3");
  const auto v4 = missing_cpu_features("x86_64", "AVX512 x86-64-v4");
  EXPECT_EQ(v3.empty(), flags.contains("avx2") && flags.contains("bmi2") && flags.contains("fma"));
  EXPECT_EQ(v4.empty(), v3.empty() && flags.contains("avx512f") && flags.contains("avx512vl"));
  if (!flags.contains("avx512f")) EXPECT_THAT(v4, ::testing::HasSubstr("avx512f"));
}

TEST(PackageMetadataTest, IsAJsonObjectOfStrings) {
  const auto dir = fs::temp_directory_path() / ("flowlik_metadata_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  auto package = [&](const std::string& metadata) {
    const auto path = (dir / "p.zip").string();
    int error = 0;
    zip_t* zip = zip_open(path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &error);
    auto* source = zip_source_buffer(zip, metadata.data(), metadata.size(), 0);
    zip_file_add(zip, "model/data/aotinductor/velocity_float32/w.wrapper_metadata.json", source, 0);
    zip_close(zip);
    return path;
  };
  EXPECT_EQ(
      read_package_metadata(ModelArchive(package(R"({"a": "b"})")), "velocity_float32").at("a"),
      "b");
  test::expect_error<ModelError>(
      [&] { read_package_metadata(ModelArchive(package("{not json")), "velocity_float32"); },
      {"p.zip: package metadata (model/data/aotinductor/velocity_float32/w.wrapper_metadata.json)",
       "is not valid JSON"});
  test::expect_error<ModelError>(
      [&] { read_package_metadata(ModelArchive(package(R"({"a": 1})")), "velocity_float32"); },
      {"key 'a' is not a string"});
  fs::remove_all(dir);
}

}  // namespace
}  // namespace flowlik
