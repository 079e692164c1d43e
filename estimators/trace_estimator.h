// The trace of the velocity's Jacobian, tr(dv/dx), that drives the log-density along the flow
// (shared/MATH.md sections 2 and 3). An open set chosen at run time (--trace), hence the one
// virtual interface; trace_factory.h builds one by name.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <span>
#include <string>

#include "estimators/jacobian_products.h"

namespace flowlik {

struct VelocityAndTrace {
  torch::Tensor velocity;  // [B, D] in x's dtype, detached
  // [B, K] float64: K estimates of tr(dv/dx) per sample (K = 1 for the exact trace), reduced in
  // float64 whatever x's dtype, so that the solver's float64 log-density keeps every digit.
  torch::Tensor trace;
};

class TraceEstimator {
 public:
  virtual ~TraceEstimator() = default;

  // K, the number of trace columns evaluate() returns (and so the number of log-density estimates).
  virtual int64_t num_estimates() const = 0;

  // The inputs held fixed for a whole solve (Hutchinson's probes), drawn for these dataset indices
  // so that a sample's probes do not depend on the batch it is in; drawn on the CPU, returned with
  // `options`. May be an undefined tensor. `draws`: the dequantization draw of each row (empty:
  // draw 0 for all); each draw has its own probes.
  virtual torch::Tensor draw_probes(std::span<const int64_t> samples, int64_t dim,
                                    torch::TensorOptions options,
                                    std::span<const int64_t> draws = {}) const = 0;

  // x: [B, D], row b at flow time t[b] (t: [B] float64 on the CPU); probes: as from draw_probes for
  // the same B samples; labels: [B] int64 for a conditional model, else undefined.
  virtual VelocityAndTrace evaluate(const JacobianProducts& field, const torch::Tensor& x,
                                    const torch::Tensor& t, const torch::Tensor& probes,
                                    const torch::Tensor& labels) const = 0;
  // The same with every row at flow time t.
  VelocityAndTrace evaluate(const JacobianProducts& field, const torch::Tensor& x, double t,
                            const torch::Tensor& probes, const torch::Tensor& labels) const {
    return evaluate(field, x, torch::full({x.size(0)}, t, torch::kFloat64), probes, labels);
  }

  // For reports: "exact", "hutchinson".
  virtual std::string name() const = 0;
};

}  // namespace flowlik
