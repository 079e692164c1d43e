// A continuous dataset held in memory, for tests that call score_dataset without a file.
#pragma once

#include <torch/torch.h>

#include "io/dataset.h"

namespace flowlik::test {

// values: [N, D] float64.
inline Dataset in_memory_dataset(const torch::Tensor& values) {
  Dataset data;
  data.path = "memory.npy";
  data.dtype = NpyDtype::kFloat64;
  data.size = values.size(0);
  data.dim = values.size(1);
  data.sample_shape = {data.dim};
  data.values = values;
  return data;
}

}  // namespace flowlik::test
