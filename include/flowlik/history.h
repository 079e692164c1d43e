// A history of results in SQLite, for nightly runs: each scored model appends one row. Writers in
// separate processes may share a file: each append is one transaction, SQLite's locking serialises
// them, and a writer waits (up to a timeout) for the lock rather than failing or losing its row.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace flowlik {

struct HistoryRow {
  int64_t id = 0;
  std::string time_utc;  // ISO 8601
  std::string command;
  std::string model_path;
  std::string model_sha256;
  std::string data_path;
  std::string data_sha256;
  double bpd_mean = 0.0;
  double bpd_stderr = 0.0;
  double log_likelihood_mean = 0.0;
  int64_t samples_ok = 0;
  int64_t samples_total = 0;
  nlohmann::json report;  // the whole report of that model: contract, options, metrics
};

// Appends a score report (as flowlik::to_json writes a RunReport). Throws OutputError naming the
// file.
void append_history(const std::string& path, const std::string& command,
                    const nlohmann::json& report);

// Rows in insertion order; `model_filter`, if not empty, keeps rows whose model path or sha256
// matches. Throws DataError naming the file.
std::vector<HistoryRow> read_history(const std::string& path, const std::string& model_filter = "");

}  // namespace flowlik
