// A TorchScript module as a Network: called as its contract says, Jacobian products by autograd.
#pragma once

#include <torch/script.h>

#include <string>

#include "likelihood/model/network.h"

namespace flowlik {

class TorchScriptNetwork final : public Network {
 public:
  TorchScriptNetwork(std::string path, torch::jit::Module module);

  std::string format() const override { return "torchscript"; }
  void prepare(const CallSpec& call, torch::TensorOptions options) override;
  // Any number of rows in one call: `block` is not used.
  torch::Tensor output(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& labels,
                       c10::IntArrayRef shape, int64_t block) const override;
  std::pair<torch::Tensor, torch::Tensor> output_and_vjp(
      const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& probes,
      const torch::Tensor& labels, c10::IntArrayRef shape, int64_t block) const override;
  std::pair<torch::Tensor, torch::Tensor> output_and_diagonal(
      const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& idx,
      const torch::Tensor& labels, c10::IntArrayRef shape, int64_t block) const override;
  int64_t parameter_count() const override { return parameter_count_; }
  std::string parameter_dtype() const override { return parameter_dtype_; }

 private:
  // forward on x: [B, D] as the contract says; returns [B, D], attached to x's graph when x
  // requires grad. Throws ModelError when the output breaks the contract.
  torch::Tensor call(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& labels,
                     c10::IntArrayRef shape) const;

  std::string path_;
  // forward() is not const in the TorchScript API although evaluating the model changes nothing.
  mutable torch::jit::Module module_;
  CallSpec call_;
  int64_t parameter_count_ = 0;
  std::string parameter_dtype_ = "none";
};

}  // namespace flowlik
