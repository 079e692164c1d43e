#include "flowlik/history.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <fmt/format.h>
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <thread>

#include "flowlik/error.h"

namespace flowlik {
namespace {

constexpr int kBusyTimeoutMs = 60000;

constexpr const char* kSchema = R"(
CREATE TABLE IF NOT EXISTS runs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  time_utc TEXT NOT NULL,
  command TEXT NOT NULL,
  model_path TEXT NOT NULL,
  model_sha256 TEXT NOT NULL,
  data_path TEXT NOT NULL,
  data_sha256 TEXT NOT NULL,
  bpd_mean REAL NOT NULL,
  bpd_stderr REAL,
  log_likelihood_mean REAL NOT NULL,
  samples_ok INTEGER NOT NULL,
  samples_total INTEGER NOT NULL,
  report TEXT NOT NULL
))";

std::string now_utc() {
  const auto t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buffer;
}

// One attempt: the database opened, the row inserted in one immediate transaction.
void append_once(const std::string& path, const std::string& command,
                 const nlohmann::json& report) {
  SQLite::Database db(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE, kBusyTimeoutMs);
  // WAL lets readers go on while one writer appends; the busy timeout makes concurrent writers
  // queue.
  db.exec("PRAGMA journal_mode=WAL");
  SQLite::Transaction transaction(db, SQLite::TransactionBehavior::IMMEDIATE);
  db.exec(kSchema);
  SQLite::Statement insert(
      db,
      "INSERT INTO runs (time_utc, command, model_path, model_sha256, data_path, "
      "data_sha256, bpd_mean, bpd_stderr, log_likelihood_mean, samples_ok, "
      "samples_total, report) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  const auto& m = report.at("metrics");
  insert.bind(1, now_utc());
  insert.bind(2, command);
  insert.bind(3, report.at("model").at("path").get<std::string>());
  insert.bind(4, report.at("model").at("sha256").get<std::string>());
  insert.bind(5, report.at("data").at("path").get<std::string>());
  insert.bind(6, report.at("data").at("sha256").get<std::string>());
  insert.bind(7, m.at("bpd").at("mean").get<double>());
  if (m.at("bpd").at("stderr").is_number()) {
    insert.bind(8, m.at("bpd").at("stderr").get<double>());
  } else {
    insert.bind(8);
  }
  insert.bind(9, m.at("log_likelihood").at("mean").get<double>());
  insert.bind(10, report.at("samples").at("ok").get<int64_t>());
  insert.bind(11, report.at("samples").at("total").get<int64_t>());
  insert.bind(12, report.dump());
  insert.exec();
  transaction.commit();
}

}  // namespace

void append_history(const std::string& path, const std::string& command,
                    const nlohmann::json& report) {
  // The busy timeout queues writers once the database is in WAL mode, but SQLite answers "locked"
  // at once, without waiting, in the moments it does not call the busy handler: while a new file's
  // journal mode is being switched, or another connection recovers the WAL index. Six writers
  // starting together on a new file met that under load. Such an append is tried again, within
  // the same timeout; a failed attempt leaves nothing (its transaction rolls back).
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(kBusyTimeoutMs);
  for (int attempt = 1;; ++attempt) {
    try {
      append_once(path, command, report);
      return;
    } catch (const SQLite::Exception& e) {
      const int code = e.getErrorCode() & 0xff;  // the primary code of an extended one
      const bool busy = code == SQLITE_BUSY || code == SQLITE_LOCKED;
      if (!busy || std::chrono::steady_clock::now() >= deadline) {
        throw OutputError(fmt::format("{}: cannot append to history ({})", path, e.what()));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(std::min(10 * attempt, 200)));
    }
  }
}

std::vector<HistoryRow> read_history(const std::string& path, const std::string& model_filter) {
  std::vector<HistoryRow> rows;
  try {
    SQLite::Database db(path, SQLite::OPEN_READONLY, kBusyTimeoutMs);
    SQLite::Statement query(
        db,
        "SELECT id, time_utc, command, model_path, model_sha256, data_path, data_sha256, "
        "bpd_mean, bpd_stderr, log_likelihood_mean, samples_ok, samples_total, report "
        "FROM runs ORDER BY id");
    while (query.executeStep()) {
      HistoryRow r;
      r.id = query.getColumn(0).getInt64();
      r.time_utc = query.getColumn(1).getString();
      r.command = query.getColumn(2).getString();
      r.model_path = query.getColumn(3).getString();
      r.model_sha256 = query.getColumn(4).getString();
      r.data_path = query.getColumn(5).getString();
      r.data_sha256 = query.getColumn(6).getString();
      r.bpd_mean = query.getColumn(7).getDouble();
      r.bpd_stderr = query.getColumn(8).isNull() ? NAN : query.getColumn(8).getDouble();
      r.log_likelihood_mean = query.getColumn(9).getDouble();
      r.samples_ok = query.getColumn(10).getInt64();
      r.samples_total = query.getColumn(11).getInt64();
      r.report = nlohmann::json::parse(query.getColumn(12).getString());
      if (model_filter.empty() || r.model_path == model_filter || r.model_sha256 == model_filter) {
        rows.push_back(std::move(r));
      }
    }
  } catch (const SQLite::Exception& e) {
    throw DataError(fmt::format("{}: cannot read history ({})", path, e.what()));
  } catch (const nlohmann::json::exception& e) {
    throw DataError(fmt::format("{}: a history row holds a corrupt report ({})", path, e.what()));
  }
  return rows;
}

}  // namespace flowlik
