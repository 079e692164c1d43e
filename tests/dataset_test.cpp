#include "io/dataset.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>

#include "flowlik/error.h"
#include "tests/expect_error.h"

namespace flowlik {
namespace {

using ::testing::HasSubstr;

std::string write_array(const std::string& name, NpyDtype dtype, std::vector<int64_t> shape,
                        const std::vector<double>& values) {
  const auto path = (std::filesystem::temp_directory_path() / ("flowlik_dataset_" + name)).string();
  NpyArray a;
  a.dtype = dtype;
  a.shape = std::move(shape);
  for (const double v : values) {
    if (dtype == NpyDtype::kUint8) {
      a.bytes.push_back(static_cast<unsigned char>(v));
    } else {
      const float f = static_cast<float>(v);
      const auto* p = reinterpret_cast<const unsigned char*>(&f);
      a.bytes.insert(a.bytes.end(), p, p + 4);
    }
  }
  write_npy(path, a);
  return path;
}

template <typename F>
std::string data_error(F f) {
  return test::expect_error<DataError>(f);
}

TEST(DatasetTest, LoadsSamplesFirstAndFlattensTheRest) {
  const auto path =
      write_array("ok.npy", NpyDtype::kUint8, {2, 2, 3}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11});
  const auto data = load_dataset(path);
  EXPECT_EQ(data.size, 2);
  EXPECT_EQ(data.dim, 6);
  EXPECT_EQ(data.sample_shape, (std::vector<int64_t>{2, 3}));
  EXPECT_TRUE(data.is_discrete());
  EXPECT_EQ(data.values[1][5].item<double>(), 11.0);
}

TEST(DatasetTest, RefusesArraysWithoutASampleAxis) {
  const auto path = write_array("flat.npy", NpyDtype::kFloat32, {3}, {1, 2, 3});
  EXPECT_THAT(data_error([&] { load_dataset(path); }),
              HasSubstr("flat.npy: array has shape (3), expected [N, *shape]"));
}

TEST(DatasetTest, RefusesEmptyData) {
  const auto path = write_array("empty.npy", NpyDtype::kFloat32, {0, 4}, {});
  EXPECT_THAT(data_error([&] { load_dataset(path); }), HasSubstr("empty.npy: no samples"));
}

TEST(DatasetTest, RefusesNonFiniteContinuousValues) {
  const auto path = write_array("nan.npy", NpyDtype::kFloat32, {3, 2}, {0, 1, 2, NAN, 4, 5});
  EXPECT_THAT(data_error([&] { load_dataset(path); }),
              HasSubstr("nan.npy: sample 1 has a value that is not finite"));
}

TEST(DatasetTest, LevelsAboveTheDeclaredCountAreNamed) {
  const auto path = write_array("levels.npy", NpyDtype::kUint8, {3, 2}, {0, 16, 3, 17, 4, 5});
  const auto data = load_dataset(path);
  EXPECT_NO_THROW(check_levels(data, 18));
  EXPECT_THAT(data_error([&] { check_levels(data, 17); }),
              HasSubstr("levels.npy: sample 1 has level 17, not below --levels 17"));
}

}  // namespace
}  // namespace flowlik
