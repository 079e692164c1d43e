#include "cli/number_options.h"

#include <fmt/format.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <string>

#include "flowlik/text_number.h"

namespace flowlik::cli {

CLI::Validator integer_in(int64_t lo, int64_t hi) {
  return CLI::Validator(
      [lo, hi](std::string& text) -> std::string {
        const auto value = parse_int64(text);
        if (!value) return fmt::format("expected an integer, got '{}'", text);
        if (*value < lo || *value > hi) {
          return fmt::format("{} is out of range [{}, {}]", text, lo, hi);
        }
        return {};
      },
      fmt::format("INT in [{}, {}]", lo, hi));
}

CLI::Validator unsigned_integer() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        uint64_t value = 0;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
        if (text.empty() || ec != std::errc() || end != text.data() + text.size()) {
          return fmt::format("expected an integer in [0, 2^64 - 1], got '{}'", text);
        }
        return {};
      },
      "UINT");
}

CLI::Validator positive_finite(double hi) {
  return CLI::Validator(
      [hi](std::string& text) -> std::string {
        const auto value = parse_finite_double(text);
        if (!value) {
          // A number too small for a double (1e-400) is a number out of range, not a non-number.
          errno = 0;
          char* end = nullptr;
          const double tiny = std::strtod(text.c_str(), &end);
          if (!text.empty() && end == text.c_str() + text.size() && errno == ERANGE && tiny == 0.0)
            return fmt::format("{} is out of range (0, {}]: it rounds to 0 in double precision",
                               text, hi);
          return fmt::format("expected a finite number, got '{}'", text);
        }
        if (!(*value > 0.0 && *value <= hi))
          return fmt::format("{} is out of range (0, {}]", text, hi);
        return {};
      },
      "POSITIVE");
}

CLI::Validator finite_number() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        if (!parse_finite_double(text))
          return fmt::format("expected a finite number, got '{}'", text);
        return {};
      },
      "NUMBER");
}

}  // namespace flowlik::cli
