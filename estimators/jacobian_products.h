// What a trace estimator differentiates: a function v(t, x) of a batch of states that answers the
// Jacobian products the estimators need. The estimators depend on this and nothing else of the
// model; the model's VelocityField (likelihood/model/velocity_field.h) is one, a closed-form field
// in a test can be another.
#pragma once

#include <torch/torch.h>

#include <utility>

namespace flowlik {

class JacobianProducts {
 public:
  virtual ~JacobianProducts() = default;

  // x: [B, D], row b at flow time t[b] (t: [B] float64 on the CPU); labels: [B] int64 or undefined.
  // v: [B, D] and u_k^T dv/dx for probes u: [K, B, D], as [K, B, D]; all detached.
  virtual std::pair<torch::Tensor, torch::Tensor> velocity_and_vjp(
      const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& probes,
      const torch::Tensor& labels) const = 0;
  // v: [B, D] and the diagonal entries dv_i/dx_i of the Jacobian for i in idx: [C] int64, as [B,
  // C].
  virtual std::pair<torch::Tensor, torch::Tensor> velocity_and_diagonal(
      const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& idx,
      const torch::Tensor& labels) const = 0;
};

}  // namespace flowlik
