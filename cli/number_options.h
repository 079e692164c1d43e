// Validators for numeric options: the whole argument must be a number of the option's type, finite
// and in range; nothing is clamped or wrapped (`--seed -1` is an error, not 2^64 - 1; `--batch-size
// 1e20` and
// `--rtol nan` are errors). CLI11 runs them on the text before converting it, so a bad value fails
// at parse time with the option's name.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <limits>
#include <string>

#include "flowlik/error.h"
#include "flowlik/options.h"

namespace flowlik::cli {

// A decimal integer in [lo, hi].
CLI::Validator integer_in(int64_t lo, int64_t hi);
// A decimal integer in [0, 2^64 - 1], for seeds.
CLI::Validator unsigned_integer();
// A finite decimal number in (0, hi] (positive) or any finite one.
CLI::Validator positive_finite(double hi = std::numeric_limits<double>::max());
CLI::Validator finite_number();

// An option naming one of a closed set (flowlik/options.h), parsed by `parse` (a flowlik::parse_*)
// into `target` as the command line is read: a bad name fails at parse time, named by the option,
// with parse's message ("--solver: unknown solver 'adams' (valid: dopri5, ...)").
// Also for the small value types of flowlik/conventions.h ("--schedule vp:0.1,20"); an optional
// target stays unset unless the option is given.
template <class Choice, class Target>
CLI::Option* add_parsed(CLI::App& cmd, const std::string& name, Target& target,
                        Choice (*parse)(const std::string&), const std::string& help) {
  return cmd.add_option_function<std::string>(
      name,
      [&target, parse, name](const std::string& text) {
        try {
          target = parse(text);
        } catch (const InvalidArgument& e) {
          throw CLI::ValidationError(name, e.reason());
        }
      },
      help);
}

template <class Choice>
CLI::Option* add_choice(CLI::App& cmd, const std::string& name, Choice& target,
                        Choice (*parse)(const std::string&), const std::string& help) {
  auto* option = add_parsed(cmd, name, target, parse, help);
  option->default_str(to_string(target));
  return option;
}

}  // namespace flowlik::cli
