// The program's side of the error hierarchy: kinds to exit codes; arguments named as options.
#include "cli/exit_codes.h"

#include <gtest/gtest.h>

#include "likelihood/ode/cnf_solver.h"

namespace flowlik::cli {
namespace {

TEST(ExitCodesTest, EachKindHasItsDocumentedCode) {
  EXPECT_EQ(exit_code(ErrorKind::kInvalidArgument), ExitCode::kUsage);
  EXPECT_EQ(exit_code(ErrorKind::kData), ExitCode::kData);
  EXPECT_EQ(exit_code(ErrorKind::kModel), ExitCode::kModel);
  EXPECT_EQ(exit_code(ErrorKind::kOutput), ExitCode::kOutput);
  EXPECT_EQ(exit_code(ErrorKind::kNoSampleScored), ExitCode::kAllFailed);
  EXPECT_EQ(static_cast<int>(ExitCode::kGateFailed), 7);
}

TEST(ExitCodesTest, AnInvalidArgumentIsNamedByItsOption) {
  EXPECT_EQ(option_name("max_nfe"), "--max-nfe");
  EXPECT_EQ(option_name("time_range"), "--time-range");
  try {
    parse_error_norm("l2");
    ADD_FAILURE() << "expected InvalidArgument";
  } catch (const InvalidArgument& e) {
    // The field in argument(), the option in the message: one naming for library and program.
    EXPECT_EQ(e.argument(), "error_norm");
    EXPECT_EQ(e.reason(), "unknown error norm 'l2' (valid: max, rms, mixed)");
    EXPECT_STREQ(e.what(), "--error-norm: unknown error norm 'l2' (valid: max, rms, mixed)");
  }
  // Errors that name no argument, and the program's own usage errors, read as they are.
  EXPECT_STREQ(DataError("d.npy: no samples").what(), "d.npy: no samples");
  EXPECT_STREQ(UsageError("--resume: needs --per-sample").what(), "--resume: needs --per-sample");
}

}  // namespace
}  // namespace flowlik::cli
