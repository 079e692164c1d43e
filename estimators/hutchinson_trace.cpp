#include "estimators/hutchinson_trace.h"

#include <vector>

#include "estimators/counter_rng.h"

namespace flowlik {

torch::Tensor HutchinsonTrace::draw_probes(std::span<const int64_t> samples, int64_t dim,
                                           torch::TensorOptions options,
                                           std::span<const int64_t> draws) const {
  const auto batch = static_cast<int64_t>(samples.size());
  auto probes = torch::empty({probes_, batch, dim}, torch::kFloat64);
  auto* data = probes.data_ptr<double>();
  for (int64_t k = 0; k < probes_; ++k) {
    for (int64_t b = 0; b < batch; ++b) {
      // Draw 0 keeps the keys of a single-draw run: M = 1 gives the same numbers as before draws
      // existed.
      const auto draw = draws.empty() ? 0 : static_cast<uint64_t>(draws[b]);
      const RandomKey key{seed_, RandomStream::kProbe, static_cast<uint64_t>(samples[b]),
                          draw * static_cast<uint64_t>(probes_) + static_cast<uint64_t>(k)};
      std::span<double> out(data + (k * batch + b) * dim, static_cast<size_t>(dim));
      if (noise_ == ProbeNoise::kRademacher) {
        fill_rademacher(key, out);
      } else {
        fill_standard_normal(key, out);
      }
    }
  }
  return probes.to(options);
}

VelocityAndTrace HutchinsonTrace::evaluate(const JacobianProducts& field, const torch::Tensor& x,
                                           const torch::Tensor& t, const torch::Tensor& probes,
                                           const torch::Tensor& labels) const {
  auto [velocity, vjp] = field.velocity_and_vjp(x, t, probes, labels);  // [B, D], [K, B, D]
  // u^T J u: [B, K], summed (and returned) in float64 so that the reduction's order (which may
  // follow the batch's size) does not show in a float32 result.
  const auto estimates = (vjp * probes).to(torch::kFloat64).sum(2).t().contiguous();
  return {velocity, estimates};
}

}  // namespace flowlik
