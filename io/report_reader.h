// Reports read back (by `merge` and by `score --baseline`): every key checked, every mistake a
// DataError naming the file and the dotted key, so that no hand-edited or truncated report reaches
// an internal error.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace flowlik {

class ReportReader {
 public:
  // Reads and parses `path` (a regular file of at most 256 MiB, nested at most kMaxJsonDepth deep).
  // `what` names the kind of report for messages ("baseline report", "shard report").
  ReportReader(const std::string& path, std::string_view what);

  const std::string& path() const { return path_; }
  const nlohmann::json& json() const { return json_; }
  bool contains(std::string_view key) const;

  // The value at a dotted key ("shard.count"), checked for its type.
  const nlohmann::json& value(std::string_view key) const;
  int64_t integer(std::string_view key) const;
  double number(std::string_view key) const;
  std::optional<double> number_or_null(std::string_view key) const;
  std::string string(std::string_view key) const;
  const nlohmann::json& object(std::string_view key) const;

 private:
  // The value at a dotted key, or null when some part of the path is missing or not an object.
  const nlohmann::json* find(std::string_view key) const;
  [[noreturn]] void fail(std::string_view key, std::string_view expected,
                         const nlohmann::json* found) const;

  std::string path_;
  std::string what_;
  nlohmann::json json_;
};

}  // namespace flowlik
