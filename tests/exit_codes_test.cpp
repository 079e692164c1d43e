// The program's side of the error hierarchy: kinds to exit codes, arguments to options.
#include "cli/exit_codes.h"

#include <gtest/gtest.h>

#include "likelihood/ode/cnf_solver.h"
#include "tests/expect_error.h"

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
  EXPECT_EQ(option_for("max_nfe"), "--max-nfe");
  EXPECT_EQ(option_for("time_range"), "--time-range");
  const auto message = test::expect_error<InvalidArgument>([] { parse_error_norm("l2"); });
  EXPECT_EQ(message, "error_norm: unknown error norm 'l2' (valid: max, rms, mixed)");
  try {
    parse_error_norm("l2");
  } catch (const Error& e) {
    EXPECT_EQ(describe(e), "--error-norm: unknown error norm 'l2' (valid: max, rms, mixed)");
  }
  // Errors that name no argument, and the program's own usage errors, read as they are.
  EXPECT_EQ(describe(DataError("d.npy: no samples")), "d.npy: no samples");
  EXPECT_EQ(describe(UsageError("--resume: needs --per-sample")), "--resume: needs --per-sample");
}

}  // namespace
}  // namespace flowlik::cli
