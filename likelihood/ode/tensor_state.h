// Boost.Odeint adapters for a torch::Tensor state (shared/STYLE.md: state types plug in through
// adapters kept apart from the algorithms, as odeint's own external/ folder does).
//
// With odeint's vector_space_algebra the steppers only use tensor-valued `a * x + b * y`
// expressions and rebind the result, so the algebra itself needs nothing more. Two things are not
// generic:
//  - the infinity norm the step-size controller applies to the scaled error, and
//  - copies: torch::Tensor's copy assignment aliases storage, so odeint's internal copies of a
//  state must
//    be deep or a stepper could see a state change underneath it.
#pragma once

#include <torch/torch.h>

#include <boost/numeric/odeint.hpp>
#include <cmath>
#include <limits>

namespace boost::numeric::odeint {

template <>
struct vector_space_norm_inf<torch::Tensor> {
  using result_type = double;
  // A NaN or Inf anywhere in the error makes the norm infinite, so the controller rejects the step
  // rather than accepting it (a NaN compares false with every threshold); the caller then sees the
  // solve fail and can isolate the sample at fault.
  double operator()(const torch::Tensor& x) const {
    const double norm = x.abs().max().item<double>();
    return std::isfinite(norm) ? norm : std::numeric_limits<double>::infinity();
  }
};

template <>
struct copy_impl<torch::Tensor, torch::Tensor> {
  static void copy(const torch::Tensor& from, torch::Tensor& to) { to = from.clone(); }
};

}  // namespace boost::numeric::odeint
