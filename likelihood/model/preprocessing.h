// From the integers of a discrete dataset to the model's input space, and the bookkeeping that
// makes the density of the raw data come out right (shared/MATH.md section 6):
//   x01 = (k + u) / K with u ~ q on [0, 1)^D,  y = f(x01),  L = log |det df/dx01|,
//   log P(k) >= log p_model(y) + L - log q(u) - D log K,   bpd = -(that) / (D ln 2),
// q uniform (log q = 0) or a normal truncated to the bin.
// Continuous data go to the model as they are (L = 0, no offset).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "flowlik/conventions.h"  // ScaleMap, DequantizationKind
#include "flowlik/options.h"      // DrawBound

namespace flowlik {

// The map and the noise in effect, in their text forms: "unit", "centered", "logit:1e-06";
// "uniform", "truncated-normal:0.1" (flowlik/conventions.h).
DataMap data_map(const Preprocessing& pre);
std::string describe_scale(const Preprocessing& pre);
std::string describe_dequantization(const Preprocessing& pre);

struct ModelInput {
  torch::Tensor y;        // [B, D]: what the model sees
  torch::Tensor log_det;  // [B]: L, log |det df/dx01| (0 for continuous data)
  torch::Tensor
      log_q;  // [B]: log q(u), the noise's log-density on [0, 1)^D (0 but truncated-normal)
};

// values: [B, D] float64 holding the raw data (integer levels for discrete data); samples: their
// dataset indices and draws: which dequantization draw each row is (empty: draw 0 for all), which
// together key the dequantization noise, so that draw m of sample i is the same in every batch,
// shard and model.
ModelInput to_model_space(const torch::Tensor& values, std::span<const int64_t> samples,
                          const Preprocessing& pre, std::span<const int64_t> draws = {});

// The way back for points of the model's space y: [B, D]: the map inverted to x01 and the bin it
// falls in, k = floor(K x01) clamped to [0, K - 1], as uint8 levels [B, D]. Discrete `pre` only.
torch::Tensor to_levels(const torch::Tensor& y, const Preprocessing& pre);

// The offset between the model's log-density of y and the log-likelihood of the raw data:
// log_likelihood = model_log_likelihood + log_det - data_log_offset(pre, D).
double data_log_offset(const Preprocessing& pre, int64_t dim);

double bits_per_dim(double log_likelihood, int64_t dim);

}  // namespace flowlik
