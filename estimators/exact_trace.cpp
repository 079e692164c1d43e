#include "estimators/exact_trace.h"

#include <algorithm>
#include <vector>

namespace flowlik {

VelocityAndTrace ExactTrace::evaluate(const JacobianProducts& field, const torch::Tensor& x,
                                      const torch::Tensor& t, const torch::Tensor&,
                                      const torch::Tensor& labels) const {
  const int64_t batch = x.size(0);
  const int64_t dim = x.size(1);
  // Dimensions per chunk: each chunk evaluates batch * chunk vector-Jacobian products (rows), which
  // bounds the memory of one call by --max-rows whatever the format computes them with.
  const int64_t chunk = std::clamp<int64_t>(max_rows_ / std::max<int64_t>(batch, 1), 1, dim);
  const auto index_options = torch::TensorOptions().dtype(torch::kInt64).device(x.device());

  torch::Tensor velocity;
  // The whole diagonal, then one sum: the chunk depends on the batch, and summing chunk by chunk
  // would make a sample's trace round differently in another batch. Summed, and returned, in
  // float64 so that the order of the reduction does not show in a float32 result either.
  std::vector<torch::Tensor> diagonals;
  for (int64_t first = 0; first < dim; first += chunk) {
    const int64_t count = std::min(chunk, dim - first);
    const auto idx = torch::arange(first, first + count, index_options);  // [C]
    auto [v, diagonal] = field.velocity_and_diagonal(x, t, idx, labels);  // [B, D], [B, C]
    diagonals.push_back(diagonal);
    if (!velocity.defined()) velocity = v;
  }
  const auto trace = torch::cat(diagonals, 1).to(torch::kFloat64).sum(1, true);  // [B, 1]
  return {velocity, trace};
}

}  // namespace flowlik
