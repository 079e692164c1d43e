// The one error hierarchy of flowlik (shared/STYLE.md, code rule 5).
//
// Every error a caller can cause is one of these, by what went wrong, not by who reports it: the
// library knows no exit codes. An InvalidArgument holds the argument as the option structs of
// flowlik/options.h name it (`max_nfe`, `levels`); where a message or a report names an option in
// its text ("option --levels" as a value's source), it writes option_name(field), the one way an
// option is named, which is the flowlik program's option and the Python module's too. The program
// maps kinds to exit codes (cli/exit_codes.h). Messages are lowercase and name the file, field or
// argument at fault, what was expected and what was found.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace flowlik {

enum class ErrorKind {
  kInvalidArgument,  // an option value that cannot be used, named by argument()
  kData,             // a data file could not be read or does not fit the model
  kModel,            // a model file could not be loaded or breaks the model contract
  kOutput,           // a result file could not be written
  kNoSampleScored,   // every sample failed; there is no result to summarise
  kIntegration,      // one solve failed (too many steps, a non-finite derivative, the model threw)
};

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

// what() is "ARGUMENT: REASON"; argument() is the option's name in the library's option structs
// (snake_case), so that a program can name its own flag for it instead.
// An option by its field's name: "time_eps" -> "--time-eps".
inline std::string option_name(const std::string& field) {
  std::string name = "--" + field;
  for (auto& c : name) {
    if (c == '_') c = '-';
  }
  return name;
}

// The argument is the field's name; what() reads "option_name(argument): reason".
class InvalidArgument : public Error {
 public:
  InvalidArgument(const std::string& argument, const std::string& reason)
      : Error(ErrorKind::kInvalidArgument,
              argument.empty() ? reason : option_name(argument) + ": " + reason),
        argument_(argument),
        reason_(reason) {}
  const std::string& argument() const { return argument_; }
  const std::string& reason() const { return reason_; }

 private:
  std::string argument_;
  std::string reason_;
};

class DataError : public Error {
 public:
  explicit DataError(const std::string& message) : Error(ErrorKind::kData, message) {}
};

class ModelError : public Error {
 public:
  explicit ModelError(const std::string& message) : Error(ErrorKind::kModel, message) {}
};

class OutputError : public Error {
 public:
  explicit OutputError(const std::string& message) : Error(ErrorKind::kOutput, message) {}
};

class NoSampleScored : public Error {
 public:
  explicit NoSampleScored(const std::string& message)
      : Error(ErrorKind::kNoSampleScored, message) {}
};

// A solve that failed, with the function evaluations it had spent. Scoring records it as that
// sample's failure and goes on; other exceptions in a solve (programming errors) are not caught
// there.
class IntegrationError : public Error {
 public:
  explicit IntegrationError(const std::string& message, int64_t nfe = 0)
      : Error(ErrorKind::kIntegration, message), nfe_(nfe) {}
  int64_t nfe() const { return nfe_; }

 private:
  int64_t nfe_;
};

}  // namespace flowlik
