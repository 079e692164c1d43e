// An AOTInductor package (.pt2, written by flowlik_export.export(..., format="pt2")) as a Network.
// The package holds, per dtype d, three compiled functions of the raw network (python/README.md):
//   velocity_<d>(x [B, D], t [B]) -> out [B, D]
//   vjp_<d>(x, t, probes [K, B, D]) -> (out, vjp [K, B, D])
//   diag_<d>(x, t, idx [C]) -> (out, diag [B, C])
// (a conditional model takes labels y [B] last in each), and metadata: flowlik.json (the manifest),
// flowlik.format, flowlik.dtype, flowlik.device, flowlik.functions, flowlik.torch_version.
#pragma once

#include <torch/csrc/inductor/aoti_package/model_package_loader.h>

#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "likelihood/network.h"

namespace flowlik {

// What a package says of itself, read without loading its compiled code.
struct AotiPackageInfo {
  std::vector<std::string> models;                        // the names of its compiled functions
  std::unordered_map<std::string, std::string> metadata;  // of its first model
};

class AotiPackageNetwork final : public Network {
 public:
  AotiPackageNetwork(std::string path, AotiPackageInfo info);

  std::string format() const override { return "aoti-package"; }
  void prepare(const CallSpec& call, torch::TensorOptions options) override;
  void set_shape(const std::vector<int64_t>& shape) override;
  torch::Tensor output(const torch::Tensor& x, const torch::Tensor& t,
                       const torch::Tensor& labels) const override;
  std::pair<torch::Tensor, torch::Tensor> output_and_vjp(
      const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& probes,
      const torch::Tensor& labels) const override;
  std::pair<torch::Tensor, torch::Tensor> output_and_diagonal(
      const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& idx,
      const torch::Tensor& labels) const override;
  int64_t parameter_count() const override { return parameter_count_; }
  std::string parameter_dtype() const override { return parameter_dtype_; }

 private:
  std::vector<torch::Tensor> run(torch::inductor::AOTIModelPackageLoader& loader,
                                 std::vector<torch::Tensor> inputs,
                                 const torch::Tensor& labels) const;

  std::string path_;
  AotiPackageInfo info_;
  CallSpec call_;
  torch::TensorOptions options_;
  int64_t dim_ = 0;
  int64_t parameter_count_ = -1;
  std::string parameter_dtype_ = "unknown";
  // run() is not const in the loader's API although a run changes nothing we keep.
  mutable std::unique_ptr<torch::inductor::AOTIModelPackageLoader> velocity_;
  mutable std::unique_ptr<torch::inductor::AOTIModelPackageLoader> vjp_;
  mutable std::unique_ptr<torch::inductor::AOTIModelPackageLoader> diag_;
};

}  // namespace flowlik
