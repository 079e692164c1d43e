// Validators for numeric options: the whole argument must be a number of the option's type, finite
// and in range; nothing is clamped or wrapped (`--seed -1` is an error, not 2^64 - 1; `--batch-size
// 1e20` and
// `--rtol nan` are errors). CLI11 runs them on the text before converting it, so a bad value fails
// at parse time with the option's name.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <limits>

namespace flowlik::cli {

// A decimal integer in [lo, hi].
CLI::Validator integer_in(int64_t lo, int64_t hi);
// A decimal integer in [0, 2^64 - 1], for seeds.
CLI::Validator unsigned_integer();
// A finite decimal number in (0, hi] (positive) or any finite one.
CLI::Validator positive_finite(double hi = std::numeric_limits<double>::max());
CLI::Validator finite_number();

}  // namespace flowlik::cli
