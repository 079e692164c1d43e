#include "estimators/hutchinson_trace.h"

#include <vector>

#include "likelihood/counter_rng.h"

namespace flowlik {

torch::Tensor HutchinsonTrace::draw_probes(std::span<const int64_t> samples, int64_t dim,
                                           torch::TensorOptions options) const {
  const auto batch = static_cast<int64_t>(samples.size());
  auto probes = torch::empty({probes_, batch, dim}, torch::kFloat64);
  auto* data = probes.data_ptr<double>();
  for (int64_t k = 0; k < probes_; ++k) {
    for (int64_t b = 0; b < batch; ++b) {
      const RandomKey key{seed_, RandomStream::kProbe, static_cast<uint64_t>(samples[b]),
                          static_cast<uint64_t>(k)};
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

VelocityAndTrace HutchinsonTrace::evaluate(const VelocityField& field, const torch::Tensor& x,
                                           double t, const torch::Tensor& probes,
                                           const torch::Tensor& labels) const {
  const int64_t batch = x.size(0);
  const int64_t dim = x.size(1);
  torch::AutoGradMode enable_grad(true);
  // Row k * B + b is sample b under probe k: one forward and one backward for all K probes.
  auto rows = x.detach().repeat({probes_, 1}).requires_grad_(true);  // [K * B, D]
  const auto row_labels = labels.defined() ? labels.repeat({probes_}) : labels;
  const auto v = field.evaluate(rows, t, row_labels);                 // [K * B, D]
  const auto flat_probes = probes.reshape({probes_ * batch, dim});    // [K * B, D]
  const auto vjp = torch::autograd::grad({v}, {rows}, {flat_probes})[0];  // e^T J
  const auto estimates = (vjp * flat_probes).sum(1).view({probes_, batch}).t().contiguous();  // [B, K]
  return {v.detach().narrow(0, 0, batch), estimates};
}

}  // namespace flowlik
