// An AOTInductor package (.pt2, written by flowlik_export.export(..., format="pt2")) as a Network.
// The package holds, per dtype d, compiled functions of the raw network for static sizes
// (python/flowlik_export/pt2.py):
//   velocity_<d>(x [B, D], t [B]) -> out [B, D]
//   vjp_k<K>_<d>(x, t, probes [K, B, D]) -> (out, vjp [K, B, D])     one per compiled K
// (a conditional model takes labels y [B] last in each), and metadata: flowlik.json (the manifest),
// flowlik.format ("2"), flowlik.dtype, flowlik.device, flowlik.functions, flowlik.block (B),
// flowlik.probes (the K), flowlik.torch_version; and, where the package has smaller blocks b for
// small runs, flowlik.blocks ("B,b") and the same functions named velocity_b<b>_<d> and
// vjp_k<K>_b<b>_<d>. Any call is split into these sizes: rows in blocks of the size the caller
// chose (the last padded with its last row), probes in groups of a compiled K (the last padded with
// zero probes), and the Jacobian's diagonal as the VJP against one-hot probes, read at their index.
#pragma once

#include <torch/csrc/inductor/aoti_package/model_package_loader.h>

#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "likelihood/model/model_archive.h"
#include "likelihood/model/network.h"

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
// ("x86_64", "AVX512 AVX512_VNNI"), with the x86-64 level of an export's cpu= among the words
// ("AVX2 x86-64-v3"): empty when it can, else what it lacks.
std::string missing_cpu_features(const std::string& machine, const std::string& isa);

class AotiPackageNetwork final : public Network {
 public:
  AotiPackageNetwork(std::string path, AotiPackageInfo info);

  std::string format() const override { return "aoti-package"; }
  void prepare(const CallSpec& call, torch::TensorOptions options) override;
  torch::Tensor output(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& labels,
                       c10::IntArrayRef shape, int64_t block) const override;
  std::pair<torch::Tensor, torch::Tensor> output_and_vjp(
      const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& probes,
      const torch::Tensor& labels, c10::IntArrayRef shape, int64_t block) const override;
  std::pair<torch::Tensor, torch::Tensor> output_and_diagonal(
      const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& idx,
      const torch::Tensor& labels, c10::IntArrayRef shape, int64_t block) const override;
  std::vector<int64_t> blocks() const override;
  int64_t parameter_count() const override { return parameter_count_; }
  std::string parameter_dtype() const override { return parameter_dtype_; }

 private:
  // A compiled vjp and the number of probes it takes.
  struct Vjp {
    int64_t probes = 0;
    std::unique_ptr<torch::inductor::AOTIModelPackageLoader> loader;
  };
  // The functions compiled for one block of rows.
  struct Block {
    int64_t rows = 0;
    std::unique_ptr<torch::inductor::AOTIModelPackageLoader> velocity;
    std::vector<Vjp> vjps;  // by increasing K
  };
  // The functions for `rows` rows per call; std::logic_error when the package has no such block.
  Block& compiled(int64_t rows) const;
  std::vector<torch::Tensor> run(torch::inductor::AOTIModelPackageLoader& loader,
                                 std::vector<torch::Tensor> inputs,
                                 const torch::Tensor& labels) const;
  // Splits `count` products into calls: (products in the call, index in vjps) of the smallest
  // compiled K that takes what remains, else the largest.
  static std::vector<std::pair<int64_t, size_t>> plan(const std::vector<Vjp>& vjps, int64_t count);
  // out [B, D] and the VJPs [K, B, D] of one block of B rows, in calls of compiled sizes.
  std::pair<torch::Tensor, torch::Tensor> block_vjp(Block& block, const torch::Tensor& x,
                                                    const torch::Tensor& t,
                                                    const torch::Tensor& probes,
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
  // flowlik.blocks (flowlik.block alone in a package from before it), largest first. run() is not
  // const in the loader's API although a run changes nothing we keep.
  mutable std::vector<Block> blocks_;
};

}  // namespace flowlik
