#include "cli/exit_codes.h"

#include <algorithm>

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

std::string option_for(const std::string& argument) {
  std::string option = "--" + argument;
  std::replace(option.begin(), option.end(), '_', '-');
  return option;
}

std::string describe(const Error& error) {
  const auto* invalid = dynamic_cast<const InvalidArgument*>(&error);
  if (!invalid || invalid->argument().empty()) return error.what();
  return option_for(invalid->argument()) + ": " + invalid->reason();
}

}  // namespace flowlik::cli
