// u^T (dv/dx) by reverse-mode autograd, for the Jacobian products of a TorchScript network.
#pragma once

#include <torch/torch.h>

namespace flowlik {

// v: [R, D] computed from x: [R, D] (requires grad); u: [R, D]. Returns u^T dv/dx row by row, [R,
// D]. A velocity that does not depend on x (a constant translation flow, divergence 0) has a zero
// Jacobian: autograd refuses such an output, so it is answered here with zeros rather than as a
// failure.
inline torch::Tensor vector_jacobian_product(const torch::Tensor& v, const torch::Tensor& x,
                                             const torch::Tensor& u) {
  if (!v.requires_grad()) return torch::zeros_like(x);
  auto grads = torch::autograd::grad({v}, {x}, {u}, /*retain_graph=*/false, /*create_graph=*/false,
                                     /*allow_unused=*/true);
  return grads[0].defined() ? grads[0] : torch::zeros_like(x);
}

}  // namespace flowlik
