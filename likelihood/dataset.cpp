#include "likelihood/dataset.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "likelihood/error.h"

namespace flowlik {
namespace {

torch::Tensor as_float64(const NpyArray& array, int64_t rows, int64_t cols) {
  // from_blob does not copy; .to() makes an owning float64 copy before `array` goes away.
  auto* data = const_cast<unsigned char*>(array.bytes.data());
  switch (array.dtype) {
    case NpyDtype::kFloat32:
      return torch::from_blob(data, {rows, cols}, torch::kFloat32).to(torch::kFloat64);
    case NpyDtype::kFloat64:
      return torch::from_blob(data, {rows, cols}, torch::kFloat64).clone();
    case NpyDtype::kUint8:
      return torch::from_blob(data, {rows, cols}, torch::kUInt8).to(torch::kFloat64);
    case NpyDtype::kInt64:
      break;  // refused by load_dataset before this is called
  }
  return {};
}

}  // namespace

Dataset load_dataset(const std::string& path) {
  const NpyArray array = read_npy(path);
  if (array.dtype == NpyDtype::kInt64) {
    throw DataError(fmt::format("{}: int64 data are not scored (give discrete levels as uint8, continuous "
                                "data as float32 or float64)",
                                path));
  }
  if (array.shape.size() < 2) {
    throw DataError(fmt::format(
        "{}: array has shape ({}), expected [N, *shape] with at least two axes (N samples first)", path,
        fmt::join(array.shape, ", ")));
  }
  Dataset data;
  data.path = path;
  data.dtype = array.dtype;
  data.size = array.shape[0];
  data.sample_shape.assign(array.shape.begin() + 1, array.shape.end());
  data.dim = 1;
  for (const auto s : data.sample_shape) data.dim *= s;
  if (data.size == 0) throw DataError(fmt::format("{}: no samples (N = 0)", path));
  if (data.dim == 0) throw DataError(fmt::format("{}: samples have no dimensions (D = 0)", path));
  data.values = as_float64(array, data.size, data.dim);
  if (!data.is_discrete()) {
    const auto finite = torch::isfinite(data.values).all(1);  // [N]
    if (!finite.all().item<bool>()) {
      const auto first = torch::nonzero(finite.logical_not())[0][0].item<int64_t>();
      throw DataError(fmt::format("{}: sample {} has a value that is not finite", path, first));
    }
  }
  return data;
}

torch::Tensor load_labels(const std::string& path, int64_t count) {
  const NpyArray array = read_npy(path);
  if (array.shape.size() != 1 || array.shape[0] != count) {
    throw DataError(fmt::format("{}: labels must have shape ({},), one per sample, found ({})", path, count,
                                fmt::join(array.shape, ", ")));
  }
  auto* data = const_cast<unsigned char*>(array.bytes.data());
  switch (array.dtype) {
    case NpyDtype::kInt64: return torch::from_blob(data, {count}, torch::kInt64).clone();
    case NpyDtype::kUint8: return torch::from_blob(data, {count}, torch::kUInt8).to(torch::kInt64);
    default:
      throw DataError(fmt::format("{}: labels must be integers (int64 or uint8), found {}", path,
                                  to_string(array.dtype)));
  }
}

void check_levels(const Dataset& data, int64_t levels, const std::string& source) {
  const auto too_high = (data.values >= static_cast<double>(levels)).any(1);  // [N]
  if (too_high.any().item<bool>()) {
    const auto first = torch::nonzero(too_high)[0][0].item<int64_t>();
    const auto value = data.values[first].max().item<double>();
    throw DataError(fmt::format("{}: sample {} has level {}, not below {} {}", data.path, first, value,
                                source, levels));
  }
}

}  // namespace flowlik
