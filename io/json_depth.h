// The nesting depth of a JSON text, checked before parsing files flowlik did not write itself:
// nlohmann's comparisons and conversions recurse, so a value nested a few hundred thousand levels
// deep would overflow the stack.
#pragma once

#include <algorithm>
#include <string_view>

namespace flowlik {

inline constexpr int kMaxJsonDepth = 64;

// The deepest nesting of arrays and objects in `text`, counted outside strings.
inline int json_nesting_depth(std::string_view text) {
  int depth = 0;
  int deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return deepest;
}

}  // namespace flowlik
