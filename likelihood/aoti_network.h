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

#include "likelihood/model_archive.h"
#include "likelihood/network.h"

namespace flowlik {

// What a package says of itself, read without loading its compiled code.
struct AotiPackageInfo {
  std::vector<std::string> models;                        // the names of its compiled functions
  std::unordered_map<std::string, std::string> metadata;  // of its first model
  std::shared_ptr<const ModelArchive> archive;            // checked; extracted from by prepare()
};

// A compiled function's metadata (its *_metadata.json member: AOTInductor's keys and flowlik's),
// read from the checked archive. Throws ModelError naming the file and the member when it is not a
// JSON object of strings.
std::unordered_map<std::string, std::string> read_package_metadata(const ModelArchive& archive,
                                                                   const std::string& model);

// Whether this machine can run code compiled for AOTInductor's AOTI_MACHINE and AOTI_CPU_ISA
// ("x86_64", "AVX512 AVX512_VNNI"): empty when it can, else what it lacks.
std::string missing_cpu_features(const std::string& machine, const std::string& isa);

class AotiPackageNetwork final : public Network {
 public:
  AotiPackageNetwork(std::string path, AotiPackageInfo info);

  std::string format() const override { return "aoti-package"; }
  void prepare(const CallSpec& call, torch::TensorOptions options) override;
  torch::Tensor output(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& labels,
                       c10::IntArrayRef shape) const override;
  std::pair<torch::Tensor, torch::Tensor> output_and_vjp(const torch::Tensor& x,
                                                         const torch::Tensor& t,
                                                         const torch::Tensor& probes,
                                                         const torch::Tensor& labels,
                                                         c10::IntArrayRef shape) const override;
  std::pair<torch::Tensor, torch::Tensor> output_and_diagonal(
      const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& idx,
      const torch::Tensor& labels, c10::IntArrayRef shape) const override;
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
  int64_t parameter_count_ = -1;
  std::string parameter_dtype_ = "unknown";
  // The extracted functions: removed once they are loaded on the CPU; a CUDA run's loaders read
  // their kernels from it while they run, so it is kept until the network is destroyed.
  std::unique_ptr<PackageFolder> folder_;
  // run() is not const in the loader's API although a run changes nothing we keep.
  mutable std::unique_ptr<torch::inductor::AOTIModelPackageLoader> velocity_;
  mutable std::unique_ptr<torch::inductor::AOTIModelPackageLoader> vjp_;
  mutable std::unique_ptr<torch::inductor::AOTIModelPackageLoader> diag_;
};

}  // namespace flowlik
