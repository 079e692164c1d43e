// What the program makes of the library's errors: a documented exit code per kind
// (docs/reference.md, "Exit codes"; stable, scripts depend on them). Messages are the errors' own
// (an InvalidArgument names the option, flowlik/error.h).
#pragma once

#include "flowlik/error.h"

namespace flowlik::cli {

enum class ExitCode : int {
  kOk = 0,
  kInternal = 1,    // a bug in flowlik: please report it
  kUsage = 2,       // bad command line
  kData = 3,        // a data file could not be read or does not fit the model
  kModel = 4,       // a model file could not be loaded or breaks the model contract
  kOutput = 5,      // a result file could not be written
  kAllFailed = 6,   // every sample's integration failed; nothing to report
  kGateFailed = 7,  // a regression gate (--max-regression) failed; the results are all written
};

// A usage error the program itself finds (an option combination, a file the command line names):
// the message names the option already.
class UsageError : public InvalidArgument {
 public:
  explicit UsageError(const std::string& message) : InvalidArgument("", message) {}
};

ExitCode exit_code(ErrorKind kind);

}  // namespace flowlik::cli
