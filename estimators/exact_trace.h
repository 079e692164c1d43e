// The exact trace: tr J = sum_i e_i^T J e_i, one vector-Jacobian product per dimension
// (shared/MATH.md section 3). The field computes the diagonal entries for a chunk of dimensions at
// once (a TorchScript model by one batched autograd call on copies of each sample, an AOTInductor
// package by its compiled function that runs the forward once and batches the products); the chunk
// is chosen so that B * C rows fit in `max_rows`.
#pragma once

#include "estimators/trace_estimator.h"

namespace flowlik {

class ExactTrace final : public TraceEstimator {
 public:
  explicit ExactTrace(int64_t max_rows) : max_rows_(max_rows) {}

  int64_t num_estimates() const override { return 1; }
  torch::Tensor draw_probes(std::span<const int64_t>, int64_t, torch::TensorOptions,
                            std::span<const int64_t> = {}) const override {
    return {};
  }
  using TraceEstimator::evaluate;
  VelocityAndTrace evaluate(const JacobianProducts& field, const torch::Tensor& x,
                            const torch::Tensor& t, const torch::Tensor& probes,
                            const torch::Tensor& labels) const override;
  std::string name() const override { return "exact"; }

 private:
  int64_t max_rows_;
};

}  // namespace flowlik
