#include "likelihood/aoti_network.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <utility>

#include "flowlik/error.h"
#include "likelihood/device.h"
#include "likelihood/text_number.h"
#include "likelihood/torch_error.h"

namespace flowlik {
namespace {

std::string metadata_value(const AotiPackageInfo& info, const std::string& key) {
  const auto it = info.metadata.find(key);
  return it == info.metadata.end() ? std::string() : it->second;
}

}  // namespace

AotiPackageNetwork::AotiPackageNetwork(std::string path, AotiPackageInfo info)
    : path_(std::move(path)), info_(std::move(info)) {
  if (const auto count = parse_int64(metadata_value(info_, "flowlik.parameters")))
    parameter_count_ = *count;
  if (const auto dtype = metadata_value(info_, "flowlik.parameter_dtype"); !dtype.empty())
    parameter_dtype_ = dtype;
}

void AotiPackageNetwork::prepare(const CallSpec& call, torch::TensorOptions options) {
  call_ = call;
  options_ = options;
  const auto dtype =
      options.dtype() == torch::kFloat64 ? std::string("float64") : std::string("float32");
  const auto functions = split_on_commas(metadata_value(info_, "flowlik.functions"));
  for (const char* needed : {"velocity", "vjp", "diag"}) {
    if (std::find(functions.begin(), functions.end(), needed) == functions.end()) {
      throw ModelError(
          fmt::format("{}: package has no compiled '{}' function (it has: {}); flowlik needs "
                      "velocity, vjp and diag: "
                      "export it with flowlik_export.export(..., format=\"pt2\")",
                      path_, needed, fmt::join(functions, ", ")));
    }
  }
  std::vector<std::string> dtypes;
  for (const auto& m : info_.models) {
    if (m.starts_with("velocity_")) dtypes.push_back(m.substr(9));
  }
  if (std::find(dtypes.begin(), dtypes.end(), dtype) == dtypes.end()) {
    throw ModelError(
        fmt::format("{}: package is compiled for {} only, not dtype {}; re-export with "
                    "flowlik_export.export(..., dtypes=(\"{}\",))",
                    path_, fmt::join(dtypes, ", "), dtype, dtype));
  }
  const auto package_device = metadata_value(info_, "flowlik.device");
  const auto wanted = options.device().is_cuda() ? std::string("cuda") : std::string("cpu");
  if (!package_device.empty() && package_device != wanted) {
    throw ModelError(
        fmt::format("{}: package is compiled for {}, not device {}; re-export it with "
                    "flowlik_export.export(..., device=\"{}\") on a machine with that device",
                    path_, package_device, wanted, wanted));
  }
  const auto device_index =
      options.device().has_index() ? options.device().index() : c10::DeviceIndex(-1);
  load_libtorch_for_package(path_);
  auto load = [&](const std::string& name) {
    try {
      return std::make_unique<torch::inductor::AOTIModelPackageLoader>(
          path_, name + "_" + dtype,
          /*run_single_threaded=*/false,
          /*num_runners=*/1, device_index);
    } catch (const c10::Error& e) {
      const auto built_with = metadata_value(info_, "flowlik.torch_version");
      throw ModelError(
          fmt::format("{}: cannot load the compiled '{}' function ({}){}", path_, name,
                      summarize_torch_error(e.what_without_backtrace()),
                      built_with.empty() || built_with == TORCH_VERSION
                          ? std::string()
                          : fmt::format("; it was compiled by PyTorch {}, this flowlik uses {}: "
                                        "re-export it with PyTorch {}",
                                        built_with, TORCH_VERSION, TORCH_VERSION)));
    }
  };
  velocity_ = load("velocity");
  vjp_ = load("vjp");
  diag_ = load("diag");
}

void AotiPackageNetwork::set_shape(const std::vector<int64_t>& shape) {
  call_.shape = shape;
  dim_ = 1;
  for (const auto s : shape) dim_ *= s;
}

std::vector<torch::Tensor> AotiPackageNetwork::run(torch::inductor::AOTIModelPackageLoader& loader,
                                                   std::vector<torch::Tensor> inputs,
                                                   const torch::Tensor& labels) const {
  for (auto& input : inputs) input = input.contiguous();
  if (call_.conditional) inputs.push_back(labels.contiguous());
  torch::NoGradGuard no_grad;
  return loader.run(inputs);
}

torch::Tensor AotiPackageNetwork::output(const torch::Tensor& x, const torch::Tensor& t,
                                         const torch::Tensor& labels) const {
  if (x.size(1) != dim_) {
    throw DataError(fmt::format("{}: input has {} values per sample, the package was bound to {}",
                                path_, x.size(1), dim_));
  }
  return run(*velocity_, {x, t}, labels).at(0);
}

std::pair<torch::Tensor, torch::Tensor> AotiPackageNetwork::output_and_vjp(
    const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& probes,
    const torch::Tensor& labels) const {
  auto out = run(*vjp_, {x, t, probes}, labels);
  return {out.at(0), out.at(1)};
}

std::pair<torch::Tensor, torch::Tensor> AotiPackageNetwork::output_and_diagonal(
    const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& idx,
    const torch::Tensor& labels) const {
  auto out = run(*diag_, {x, t, idx}, labels);
  return {out.at(0), out.at(1)};
}

}  // namespace flowlik
