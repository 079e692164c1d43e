// Log-density of the prior p0 (shared/MATH.md section 5).
#pragma once

#include <torch/torch.h>

#include <cmath>
#include <numbers>

namespace flowlik {

// x: [B, D]. Returns [B] in float64: -D/2 log(2 pi) - |x|^2 / 2.
inline torch::Tensor standard_normal_log_density(const torch::Tensor& x) {
  const auto x64 = x.to(torch::kFloat64);
  const double dim = static_cast<double>(x.size(1));
  return -0.5 * dim * std::log(2.0 * std::numbers::pi) - 0.5 * x64.square().sum(1);
}

}  // namespace flowlik
