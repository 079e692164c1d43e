// `--max-rows auto` (likelihood/memory.h): the rows that fit a memory budget, worked out by hand.
#include "likelihood/memory.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

namespace flowlik {
namespace {

TEST(RowsForMemoryTest, HalfOfTheAvailableMemoryByDefault) {
  // 10 GB available: a budget of 5 GB at 1 MB a row is 5000 rows.
  const auto fit = rows_for_memory(1e6, 0, 10'000'000'000);
  EXPECT_EQ(fit.budget_bytes, 5'000'000'000);
  EXPECT_EQ(fit.max_rows, 5000);
  EXPECT_THAT(fit.how, ::testing::HasSubstr("half of the memory available"));
}

TEST(RowsForMemoryTest, AGivenBudgetIsTakenAsIs) {
  const auto fit = rows_for_memory(2.5e6, 100'000'000, 10'000'000'000);
  EXPECT_EQ(fit.max_rows, 40);  // 100 MB / 2.5 MB
  EXPECT_THAT(fit.how, ::testing::HasSubstr("--memory"));
}

TEST(RowsForMemoryTest, StaysWithinOneAndTheLibraryDefault) {
  EXPECT_EQ(rows_for_memory(1e9, 1000, -1).max_rows, 1);                  // less than a row fits
  EXPECT_EQ(rows_for_memory(10.0, 0, int64_t{1} << 40).max_rows, 16384);  // plenty
}

TEST(RowsForMemoryTest, WithoutAMeasurementTheLibraryDefaultIsSaidToBeUsed) {
  for (const auto& fit : {rows_for_memory(NAN, 0, 1'000'000'000), rows_for_memory(1e6, 0, -1)}) {
    EXPECT_EQ(fit.max_rows, 16384);
    EXPECT_THAT(fit.how, ::testing::HasSubstr("could not be measured"));
  }
}

TEST(AvailableMemoryTest, IsPositiveOnLinux) { EXPECT_GT(available_memory_bytes(), 0); }

}  // namespace
}  // namespace flowlik
