// Reports read back (by `merge` and by `score --baseline`): every key checked, every mistake a
// DataError naming the file and the dotted key, so that no hand-edited or truncated report reaches
// an internal error.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "flowlik/error.h"
#include "flowlik/results.h"
#include "flowlik/run.h"

namespace flowlik {

class ReportReader {
 public:
  // Reads and parses `path` (a regular file of at most 256 MiB, nested at most kMaxJsonDepth deep).
  // `what` names the kind of report for messages ("baseline report", "shard report").
  ReportReader(const std::string& path, std::string_view what);

  const std::string& path() const { return path_; }
  const nlohmann::json& json() const { return json_; }
  bool contains(std::string_view key) const;

  // The value at a dotted key ("shard.count", "gates.0.name": an array's element by its index),
  // checked for its type.
  const nlohmann::json& value(std::string_view key) const;
  int64_t integer(std::string_view key) const;
  uint64_t unsigned_integer(std::string_view key) const;
  double number(std::string_view key) const;
  bool boolean(std::string_view key) const;
  // The length of the array at `key`; 0 when there is none.
  size_t size(std::string_view key) const;
  std::optional<double> number_or_null(std::string_view key) const;
  std::string string(std::string_view key) const;
  std::optional<std::string> string_or_null(std::string_view key) const;
  const nlohmann::json& object(std::string_view key) const;
  // An object whose values are all strings (a section's "sources").
  std::map<std::string, std::string> strings(std::string_view key) const;
  bool is_null(std::string_view key) const { return value(key).is_null(); }
  // The string at `key` read by `parse` (one of the parse_* of flowlik/options.h or
  // flowlik/conventions.h, which throw InvalidArgument): a value it refuses is a DataError naming
  // the file and the key, with the parser's reason.
  template <class Parse>
  auto parsed(std::string_view key, Parse parse) const -> decltype(parse(std::string())) {
    const auto text = string(key);
    return checked(key, [&] { return parse(text); });
  }
  // f() for the value at `key`: an InvalidArgument it throws (a check of flowlik/conventions.h)
  // becomes a DataError naming the file and the key, with the check's reason.
  template <class F>
  auto checked(std::string_view key, F f) const -> decltype(f()) {
    try {
      return f();
    } catch (const InvalidArgument& e) {
      invalid(key, e.reason());
    }
  }
  // Throws the DataError "FILE: KEY: REASON" for a value of the right type that is not valid.
  [[noreturn]] void invalid(std::string_view key, std::string_view reason) const;
  // An array of integers, and an array of `size` numbers or nulls (a null reads as NaN).
  std::vector<int64_t> integers(std::string_view key) const;
  std::vector<double> numbers_or_null(std::string_view key, size_t size) const;

 private:
  // The value at a dotted key, or null when some part of the path is missing or not an object.
  const nlohmann::json* find(std::string_view key) const;
  [[noreturn]] void fail(std::string_view key, std::string_view expected,
                         const nlohmann::json* found) const;

  std::string path_;
  std::string what_;
  nlohmann::json json_;
};

// The reports flowlik reads back, as typed values: every field used is checked on reading, so that
// a hand-edited or truncated report is refused naming its file and key, never used half-read. Each
// section is read by the inverse of the function that writes it (likelihood/report.h).

// The largest count a report may hold (samples, dimensions, shards): beyond any dataset, and safe
// from overflow in the arithmetic on them.
inline constexpr int64_t kMaxReportCount = int64_t{1} << 40;

// The contiguous block [first, end) of n samples that shard `index` of `count` scores; the blocks
// of all shards cover 0..n-1 once.
std::pair<int64_t, int64_t> shard_block(int64_t index, int64_t count, int64_t n);

// A previous `flowlik score` report that `score --baseline` gates against.
struct BaselineReport {
  MeanEstimate bpd;  // a missing standard error (one sample) reads as 0
  std::string data_sha256;
};
BaselineReport read_baseline_report(const std::string& path);

// A `flowlik score` report read back whole, each section by the inverse of its writer
// (to_json(RunReport)). Not in the report, so empty in the value read: the samples' rows (the
// per-sample file holds them).
RunReport read_run_report(const std::string& path);
// The report of one shard of a `flowlik score --shard --per-sample` run, as `merge` joins them:
// also refuses a report that is not of a shard run, or whose block is not the one its index names.
RunReport read_shard_report(const std::string& path);

// The section readers, each beside its writer (likelihood/run.cpp; read_mean, read_data_record,
// read_shard and read_summary in likelihood/report.h).
RunReport::ModelRecord read_model_record(const ReportReader& report);
OptionsRecord read_options(const ReportReader& report);
ProtocolRecord read_protocol(const ReportReader& report);
BudgetAdvice read_budget_advice(const ReportReader& report);
SolveCheckReport read_solve_check(const ReportReader& report);
RoundTripError read_round_trip(const ReportReader& report);
GateResult read_gate(const ReportReader& report, const std::string& key);  // key: "gates.0"

}  // namespace flowlik
