// Counter-based random numbers keyed by what a number is for, not by when it was drawn.
//
// Every random draw in flowlik (dequantization noise, Hutchinson probes) is a pure function of
// (seed, stream, sample index, sub-index, element index), computed with Random123's Philox-4x64. A
// sample's noise therefore does not depend on batch size, sample order, or which process or shard
// scores it, and two models scored with the same seed see the same noise (common random numbers,
// shared/MATH.md section 7).
#pragma once

#include <cstdint>
#include <span>

namespace flowlik {

enum class RandomStream : uint64_t { kDequantization = 1, kProbe = 2, kPrior = 3 };

struct RandomKey {
  uint64_t seed = 0;
  RandomStream stream = RandomStream::kDequantization;
  uint64_t sample = 0;  // the sample's index in the dataset
  uint64_t sub = 0;     // e.g. the probe index
};

// Uniform on [0, 1).
void fill_uniform(const RandomKey& key, std::span<double> out);
// +1 or -1 with probability 1/2 each.
void fill_rademacher(const RandomKey& key, std::span<double> out);
// Standard normal (Box-Muller on Philox output).
void fill_standard_normal(const RandomKey& key, std::span<double> out);

}  // namespace flowlik
