// The flow velocity v(t, x) of an exported network, whatever it predicts and whatever format it was
// exported in (TorchScript or an AOTInductor package): the network is called as its contract says
// and its output converted to the velocity of the probability-flow ODE in flow time (shared/MATH.md
// section 4). Every parameterization is affine in x and in the network's output, v = a(t) x + b(t)
// out, so the Jacobian products the trace estimators need convert in closed form: u^T J_v = a u + b
// u^T J_out and J_v,ii = a + b J_out,ii.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "estimators/jacobian_products.h"
#include "likelihood/model/contract.h"
#include "likelihood/model/network.h"

namespace flowlik {

// A model file and the manifest found with it, before any contract is resolved.
struct ModelFile {
  std::string path;
  std::unique_ptr<Network> network;
  std::optional<nlohmann::json> manifest;
  std::string
      manifest_source;  // "manifest (embedded)" or "manifest (PATH.json)"; empty without one
};

// Parses JSON text that came with a model file (at most 1 MiB, nested at most kMaxJsonDepth deep).
// Throws ModelError naming `where` and saying what the text is (`what`: "manifest", "package
// metadata (MEMBER)").
nlohmann::json parse_model_json(const std::string& text, const std::string& where,
                                const std::string& what);
// parse_model_json of a manifest.
nlohmann::json parse_manifest(const std::string& text, const std::string& where);

// Loads a model, recognising its format from the file's contents (a TorchScript archive, or an
// AOTInductor package), and its manifest (embedded: the `flowlik.json` extra file of a TorchScript
// module or the metadata of a package; or PATH.json beside it; both present and different is an
// error). Throws ModelError naming the file and the fault.
ModelFile load_model_file(const std::string& path);

// Loads the model file and resolves its contract from the manifest and the options.
std::pair<ModelFile, Contract> load_model_with_contract(const std::string& path,
                                                        const ContractOptions& options);

// v = a x + b out at one flow time.
struct AffineVelocity {
  double a = 0.0;
  double b = 1.0;
};

// The same per row, for rows at their own flow times: a, b as [B, 1] in the states' dtype and
// device.
struct AffineVelocityRows {
  torch::Tensor a;
  torch::Tensor b;
  bool a_is_zero = true;  // every a is 0: v = b out, without touching x
};

class VelocityField final : public JacobianProducts {
 public:
  // Puts the network in eval mode on the device and in the dtype of `options` and checks that it
  // can be called as the contract says. Throws ModelError naming the file.
  VelocityField(ModelFile file, Contract contract, torch::TensorOptions options);
  // The first contract: forward(x, t), velocity in flow time, N(0, I) prior, on the CPU. For tests
  // and tools.
  static VelocityField load(const std::string& path, torch::ScalarType dtype);

  // Runs one small batch of the given per-sample shape through the network and checks that it
  // returns a floating tensor of the same shape. Fixes the shape used by evaluate() for this
  // object; copies made before keep theirs (bind a copy, not a shared field). Throws
  // DataError when the network rejects the shape or the contract declares another, ModelError when
  // the output breaks the contract.
  void bind_shape(const std::vector<int64_t>& shape);

  // x: [B, D] flattened states, row b at flow time t[b] (t: [B] float64 on the CPU; every row may
  // have its own time, as under per-sample step control); labels: [B] int64 for a conditional
  // model, else undefined. Returns v: [B, D], detached. A scalar-time model is called once per
  // distinct time.
  torch::Tensor evaluate(const torch::Tensor& x, const torch::Tensor& t,
                         const torch::Tensor& labels = {}) const;
  // v: [B, D] and u_k^T dv/dx for probes u: [K, B, D], as [K, B, D].
  std::pair<torch::Tensor, torch::Tensor> velocity_and_vjp(
      const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& probes,
      const torch::Tensor& labels = {}) const override;
  // v: [B, D] and the diagonal entries dv_i/dx_i of the Jacobian for i in idx: [C] int64, as [B,
  // C].
  std::pair<torch::Tensor, torch::Tensor> velocity_and_diagonal(
      const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& idx,
      const torch::Tensor& labels = {}) const override;
  // The same with every row at flow time t.
  torch::Tensor evaluate(const torch::Tensor& x, double t, const torch::Tensor& labels = {}) const;
  std::pair<torch::Tensor, torch::Tensor> velocity_and_vjp(const torch::Tensor& x, double t,
                                                           const torch::Tensor& probes,
                                                           const torch::Tensor& labels = {}) const;
  std::pair<torch::Tensor, torch::Tensor> velocity_and_diagonal(
      const torch::Tensor& x, double t, const torch::Tensor& idx,
      const torch::Tensor& labels = {}) const;
  // The affine map from the network's output to the velocity at flow time t (shared/MATH.md section
  // 4).
  AffineVelocity affine_velocity(double t) const;
  // The same for rows at flow times t: [B] float64, as [B, 1] tensors like x.
  AffineVelocityRows affine_velocity(const torch::Tensor& t, const torch::Tensor& x) const;

