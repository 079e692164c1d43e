// Log-density of the prior p0 = N(0, scale^2 I) (shared/MATH.md section 5).
#pragma once

#include <torch/torch.h>

#include <cmath>
#include <numbers>

namespace flowlik {

// x: [B, D]. Returns [B] in float64: -D/2 log(2 pi scale^2) - |x|^2 / (2 scale^2).
inline torch::Tensor normal_log_density(const torch::Tensor& x, double scale = 1.0) {
  const auto x64 = x.to(torch::kFloat64);
  const double dim = static_cast<double>(x.size(1));
  return -0.5 * dim * std::log(2.0 * std::numbers::pi * scale * scale) -
         0.5 * x64.square().sum(1) / (scale * scale);
}

}  // namespace flowlik
