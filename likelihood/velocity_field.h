// The flow velocity v(t, x) of an exported network, whatever it predicts (issue 3's model contract widened
// by issue 4): the network is called as its contract says (argument order, time convention, t as a vector
// or a scalar) and its output converted to the velocity of the probability-flow ODE in flow time
// (shared/MATH.md section 4). The conversion is done in tensor operations, so traces taken by autograd
// through evaluate() include it.
#pragma once

#include <torch/script.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "likelihood/contract.h"

namespace flowlik {

// A TorchScript file and the manifest found with it, before any contract is resolved.
struct ModelFile {
  std::string path;
  torch::jit::Module module;
  std::optional<nlohmann::json> manifest;
  std::string manifest_source;  // "manifest (embedded)" or "manifest (PATH.json)"; empty without one
};

// Loads the module and its manifest (the `flowlik.json` extra file, or PATH.json beside it; both present
// and different is an error). Throws ModelError naming the file at fault.
ModelFile load_model_file(const std::string& path);

// Loads the model file and resolves its contract from the manifest and the options.
std::pair<ModelFile, Contract> load_model_with_contract(const std::string& path,
                                                        const ContractOptions& options);

class VelocityField {
 public:
  // Puts the module in eval mode on the device and in the dtype of `options`, freezes its parameters
  // (gradients are taken with respect to x only) and checks that forward takes two tensors. Throws
  // ModelError naming the file.
  VelocityField(ModelFile file, Contract contract, torch::TensorOptions options);
  // The first contract: forward(x, t), velocity in flow time, N(0, I) prior, on the CPU. For tests and tools.
  static VelocityField load(const std::string& path, torch::ScalarType dtype);

  // Runs one small batch of the given per-sample shape through forward and checks that it returns a
  // floating tensor of the same shape. Fixes the shape used by evaluate(). Throws DataError when forward
  // rejects the shape or the contract declares another, ModelError when the output breaks the contract.
  void bind_shape(const std::vector<int64_t>& shape);

  // x: [B, D] flattened states at flow time t; labels: [B] int64 for a conditional model, else undefined.
  // Returns v: [B, D]. Differentiable with respect to x.
  torch::Tensor evaluate(const torch::Tensor& x, double t, const torch::Tensor& labels = {}) const;
  // The network's raw output for x: [B, D] at flow time t, reshaped to [B, D].
  torch::Tensor network_output(const torch::Tensor& x, double t, const torch::Tensor& labels = {}) const;

  const std::string& path() const { return path_; }
  const Contract& contract() const { return contract_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  int64_t dim() const { return dim_; }
  torch::ScalarType dtype() const { return options_.dtype().toScalarType(); }
  // dtype and device of the states this field takes.
  torch::TensorOptions options() const { return options_; }
  int64_t parameter_count() const { return parameter_count_; }
  std::string parameter_dtype() const { return parameter_dtype_; }

 private:
  // Calls forward as the contract says: argument order, model time, t as [B] or 0-d. x: [B, *shape].
  c10::IValue call_forward(const torch::Tensor& x, double t, const torch::Tensor& labels) const;

  std::string path_;
  // forward() is not const in the TorchScript API although evaluating the model changes nothing.
  mutable torch::jit::Module module_;
  Contract contract_;
  torch::TensorOptions options_;
  std::vector<int64_t> shape_;
  int64_t dim_ = 0;
  int64_t parameter_count_ = 0;
  std::string parameter_dtype_ = "none";
};

}  // namespace flowlik
