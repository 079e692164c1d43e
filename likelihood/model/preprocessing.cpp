#include "likelihood/model/preprocessing.h"

#include <fmt/format.h>

#include <algorithm>
#include <boost/math/special_functions/erf.hpp>
#include <cmath>
#include <numbers>
#include <vector>

#include "estimators/counter_rng.h"
#include "flowlik/error.h"

namespace flowlik {

DataMap data_map(const Preprocessing& pre) { return {pre.scale, pre.logit_lambda}; }

std::string describe_scale(const Preprocessing& pre) { return to_string(data_map(pre)); }

std::string describe_dequantization(const Preprocessing& pre) {
  if (pre.dequantization == DequantizationKind::kUniform) return "uniform";
  return fmt::format("truncated-normal:{}", pre.noise_sigma);
}

namespace {

// u = 0.5 + sigma e, e ~ N(0, 1) truncated to |e| <= tau = 0.5 / sigma, by inverting the truncated
// normal's distribution function at the uniform numbers in `noise` (in place): with Z = erf(tau /
// sqrt 2), e = sqrt 2 erfinv(Z (2 v - 1)). Returns each row's log q(u) = sum_i [-e_i^2 / 2 -
// log(sigma sqrt(2 pi)) - log Z], the density of u on [0, 1)^D.
torch::Tensor truncated_normal_in_place(torch::Tensor& noise, double sigma) {
  const int64_t batch = noise.size(0);
  const int64_t dim = noise.size(1);
  const double tau = 0.5 / sigma;
  const double z = std::erf(tau / std::numbers::sqrt2);
  const double log_norm = std::log(sigma * std::sqrt(2.0 * std::numbers::pi)) + std::log(z);
  auto log_q = torch::empty({batch}, torch::kFloat64);
  auto* u = noise.data_ptr<double>();
  auto* out = log_q.data_ptr<double>();
  for (int64_t b = 0; b < batch; ++b) {
    double sum = 0.0;
    for (int64_t i = 0; i < dim; ++i) {
      double& v = u[b * dim + i];
      // v in [0, 1): Z (2 v - 1) in [-Z, Z); erfinv(-1) is -inf, which the clamp takes to -tau.
      const double e =
          std::clamp(std::numbers::sqrt2 * boost::math::erf_inv(z * (2.0 * v - 1.0)), -tau, tau);
      v = 0.5 + sigma * e;
      sum += -0.5 * e * e - log_norm;
    }
    out[b] = sum;
  }
  return log_q;
}

}  // namespace

ModelInput to_model_space(const torch::Tensor& values, std::span<const int64_t> samples,
                          const Preprocessing& pre, std::span<const int64_t> draws) {
  const int64_t batch = values.size(0);
  const int64_t dim = values.size(1);
  if (!pre.discrete) {
    return {values, torch::zeros({batch}, values.options()),
            torch::zeros({batch}, torch::kFloat64)};
  }

  auto noise = torch::empty({batch, dim}, torch::kFloat64);
  auto* data = noise.data_ptr<double>();
  for (int64_t b = 0; b < batch; ++b) {
    const auto draw = draws.empty() ? 0 : static_cast<uint64_t>(draws[b]);
    const RandomKey key{pre.seed, RandomStream::kDequantization, static_cast<uint64_t>(samples[b]),
                        draw};
    fill_uniform(key, std::span<double>(data + b * dim, static_cast<size_t>(dim)));
  }
  const auto log_q = pre.dequantization == DequantizationKind::kTruncatedNormal
                         ? truncated_normal_in_place(noise, pre.noise_sigma)
                         : torch::zeros({batch}, torch::kFloat64);
  const auto x01 = (values + noise) / static_cast<double>(pre.levels);  // [B, D] in [0, 1)
  switch (pre.scale) {
    case ScaleMap::kUnit:
      return {x01, torch::zeros({batch}, values.options()), log_q};
    case ScaleMap::kCentered:
      return {2.0 * x01 - 1.0, torch::full({batch}, dim * std::log(2.0), values.options()), log_q};
    case ScaleMap::kLogit: {
      const double lambda = pre.logit_lambda;
      const auto s = lambda + (1.0 - 2.0 * lambda) * x01;
      const auto y = torch::log(s) - torch::log1p(-s);
      const auto log_det = (std::log1p(-2.0 * lambda) - torch::log(s) - torch::log1p(-s)).sum(1);
      return {y, log_det, log_q};
    }
  }
  return {};
}

torch::Tensor to_levels(const torch::Tensor& y, const Preprocessing& pre) {
  const auto y64 = y.to(torch::kCPU, torch::kFloat64);
  torch::Tensor x01;
  switch (pre.scale) {
    case ScaleMap::kUnit:
      x01 = y64;
      break;
    case ScaleMap::kCentered:
      x01 = (y64 + 1.0) / 2.0;
      break;
    case ScaleMap::kLogit:
      x01 = (torch::sigmoid(y64) - pre.logit_lambda) / (1.0 - 2.0 * pre.logit_lambda);
      break;
  }
  const auto levels = static_cast<double>(pre.levels);
  return torch::floor(x01 * levels).nan_to_num(0.0).clamp(0.0, levels - 1.0).to(torch::kUInt8);
}

double data_log_offset(const Preprocessing& pre, int64_t dim) {
  return pre.discrete ? dim * std::log(static_cast<double>(pre.levels)) : 0.0;
}

double bits_per_dim(double log_likelihood, int64_t dim) {
  return -log_likelihood / (static_cast<double>(dim) * std::log(2.0));
}

}  // namespace flowlik
