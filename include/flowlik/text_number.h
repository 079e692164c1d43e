// Whole-string number parsing for options and manifest fields: "1e-5" is a number, "1e-5x", "" and
// "nan" are not. One place, so every option reads numbers the same way.
#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace flowlik {

// "a,b,c" -> {"a", "b", "c"} (with separator ','); "" -> {""}: empty items stay, so the caller can
// name them as bad numbers.
inline std::vector<std::string> split_on(const std::string& text, char separator) {
  std::vector<std::string> items;
  size_t start = 0;
  while (true) {
    const auto at = text.find(separator, start);
    items.push_back(text.substr(start, at == std::string::npos ? std::string::npos : at - start));
    if (at == std::string::npos) return items;
    start = at + 1;
  }
}

inline std::vector<std::string> split_on_commas(const std::string& text) {
  return split_on(text, ',');
}

inline std::optional<double> parse_finite_double(const std::string& text) {
  double value = 0.0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() ||
      !std::isfinite(value)) {
    return std::nullopt;
  }
  return value;
}

inline std::optional<int64_t> parse_int64(const std::string& text) {
  int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

}  // namespace flowlik
