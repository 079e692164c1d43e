#include "cli/exit_codes.h"

namespace flowlik::cli {

ExitCode exit_code(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kInvalidArgument:
      return ExitCode::kUsage;
    case ErrorKind::kData:
      return ExitCode::kData;
    case ErrorKind::kModel:
      return ExitCode::kModel;
    case ErrorKind::kOutput:
      return ExitCode::kOutput;
    case ErrorKind::kNoSampleScored:
      return ExitCode::kAllFailed;
    case ErrorKind::kIntegration:
      return ExitCode::kInternal;  // scoring records these per sample
  }
  return ExitCode::kInternal;
}

}  // namespace flowlik::cli
