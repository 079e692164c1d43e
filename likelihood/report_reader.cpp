#include "likelihood/report_reader.h"

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "flowlik/error.h"
#include "io/json_depth.h"
#include "likelihood/report.h"

namespace flowlik {
namespace {

constexpr uintmax_t kMaxReportBytes = uintmax_t{256} << 20;

std::string type_name(const nlohmann::json* value) {
  if (!value) return "nothing";
  return value->type_name();
}

}  // namespace

ReportReader::ReportReader(const std::string& path, std::string_view what)
    : path_(path), what_(what) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (!std::filesystem::is_regular_file(status)) {
    throw DataError(fmt::format("{}: {} is not a regular file", path, what_));
  }
  if (std::filesystem::file_size(path, ec) > kMaxReportBytes) {
    throw DataError(fmt::format("{}: {} is larger than {} bytes", path, what_, kMaxReportBytes));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(fmt::format("{}: cannot open {}", path, what_));
  std::stringstream buffer;
  buffer << in.rdbuf();
  const auto text = buffer.str();
  if (json_nesting_depth(text) > kMaxJsonDepth) {
    throw DataError(fmt::format("{}: {} nests deeper than {} levels", path, what_, kMaxJsonDepth));
  }
  try {
    json_ = nlohmann::json::parse(text);
  } catch (
      const nlohmann::json::exception& e) {  // parse errors, and numbers out of a double's range
    const std::string message = e.what();
    throw DataError(
        fmt::format("{}: {} is not valid JSON ({})", path, what_, message.substr(0, 200)));
  }
  if (!json_.is_object()) throw DataError(fmt::format("{}: {} is not a JSON object", path, what_));
}

void ReportReader::fail(std::string_view key, std::string_view expected,
                        const nlohmann::json* found) const {
  throw DataError(fmt::format("{}: {} key '{}': expected {}, found {}", path_, what_, key, expected,
                              type_name(found)));
}

bool ReportReader::contains(std::string_view key) const { return find(key) != nullptr; }

const nlohmann::json* ReportReader::find(std::string_view key) const {
  const nlohmann::json* node = &json_;
  size_t start = 0;
  while (true) {
    const auto dot = key.find('.', start);
    const auto part =
        std::string(key.substr(start, dot == std::string_view::npos ? key.npos : dot - start));
    if (node->is_array()) {
      // An element of an array by its index: "gates.0.name".
      size_t index = 0;
      const auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), index);
      if (part.empty() || ec != std::errc() || end != part.data() + part.size() ||
          index >= node->size()) {
        return nullptr;
      }
      node = &node->at(index);
    } else {
      if (!node->is_object() || !node->contains(part)) return nullptr;
      node = &node->at(part);
    }
    if (dot == std::string_view::npos) return node;
    start = dot + 1;
  }
}

const nlohmann::json& ReportReader::value(std::string_view key) const {
  if (const auto* node = find(key)) return *node;
  // Missing, or a value on the way is not an object: name the shortest such prefix.
  for (auto dot = key.find('.'); dot != std::string_view::npos; dot = key.find('.', dot + 1)) {
    const auto* node = find(key.substr(0, dot));
    if (!node) break;
    const auto next = key.substr(dot + 1, key.find('.', dot + 1) - dot - 1);
    const bool index = !next.empty() && next.find_first_not_of("0123456789") == next.npos;
    if (!node->is_object() && !(index && node->is_array())) {
      fail(key.substr(0, dot), index ? "an array" : "an object", node);
    }
  }
  fail(key, "a value", nullptr);
}

int64_t ReportReader::integer(std::string_view key) const {
  const auto& v = value(key);
  if (!v.is_number_integer()) fail(key, "an integer", &v);
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
    fail(key, "an integer below 2^63", &v);
  }
  return v.get<int64_t>();
}

uint64_t ReportReader::unsigned_integer(std::string_view key) const {
  const auto& v = value(key);
  if (!v.is_number_integer() || (!v.is_number_unsigned() && v.get<int64_t>() < 0)) {
    fail(key, "an integer from 0 to 2^64 - 1", &v);
  }
  return v.get<uint64_t>();
}

bool ReportReader::boolean(std::string_view key) const {
  const auto& v = value(key);
  if (!v.is_boolean()) fail(key, "true or false", &v);
  return v.get<bool>();
}

size_t ReportReader::size(std::string_view key) const {
  if (!contains(key)) return 0;
  const auto& v = value(key);
  if (!v.is_array()) fail(key, "an array", &v);
  return v.size();
}

double ReportReader::number(std::string_view key) const {
  const auto& v = value(key);
  if (!v.is_number()) fail(key, "a number", &v);
  return v.get<double>();
}

std::optional<double> ReportReader::number_or_null(std::string_view key) const {
  const auto& v = value(key);
  if (v.is_null()) return std::nullopt;
  if (!v.is_number()) fail(key, "a number or null", &v);
  return v.get<double>();
}

std::string ReportReader::string(std::string_view key) const {
  const auto& v = value(key);
  if (!v.is_string()) fail(key, "a string", &v);
  return v.get<std::string>();
}

