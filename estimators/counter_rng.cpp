#include "estimators/counter_rng.h"

#include <Random123/philox.h>

#include <Random123/boxmuller.hpp>
#include <Random123/uniform.hpp>

namespace flowlik {
namespace {

using Philox = r123::Philox4x64;

// One Philox block: 4 x 64 random bits for element block `block` of the key's stream.
Philox::ctr_type draw_block(const RandomKey& key, uint64_t block) {
  const Philox::key_type philox_key = {{key.seed, static_cast<uint64_t>(key.stream)}};
  const Philox::ctr_type counter = {{block, key.sub, key.sample, 0}};
  return Philox()(counter, philox_key);
}

template <typename Fill>
void fill_blocks(const RandomKey& key, std::span<double> out, Fill fill_from_block) {
  for (size_t start = 0; start < out.size(); start += 4) {
    const auto bits = draw_block(key, start / 4);
    fill_from_block(bits, out.subspan(start, std::min<size_t>(4, out.size() - start)));
  }
}

}  // namespace

void fill_uniform(const RandomKey& key, std::span<double> out) {
  fill_blocks(key, out, [](const Philox::ctr_type& bits, std::span<double> chunk) {
    // r123::u01 lies in (0, 1]; its complement lies in [0, 1) as dequantization needs.
    for (size_t i = 0; i < chunk.size(); ++i) chunk[i] = 1.0 - r123::u01<double>(bits[i]);
  });
}

void fill_rademacher(const RandomKey& key, std::span<double> out) {
  fill_blocks(key, out, [](const Philox::ctr_type& bits, std::span<double> chunk) {
    for (size_t i = 0; i < chunk.size(); ++i) chunk[i] = (bits[i] >> 63) ? 1.0 : -1.0;
  });
}

void fill_standard_normal(const RandomKey& key, std::span<double> out) {
  fill_blocks(key, out, [](const Philox::ctr_type& bits, std::span<double> chunk) {
    const auto first = r123::boxmuller(bits[0], bits[1]);
    const auto second = r123::boxmuller(bits[2], bits[3]);
    const double values[4] = {first.x, first.y, second.x, second.y};
    for (size_t i = 0; i < chunk.size(); ++i) chunk[i] = values[i];
  });
}

}  // namespace flowlik
