// A dataset to score: an .npy array of shape [N, *shape], held as float64 values [N, D].
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "io/npy.h"

namespace flowlik {

struct Dataset {
  std::string path;
  NpyDtype dtype = NpyDtype::kFloat32;
  std::vector<int64_t> sample_shape;  // *shape
  int64_t size = 0;                   // N
  int64_t dim = 0;                    // D, the product of sample_shape
  torch::Tensor values;  // [N, D] float64: the raw values, integer levels for uint8 data
  torch::Tensor labels;  // [N] int64 class labels for conditional models; else undefined
  std::string labels_path;

  // Integer data are discrete (dequantized before scoring); float data are continuous.
  bool is_discrete() const { return dtype == NpyDtype::kUint8; }
};

// A dataset from values [N, *shape] of dtype float32, float64 (continuous) or uint8 (discrete
// levels), on any device; `name` stands for the file in messages and reports. Throws DataError
// naming it: another dtype, fewer than two axes, no samples, or (for float data) values that are
// not finite.
Dataset make_dataset(const torch::Tensor& values, const std::string& name);

// Labels [count] of an integer dtype, as int64 on the CPU. Throws DataError naming `name`.
torch::Tensor check_labels(const torch::Tensor& labels, int64_t count, const std::string& name);

// An .npy file as a tensor of its own dtype and shape. Throws DataError naming the file.
torch::Tensor load_array(const std::string& path);

// Throws DataError naming the file: unreadable, malformed, fewer than two axes, no samples, or (for
// float data) values that are not finite.
Dataset load_dataset(const std::string& path);

// Class labels for a conditional model: a 1-d int64 or uint8 array with one label per sample.
// Throws DataError naming the file.
torch::Tensor load_labels(const std::string& path, int64_t count);

// Throws DataError naming the file, the first offending sample and value when a level is >=
// `levels`; `source` says where the level count came from ("--levels", "the manifest's
// data.levels").
void check_levels(const Dataset& data, int64_t levels, const std::string& source = "--levels");

}  // namespace flowlik