std::optional<std::string> ReportReader::string_or_null(std::string_view key) const {
  const auto& v = value(key);
  if (v.is_null()) return std::nullopt;
  if (!v.is_string()) fail(key, "a string or null", &v);
  return v.get<std::string>();
}

std::vector<int64_t> ReportReader::integers(std::string_view key) const {
  const auto& v = value(key);
  if (!v.is_array()) fail(key, "an array of integers", &v);
  std::vector<int64_t> out;
  for (const auto& item : v) {
    if (!item.is_number_integer() ||
        (item.is_number_unsigned() && item.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))) {
      fail(key, "an array of integers", &v);
    }
    out.push_back(item.get<int64_t>());
  }
  return out;
}

std::vector<double> ReportReader::numbers_or_null(std::string_view key, size_t size) const {
  const auto& v = value(key);
  const auto expected = fmt::format("an array of {} numbers or nulls", size);
  if (!v.is_array() || v.size() != size) fail(key, expected, &v);
  std::vector<double> out;
  for (const auto& item : v) {
    if (!item.is_null() && !item.is_number()) fail(key, expected, &v);
    out.push_back(item.is_null() ? NAN : item.get<double>());
  }
  return out;
}

const nlohmann::json& ReportReader::object(std::string_view key) const {
  const auto& v = value(key);
  if (!v.is_object()) fail(key, "an object", &v);
  return v;
}

std::map<std::string, std::string> ReportReader::strings(std::string_view key) const {
  const auto& v = object(key);
  std::map<std::string, std::string> out;
  for (const auto& [name, item] : v.items()) {
    if (!item.is_string()) fail(fmt::format("{}.{}", key, name), "a string", &item);
    out.emplace(name, item.get<std::string>());
  }
  return out;
}

void ReportReader::invalid(std::string_view key, std::string_view reason) const {
  throw DataError(fmt::format("{}: {}: {}", path_, key, reason));
}

std::pair<int64_t, int64_t> shard_block(int64_t index, int64_t count, int64_t n) {
  return {index * n / count, (index + 1) * n / count};
}

BaselineReport read_baseline_report(const std::string& path) {
  const ReportReader report(path, "baseline report");
  BaselineReport baseline;
  baseline.bpd = read_mean(report, "metrics.bpd");
  if (std::isnan(baseline.bpd.mean)) {
    throw DataError(fmt::format("{}: baseline report has no bpd (metrics.bpd.mean is null)", path));
  }
  if (std::isnan(baseline.bpd.std_error)) baseline.bpd.std_error = 0.0;
  baseline.data_sha256 = read_data_record(report).sha256;
  return baseline;
}

namespace {

RunReport read_run(const ReportReader& r) {
  const auto tool = r.string("tool.name");
  const auto command = r.string("tool.command");
  if (tool != "flowlik" || command != "score") {
    throw DataError(
        fmt::format("{}: a report of {} {}, not of flowlik score", r.path(), tool, command));
  }
  RunReport report;
  report.tool_version = r.string("tool.version");
  report.model = read_model_record(r);
  report.data = read_data_record(r);
  const auto n = report.data.n;
  const auto dim = report.data.dim;
  if (n < 0 || n > kMaxReportCount || dim < 1 || dim > kMaxReportCount) {
    throw DataError(fmt::format("{}: data.N = {} and data.D = {} are not the size of a dataset",
                                r.path(), n, dim));
  }
  report.preprocessing = read_preprocessing(r);
  if (r.contains("preprocessing.caveat")) report.caveat = r.string("preprocessing.caveat");
  report.options = read_options(r);
  report.summary = read_summary(r);
  report.wall_seconds = r.number("wall_time_s");
  if (r.contains("round_trip")) report.round_trip = read_round_trip(r);
  if (r.contains("exact_trace_rows")) report.exact_trace_rows = r.string("exact_trace_rows");
  if (r.contains("protocol")) report.protocol = read_protocol(r);
  if (r.contains("check_solve")) report.check_solve = read_solve_check(r);
  if (r.contains("shard")) report.shard = read_shard(r, n);
  if (r.contains("per_sample")) report.per_sample = r.string("per_sample");
  if (r.contains("resumed_samples")) report.resumed_samples = r.integer("resumed_samples");
  if (r.contains("budget_advice")) report.budget_advice = read_budget_advice(r);
  for (size_t i = 0; i < r.size("gates"); ++i) {
    report.gates.push_back(read_gate(r, fmt::format("gates.{}", i)));
  }
  return report;
}

}  // namespace

RunReport read_run_report(const std::string& path) {
  return read_run(ReportReader(path, "report"));
}

RunReport read_shard_report(const std::string& path) {
  const ReportReader r(path, "shard report");
  for (const char* key : {"shard", "per_sample"}) {
    if (!r.contains(key)) {
      throw DataError(
          fmt::format("{}: not a shard report of flowlik score (no '{}'; run with --shard and "
                      "--per-sample)",
                      path, key));
    }
  }
  if (r.contains("tool.command") && r.string("tool.command") != "score") {
    throw DataError(
        fmt::format("{}: a report of flowlik {}; merge joins the shard reports of flowlik score",
                    path, r.string("tool.command")));
  }
  return read_run(r);
}

}  // namespace flowlik
