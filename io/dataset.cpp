#include "io/dataset.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "flowlik/error.h"

namespace flowlik {
namespace {

// The array as a tensor of its own dtype; owns a copy, so that `array` may go away.
torch::Tensor as_tensor(const NpyArray& array) {
  auto* data = const_cast<unsigned char*>(array.bytes.data());
  const auto type = array.dtype == NpyDtype::kFloat32   ? torch::kFloat32
                    : array.dtype == NpyDtype::kFloat64 ? torch::kFloat64
                    : array.dtype == NpyDtype::kUint8   ? torch::kUInt8
                                                        : torch::kInt64;
  return torch::from_blob(data, array.shape, type).clone();
}

}  // namespace

Dataset make_dataset(const torch::Tensor& values, const std::string& name) {
  const auto type = values.scalar_type();
  if (type != torch::kFloat32 && type != torch::kFloat64 && type != torch::kUInt8) {
    throw DataError(
        fmt::format("{}: {} data are not scored (give discrete levels as uint8, continuous data "
                    "as float32 or float64)",
                    name, c10::getDtypeNames(type).first));
  }
  if (values.dim() < 2) {
    throw DataError(fmt::format(
        "{}: array has shape ({}), expected [N, *shape] with at least two axes (N samples first)",
        name, fmt::join(values.sizes(), ", ")));
  }
  Dataset data;
  data.path = name;
  data.dtype = type == torch::kFloat32   ? NpyDtype::kFloat32
               : type == torch::kFloat64 ? NpyDtype::kFloat64
                                         : NpyDtype::kUint8;
  data.size = values.size(0);
  data.sample_shape.assign(values.sizes().begin() + 1, values.sizes().end());
  data.dim = 1;
  for (const auto s : data.sample_shape) data.dim *= s;
  if (data.size == 0) throw DataError(fmt::format("{}: no samples (N = 0)", name));
  if (data.dim == 0) throw DataError(fmt::format("{}: samples have no dimensions (D = 0)", name));
  data.values =
      values.detach().to(torch::kCPU, torch::kFloat64).reshape({data.size, data.dim}).contiguous();
  if (!data.is_discrete()) {
    const auto finite = torch::isfinite(data.values).all(1);  // [N]
    if (!finite.all().item<bool>()) {
      const auto first = torch::nonzero(finite.logical_not())[0][0].item<int64_t>();
      throw DataError(fmt::format("{}: sample {} has a value that is not finite", name, first));
    }
  }
  return data;
}

torch::Tensor load_array(const std::string& path) { return as_tensor(read_npy(path)); }

Dataset load_dataset(const std::string& path) { return make_dataset(load_array(path), path); }

torch::Tensor check_labels(const torch::Tensor& labels, int64_t count, const std::string& name) {
  if (labels.dim() != 1 || labels.size(0) != count) {
    throw DataError(fmt::format("{}: labels must have shape ({},), one per sample, found ({})",
                                name, count, fmt::join(labels.sizes(), ", ")));
  }
  if (labels.scalar_type() != torch::kInt64 && labels.scalar_type() != torch::kUInt8) {
    throw DataError(fmt::format("{}: labels must be integers (int64 or uint8), found {}", name,
                                c10::getDtypeNames(labels.scalar_type()).first));
  }
  return labels.detach().to(torch::kCPU, torch::kInt64).contiguous();
}

torch::Tensor load_labels(const std::string& path, int64_t count) {
  return check_labels(load_array(path), count, path);
}

void check_levels(const Dataset& data, int64_t levels, const std::string& source) {
  const auto too_high = (data.values >= static_cast<double>(levels)).any(1);  // [N]
  if (too_high.any().item<bool>()) {
    const auto first = torch::nonzero(too_high)[0][0].item<int64_t>();
    const auto value = data.values[first].max().item<double>();
    throw DataError(fmt::format("{}: sample {} has level {}, not below {} {}", data.path, first,
                                value, source, levels));
  }
}

}  // namespace flowlik
