// --dtype and --device, validated once and turned into the options every tensor of a run is made with.
#pragma once

#include <torch/torch.h>

#include <string>

namespace flowlik::cli {

// Throws UsageError naming --dtype or --device: an unknown name, or CUDA asked for where LibTorch finds no
// CUDA device.
torch::TensorOptions parse_tensor_options(const std::string& dtype, const std::string& device);

}  // namespace flowlik::cli
