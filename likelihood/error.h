// The one error hierarchy of flowlik (shared/STYLE.md, code rule 5).
//
// Every error a user can cause is one of these; `main` catches flowlik::Error, prints its message on one
// line and returns its exit code. Messages are lowercase, name the file, field or option at fault, what was
// expected and what was found.
#pragma once

#include <stdexcept>
#include <string>

namespace flowlik {

// Exit codes, documented in README.md ("Exit codes"). Stable: scripts depend on them.
enum class ExitCode : int {
  kOk = 0,
  kInternal = 1,      // a bug in flowlik: please report it
  kUsage = 2,         // bad command line
  kData = 3,          // a data file could not be read or does not fit the model
  kModel = 4,         // a model file could not be loaded or breaks the model contract
  kOutput = 5,        // a result file could not be written
  kAllFailed = 6,     // every sample's integration failed; nothing to report
  kGateFailed = 7,    // a regression gate (--max-regression) failed; the results are all written
};

class Error : public std::runtime_error {
 public:
  Error(ExitCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ExitCode code() const { return code_; }

 private:
  ExitCode code_;
};

class UsageError : public Error {
 public:
  explicit UsageError(const std::string& message) : Error(ExitCode::kUsage, message) {}
};

class DataError : public Error {
 public:
  explicit DataError(const std::string& message) : Error(ExitCode::kData, message) {}
};

class ModelError : public Error {
 public:
  explicit ModelError(const std::string& message) : Error(ExitCode::kModel, message) {}
};

class OutputError : public Error {
 public:
  explicit OutputError(const std::string& message) : Error(ExitCode::kOutput, message) {}
};

}  // namespace flowlik
