// From the integers of a discrete dataset to the model's input space, and the bookkeeping that
// makes the density of the raw data come out right (shared/MATH.md section 6):
//   x01 = (k + u) / K with u ~ U[0, 1)^D,  y = f(x01),  L = log |det df/dx01|,
//   log P(k) >= log p_model(y) + L - D log K,   bpd = -(that) / (D ln 2).
// Continuous data go to the model as they are (L = 0, no offset).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>

namespace flowlik {

enum class ScaleMap { kUnit, kCentered, kLogit };

struct Preprocessing {
  bool discrete = false;
  int64_t levels = 0;                // K, discrete only
  ScaleMap scale = ScaleMap::kUnit;  // discrete only
  double logit_lambda = 0.0;         // kLogit only
  uint64_t seed = 0;                 // dequantization noise
  int64_t draws = 1;                 // M dequantization draws per sample (shared/MATH.md section 6)
  std::string levels_source;         // for reports: "option --levels", "manifest (...)", "default"
  std::string scale_source;
};

// Parses --scale: "unit", "centered", "logit" (lambda 1e-6, as FFJORD) or "logit:LAMBDA" with
// 0 <= LAMBDA < 0.5. Throws InvalidArgument naming `scale`.
void parse_scale(const std::string& text, Preprocessing& out);
std::string describe_scale(const Preprocessing& pre);  // "unit", "centered", "logit:1e-06"

struct ModelInput {
  torch::Tensor y;        // [B, D]: what the model sees
  torch::Tensor log_det;  // [B]: L, log |det df/dx01| (0 for continuous data)
};

// values: [B, D] float64 holding the raw data (integer levels for discrete data); samples: their
// dataset indices and draws: which dequantization draw each row is (empty: draw 0 for all), which
// together key the dequantization noise, so that draw m of sample i is the same in every batch,
// shard and model.
ModelInput to_model_space(const torch::Tensor& values, std::span<const int64_t> samples,
                          const Preprocessing& pre, std::span<const int64_t> draws = {});

// The offset between the model's log-density of y and the log-likelihood of the raw data:
// log_likelihood = model_log_likelihood + log_det - data_log_offset(pre, D).
double data_log_offset(const Preprocessing& pre, int64_t dim);

double bits_per_dim(double log_likelihood, int64_t dim);

}  // namespace flowlik
