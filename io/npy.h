// Reader and writer for NumPy .npy files (format versions 1.0, 2.0 and 3.0), without torch.
//
// Only the dtypes flowlik consumes are supported: little-endian float32, float64 and uint8, in C
// order. Every malformed or unsupported file is reported as flowlik::DataError with a one-line
// message that starts with the file path.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace flowlik {

enum class NpyDtype { kFloat32, kFloat64, kUint8, kInt64 };  // int64: class labels

struct NpyArray {
  NpyDtype dtype = NpyDtype::kFloat32;
  std::vector<int64_t> shape;        // as in the header; a 0-d array has an empty shape
  std::vector<unsigned char> bytes;  // raw little-endian elements, C order, numel() * item_size

  // Product of shape; 1 for a 0-d array, -1 if a dimension is negative or the product overflows.
  int64_t numel() const;
};

// "float32", "float64" or "uint8".
std::string to_string(NpyDtype dtype);
size_t item_size(NpyDtype dtype);

// Throws flowlik::DataError if the file cannot be read, is malformed or holds an unsupported array.
NpyArray read_npy(const std::string& path);

// Writes the header byte-for-byte as numpy.save does: format 1.0, or 2.0 when the header does not
// fit. Throws flowlik::OutputError if the array is inconsistent or the file cannot be written.
void write_npy(const std::string& path, const NpyArray& array);

}  // namespace flowlik
