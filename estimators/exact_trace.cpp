#include "estimators/exact_trace.h"

#include <algorithm>

namespace flowlik {

VelocityAndTrace ExactTrace::evaluate(const VelocityField& field, const torch::Tensor& x,
                                      double t, const torch::Tensor&,
                                      const torch::Tensor& labels) const {
  const int64_t batch = x.size(0);
  const int64_t dim = x.size(1);
  // Dimensions per chunk: each chunk evaluates batch * chunk rows.
  const int64_t chunk = std::clamp<int64_t>(max_rows_ / std::max<int64_t>(batch, 1), 1, dim);
  const auto identity = torch::eye(dim, x.options());  // [D, D]

  torch::Tensor velocity;
  auto trace = torch::zeros({batch, 1}, x.options());
  torch::AutoGradMode enable_grad(true);
  for (int64_t first = 0; first < dim; first += chunk) {
    const int64_t count = std::min(chunk, dim - first);
    // Row b * count + j is sample b, probing dimension first + j.
    auto rows = x.detach().repeat_interleave(count, 0).requires_grad_(true);  // [B * count, D]
    const auto row_labels = labels.defined() ? labels.repeat_interleave(count, 0) : labels;
    const auto v = field.evaluate(rows, t, row_labels);                       // [B * count, D]
    const auto directions = identity.narrow(0, first, count).repeat({batch, 1});  // [B * count, D]
    const auto vjp = torch::autograd::grad({v}, {rows}, {directions})[0];         // e_i^T J
    // Diagonal entries J_ii for i in [first, first + count).
    trace += vjp.view({batch, count, dim}).narrow(2, first, count).diagonal(0, 1, 2).sum(1, true);
    if (!velocity.defined()) velocity = v.detach().view({batch, count, dim}).select(1, 0);
  }
  return {velocity, trace};
}

}  // namespace flowlik
