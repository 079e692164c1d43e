// PerSampleFile and read_per_sample (flowlik/per_sample.h), over the journal of io/sample_csv.h.
#include "flowlik/per_sample.h"

#include <fmt/format.h>

#include <filesystem>
#include <optional>
#include <set>

#include "flowlik/error.h"
#include "flowlik/run.h"  // identity_difference
#include "io/sample_csv.h"

namespace flowlik {

struct PerSampleFile::Files {
  explicit Files(const std::string& path) : lock(path) {}
  JournalLock lock;
  std::optional<SampleCsvWriter> writer;
};

PerSampleFile::PerSampleFile(std::string path)
    : path_(std::move(path)), files_(std::make_unique<Files>(path_)) {}

PerSampleFile::~PerSampleFile() = default;

namespace {

// The rows an interrupted run (its journal) or a finished one (the file itself) left, checked to be
// of this run and each once; a row cut off by the interruption is dropped. Leaves the journal ready
// to be appended to. nullopt when there is nothing to resume (no file, or one killed before its
// header was written).
std::optional<std::vector<SampleResult>> resumable_rows(
    const std::string& path, const JournalLock& lock, const nlohmann::json& identity,
    const std::function<void(const std::string&)>& on_note) {
  namespace fs = std::filesystem;
  const auto journal = journal_path(path);
  std::error_code ec;
  // A finished run's file is checked where it is, and continued in the journal only once it is
  // accepted, so that it stays whole until replaced and a refusal leaves nothing behind.
  const bool finished = lock.was_empty();
  if (finished && !fs::exists(path, ec)) return std::nullopt;
  const auto& source = finished ? path : journal;
  auto csv = read_sample_csv(source);
  if (!csv.has_header) return std::nullopt;  // killed while writing its first lines
  const auto recorded = recorded_identity(source, csv);
  if (!recorded) {
    throw InvalidArgument(
        "resume", fmt::format("{} records no run identity (written by flowlik 0.1?); its rows "
                              "cannot be checked to belong to this run, so score afresh without "
                              "--resume",
                              source));
  }
  if (const auto diff = identity_difference(*recorded, identity); !diff.empty()) {
    throw InvalidArgument("resume", fmt::format("{} was written by another run: {}", source, diff));
  }
  std::set<int64_t> seen;
  for (const auto& r : csv.rows) {
    if (!seen.insert(r.index).second) {
      throw DataError(fmt::format("{}: holds sample {} twice", source, r.index));
    }
  }
  if (csv.partial_tail && on_note) {
    on_note(fmt::format("{}: dropping a last row cut off mid-write; its sample is scored again",
                        source));
  }
  if (finished) {
    continue_in_journal(path, csv, *recorded);
  } else if (csv.partial_tail) {
    fs::resize_file(journal, csv.complete_bytes);
  }
  if (on_note) {
    on_note(fmt::format("resuming: {} samples already in {}", csv.rows.size(), journal));
  }
  return std::move(csv.rows);
}

}  // namespace

std::vector<SampleResult> PerSampleFile::open(
    const nlohmann::json& identity, bool resume,
    const std::function<void(const std::string&)>& on_note) {
  std::vector<SampleResult> done;
  bool append = false;
  if (resume) {
    if (auto rows = resumable_rows(path_, files_->lock, identity, on_note)) {
      done = std::move(*rows);
      append = true;
    }
  }
  files_->writer.emplace(path_, identity, append);
  return done;
}

void PerSampleFile::write(const SampleResult& result) {
  if (!files_->writer) throw std::logic_error("PerSampleFile::write before open");
  files_->writer->write(result);
}

void PerSampleFile::commit() {
  if (!files_->writer) throw std::logic_error("PerSampleFile::commit before open");
  files_->writer->commit();
}

std::vector<SampleResult> read_per_sample(const std::string& path) {
  auto csv = read_sample_csv(path);
  if (csv.partial_tail) {
    throw DataError(fmt::format("{}: truncated: its last row was cut off mid-write", path));
  }
  return std::move(csv.rows);
}

}  // namespace flowlik
