// One line from a LibTorch exception, for flowlik's one-line errors. Torch's messages run over many
// lines: C++ backtraces after the first line, and for a TorchScript `raise` or failed op a
// traceback whose last line holds the actual error ("RuntimeError: expected a scalar t").
#pragma once

#include <string>

namespace flowlik {

inline std::string summarize_torch_error(const std::string& what) {
  constexpr const char* kInterpreter =
      "The following operation failed in the TorchScript interpreter";
  if (what.find(kInterpreter) == std::string::npos) return what.substr(0, what.find('\n'));
  auto end = what.find_last_not_of(" \n\r\t");
  if (end == std::string::npos) return what;
  const auto start = what.rfind('\n', end);
  return what.substr(start == std::string::npos ? 0 : start + 1,
                     end - (start == std::string::npos ? 0 : start + 1) + 1);
}

}  // namespace flowlik
