// A velocity field v(t, x) loaded from a TorchScript file (issue 3's model contract, first version):
// `forward(x, t)` with x of shape [B, *shape] and t of shape [B], returning v of the shape of x.
// Time runs from the prior at t = 0 to the data at t = 1 (shared/MATH.md section 1).
#pragma once

#include <torch/script.h>

#include <cstdint>
#include <string>
#include <vector>

namespace flowlik {

class VelocityField {
 public:
  // Loads the module, puts it in eval mode in `dtype`, freezes its parameters (gradients are taken with
  // respect to x only) and checks that forward takes exactly (x, t). Throws ModelError naming the file.
  static VelocityField load(const std::string& path, torch::ScalarType dtype);

  // Runs one small batch of the given per-sample shape through forward and checks that it returns a
  // floating tensor of the same shape. Fixes the shape used by evaluate(). Throws DataError when forward
  // rejects the shape, ModelError when what comes back breaks the contract.
  void bind_shape(const std::vector<int64_t>& shape);

  // x: [B, D] flattened states, t: [B]. Returns v: [B, D]. Differentiable with respect to x.
  torch::Tensor evaluate(const torch::Tensor& x, const torch::Tensor& t) const;

  const std::string& path() const { return path_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  int64_t dim() const { return dim_; }
  torch::ScalarType dtype() const { return dtype_; }
  int64_t parameter_count() const { return parameter_count_; }

 private:
  VelocityField(std::string path, torch::jit::Module module, torch::ScalarType dtype);

  std::string path_;
  // forward() is not const in the TorchScript API although evaluating the model changes nothing.
  mutable torch::jit::Module module_;
  torch::ScalarType dtype_;
  std::vector<int64_t> shape_;
  int64_t dim_ = 0;
  int64_t parameter_count_ = 0;
};

}  // namespace flowlik
