#include "likelihood/preprocessing.h"

#include <fmt/format.h>

#include <cmath>
#include <vector>

#include "flowlik/error.h"
#include "likelihood/counter_rng.h"
#include "likelihood/text_number.h"

namespace flowlik {

void parse_scale(const std::string& text, Preprocessing& out) {
  constexpr double kFfjordLambda = 1e-6;
  if (text == "unit") {
    out.scale = ScaleMap::kUnit;
  } else if (text == "centered") {
    out.scale = ScaleMap::kCentered;
  } else if (text == "logit" || text.starts_with("logit:")) {
    out.scale = ScaleMap::kLogit;
    out.logit_lambda = kFfjordLambda;
    if (text.size() > 6) {
      const std::string number = text.substr(6);
      const auto lambda = parse_finite_double(number);
      if (!lambda || !(*lambda >= 0.0 && *lambda < 0.5)) {
        throw InvalidArgument(
            "scale", fmt::format("logit lambda must be a number in [0, 0.5), got '{}'", number));
      }
      out.logit_lambda = *lambda;
    }
  } else {
    throw InvalidArgument(
        "scale",
        fmt::format("unknown map '{}' (valid: unit, centered, logit, logit:LAMBDA)", text));
  }
}

std::string describe_scale(const Preprocessing& pre) {
  switch (pre.scale) {
    case ScaleMap::kUnit:
      return "unit";
    case ScaleMap::kCentered:
      return "centered";
    case ScaleMap::kLogit:
      return fmt::format("logit:{}", pre.logit_lambda);
  }
  return "unknown";
}

ModelInput to_model_space(const torch::Tensor& values, std::span<const int64_t> samples,
                          const Preprocessing& pre, std::span<const int64_t> draws) {
  const int64_t batch = values.size(0);
  const int64_t dim = values.size(1);
  if (!pre.discrete) return {values, torch::zeros({batch}, values.options())};

  auto noise = torch::empty({batch, dim}, torch::kFloat64);
  auto* data = noise.data_ptr<double>();
  for (int64_t b = 0; b < batch; ++b) {
    const auto draw = draws.empty() ? 0 : static_cast<uint64_t>(draws[b]);
    const RandomKey key{pre.seed, RandomStream::kDequantization, static_cast<uint64_t>(samples[b]),
                        draw};
    fill_uniform(key, std::span<double>(data + b * dim, static_cast<size_t>(dim)));
  }
  const auto x01 = (values + noise) / static_cast<double>(pre.levels);  // [B, D] in [0, 1)
  switch (pre.scale) {
    case ScaleMap::kUnit:
      return {x01, torch::zeros({batch}, values.options())};
    case ScaleMap::kCentered:
      return {2.0 * x01 - 1.0, torch::full({batch}, dim * std::log(2.0), values.options())};
    case ScaleMap::kLogit: {
      const double lambda = pre.logit_lambda;
      const auto s = lambda + (1.0 - 2.0 * lambda) * x01;
      const auto y = torch::log(s) - torch::log1p(-s);
      const auto log_det = (std::log1p(-2.0 * lambda) - torch::log(s) - torch::log1p(-s)).sum(1);
      return {y, log_det};
    }
  }
  return {};
}

double data_log_offset(const Preprocessing& pre, int64_t dim) {
  return pre.discrete ? dim * std::log(static_cast<double>(pre.levels)) : 0.0;
}

double bits_per_dim(double log_likelihood, int64_t dim) {
  return -log_likelihood / (static_cast<double>(dim) * std::log(2.0));
}

}  // namespace flowlik
