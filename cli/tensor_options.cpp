#include "cli/tensor_options.h"

#include <fmt/format.h>

#include "likelihood/error.h"

namespace flowlik::cli {

torch::TensorOptions parse_tensor_options(const std::string& dtype, const std::string& device) {
  torch::ScalarType scalar_type;
  if (dtype == "float32") {
    scalar_type = torch::kFloat32;
  } else if (dtype == "float64") {
    scalar_type = torch::kFloat64;
  } else {
    throw UsageError(fmt::format("--dtype: unknown dtype '{}' (valid: float32, float64)", dtype));
  }
  if (device != "cpu" && device != "cuda" && !device.starts_with("cuda:")) {
    throw UsageError(fmt::format("--device: unknown device '{}' (valid: cpu, cuda, cuda:N)", device));
  }
  torch::Device parsed(torch::kCPU);
  try {
    parsed = torch::Device(device);
  } catch (const std::exception&) {
    throw UsageError(fmt::format("--device: unknown device '{}' (valid: cpu, cuda, cuda:N)", device));
  }
  if (parsed.is_cuda()) {
    const auto count = torch::cuda::device_count();
    if (count == 0) {
      throw UsageError(fmt::format("--device: '{}' asked for, but LibTorch finds no CUDA device here", device));
    }
    if (parsed.has_index() && parsed.index() >= static_cast<int>(count)) {
      throw UsageError(fmt::format("--device: '{}' asked for, but there are {} CUDA device(s)", device, count));
    }
  }
  return torch::TensorOptions().dtype(scalar_type).device(parsed);
}

}  // namespace flowlik::cli
