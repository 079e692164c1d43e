#pragma once

#include <string>
#include <string_view>

namespace flowlik {

// Hex SHA-256 of a file's bytes, so a report names exactly which model and data it measured.
// Throws DataError if the file cannot be read.
std::string sha256_file(const std::string& path);
// Hex SHA-256 of bytes in memory.
std::string sha256_bytes(std::string_view bytes);

}  // namespace flowlik
