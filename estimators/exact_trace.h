// The exact trace: tr J = sum_i e_i^T J e_i, one vector-Jacobian product per dimension
// (shared/MATH.md section 3). The D products are done as one batched autograd call on D copies of each
// sample rather than D separate calls; when B * D rows would not fit in `max_rows`, the dimensions are
// taken in chunks.
#pragma once

#include "estimators/trace_estimator.h"

namespace flowlik {

class ExactTrace final : public TraceEstimator {
 public:
  explicit ExactTrace(int64_t max_rows) : max_rows_(max_rows) {}

  int64_t num_estimates() const override { return 1; }
  torch::Tensor draw_probes(std::span<const int64_t>, int64_t, torch::TensorOptions) const override {
    return {};
  }
  VelocityAndTrace evaluate(const VelocityField& field, const torch::Tensor& x, double t,
                            const torch::Tensor& probes, const torch::Tensor& labels) const override;
  std::string name() const override { return "exact"; }

 private:
  int64_t max_rows_;
};

}  // namespace flowlik
