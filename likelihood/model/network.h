// A network as flowlik calls it, whatever format it was exported in: its raw output and the
// Jacobian products the trace estimators need. A TorchScript module answers the products by
// autograd; an AOTInductor package (.pt2) has no autograd at run time and carries them compiled
// (python/flowlik_export). The conversion of the output into a flow velocity is not here: it is
// affine in x and the output (shared/MATH.md section 4), so VelocityField applies it, and converts
// the products, in closed form for every format alike.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "likelihood/model/contract.h"

namespace flowlik {

// How the network is called, from the contract and the data.
struct CallSpec {
  Signature signature = Signature::kXT;
  TimeInput time_input = TimeInput::kVector;
  bool conditional = false;
  std::string conditioning_source;  // where `conditional` came from, for messages
};

class Network {
 public:
  virtual ~Network() = default;

  // "torchscript" or "aoti-package", for reports.
  virtual std::string format() const = 0;
  // Puts the network on the device and in the dtype of `options` and checks that it can be called
  // as `call` says. Throws ModelError naming the file. Called once, at load: a prepared network is
  // not changed by any call below, which may come from several threads at once, each with the
  // per-sample shape of its own data.
  virtual void prepare(const CallSpec& call, torch::TensorOptions options) = 0;

  // x: [B, D] flattened samples of per-sample `shape` (x is reshaped to [B, *shape] for the call);
  // t: [B] model time (all equal for a scalar-time model); labels: [B] int64 for a conditional
  // model, else undefined; block: the rows of each call the network makes, one of blocks() (B rows
  // are computed in calls of `block` rows, the last padded), ignored by a network that takes any
  // number. All return tensors are detached. out: [B, D].
  virtual torch::Tensor output(const torch::Tensor& x, const torch::Tensor& t,
                               const torch::Tensor& labels, c10::IntArrayRef shape,
                               int64_t block) const = 0;
  // out: [B, D] and u_k^T (d out / dx) per sample for probes u: [K, B, D], as [K, B, D].
  virtual std::pair<torch::Tensor, torch::Tensor> output_and_vjp(
      const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& probes,
      const torch::Tensor& labels, c10::IntArrayRef shape, int64_t block) const = 0;
  // out: [B, D] and the Jacobian's diagonal entries d out_i / d x_i for i in idx: [C] (int64), as
  // [B, C].
  virtual std::pair<torch::Tensor, torch::Tensor> output_and_diagonal(
      const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& idx,
      const torch::Tensor& labels, c10::IntArrayRef shape, int64_t block) const = 0;

  // The numbers of rows a call can compute, largest first (a package compiled for static sizes:
  // python/flowlik_export/pt2.py); empty when the network takes any number. A run calls with one of
  // them throughout (VelocityField::rows_per_call), so that a row's value does not depend on the
  // rows beside it.
  virtual std::vector<int64_t> blocks() const { return {}; }
  virtual int64_t parameter_count() const = 0;  // -1 when the format does not say
  virtual std::string parameter_dtype() const = 0;
};

}  // namespace flowlik