  const std::string& path() const { return path_; }
  // "torchscript" or "aoti-package".
  std::string format() const { return network_->format(); }
  const Contract& contract() const { return contract_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  int64_t dim() const { return dim_; }
  torch::ScalarType dtype() const { return options_.dtype().toScalarType(); }
  // dtype and device of the states this field takes.
  torch::TensorOptions options() const { return options_; }
  // The rows of every network call this field makes (the solver pads its batches to a multiple of
  // it), so that a row's value does not depend on the rows beside it: one of blocks(), the largest
  // (set by bind_shape) unless fit_rows_per_call chose another.
  int64_t rows_per_call() const { return rows_per_call_ > 0 ? rows_per_call_ : blocks().front(); }
  // The blocks the network can be called with, largest first: a package's compiled blocks; for a
  // network that takes any number of rows, the powers of two up to the one from 1 to 32 that makes
  // about 8192 values per call (32 for the digits, 4 for 3x32x32, 1 from 3x64x64 up).
  std::vector<int64_t> blocks() const;
  // Sets rows_per_call for a run of `rows` rows (samples x dequantization draws, of the whole data
  // before any shard, so that every shard, resumption and batch of it calls alike):
  // run_block(blocks(), rows). Call it after bind_shape, which sets the largest; like bind_shape,
  // changes this copy only.
  void fit_rows_per_call(int64_t rows);
  int64_t parameter_count() const { return network_->parameter_count(); }
  std::string parameter_dtype() const { return network_->parameter_dtype(); }

 private:
  // The network's time for flow times t: [B] float64, as [B] in x's dtype and device.
  torch::Tensor model_time(const torch::Tensor& x, const torch::Tensor& t) const;
  // Calls `call(rows)` on the whole batch, or, for a scalar-time model whose rows are at different
  // times, once per distinct time on the rows at that time, and puts the results back in row order.
  // `call` returns tensors whose dimension `batch_dims[i]` is the batch.
  std::vector<torch::Tensor> call_by_time(
      const torch::Tensor& t, const std::vector<int64_t>& batch_dims,
      const std::function<std::vector<torch::Tensor>(const torch::Tensor& rows)>& call) const;

  std::string path_;
  // Shared by copies, and not changed after the constructor: a copy bound to another shape (the
  // per-sample shape is the copy's own) can be used beside it, from another thread too.
  std::shared_ptr<const Network> network_;
  Contract contract_;
  torch::TensorOptions options_;
  std::vector<int64_t> shape_;
  int64_t dim_ = 0;
  int64_t rows_per_call_ = 0;  // 0 until bound: the largest block
};

// The block a run of `rows` rows calls its network with, from the blocks it can take (largest
// first): the largest, unless the run has at most a quarter of its rows; then the largest block the
// run fills more than half of, else the smallest. (A call of 2 to 8 times the rows it needs still
// pays for its padding; but fewer rows per call cost more per row: measured on the digits UNet's
// K = 1 vjp, 4.7, 3.4 and 1.5 ms a row at 1, 4 and 16 rows, python/flowlik_export/pt2.py.)
int64_t run_block(const std::vector<int64_t>& blocks, int64_t rows);

}  // namespace flowlik
