// Per-sample results as CSV, one row per sample, written as each completes so that nothing done is
// lost, and read back strictly for --resume and `flowlik merge`.
//
// While a run goes on, rows go to the journal PATH.partial, which --resume continues; its first
// line records the identity of the run that wrote the rows (model and data digests, contract,
// preprocessing, seed, solver, estimator, shard) as a comment, `# flowlik-run {...}`, so that
// --resume never mixes rows of two runs. When every sample has been written, the identity goes to
// PATH.run.json with the SHA-256 of the rows it describes, and PATH becomes the rows alone: a plain
// CSV that every reader (pandas, csv, numpy, SQLite) reads with its defaults.
#pragma once

#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "flowlik/per_sample.h"  // journal_path, identity_path
#include "flowlik/results.h"     // SampleResult

namespace flowlik {

// One writer per per-sample file: an advisory lock (flock) on its journal PATH.partial, created
// empty if there is none, taken before the journal is read or written and held until the object is
// destroyed, after the journal has been renamed into place. Another run that wants the same file
// (two --resume runs started together) is refused, so the finished CSV always holds one run's rows.
// Throws OutputError naming the file.
class JournalLock {
 public:
  explicit JournalLock(const std::string& path);
  ~JournalLock();
  JournalLock(const JournalLock&) = delete;
  JournalLock& operator=(const JournalLock&) = delete;
  // Whether the journal was empty when the lock was taken (none existed, or one killed before its
  // first line): then there is nothing in it to resume.
  bool was_empty() const { return was_empty_; }

 private:
  int fd_ = -1;
  std::string journal_;
  bool created_ = false;
  bool was_empty_ = true;
};

class SampleCsvWriter {
 public:
  // Starts a new journal for `path` with the run's identity and the header, flushed at once so that
  // a run killed before its first row leaves a journal --resume accepts; or (append) adds rows to
  // the existing journal. Throws OutputError naming the file if it cannot be opened.
  SampleCsvWriter(const std::string& path, const nlohmann::json& identity, bool append = false);
  void write(const SampleResult& result);
  // Writes the identity to identity_path(path), then the rows to `path` (each atomically), and
  // removes the journal: called once every sample of the run has been written.
  void commit();

 private:
  std::string path_;
  std::string journal_;
  std::ofstream out_;
};

struct SampleCsv {
  std::optional<nlohmann::json>
      identity;                    // of the run that wrote the rows; absent in files of flowlik 0.1
  std::vector<SampleResult> rows;  // in file order
  bool has_header = false;         // the header line is complete
  uint64_t complete_bytes = 0;     // length of the header and every complete row
  bool partial_tail = false;       // the file ends in a row cut off mid-write (no final newline)
};

// Throws DataError naming the file and line for a wrong header or a malformed complete row.
SampleCsv read_sample_csv(const std::string& path);

// The identity of the run that wrote `csv` (read from `path`): its first line's (a journal, or a
// file of an earlier flowlik), else PATH.run.json's when that records this file's SHA-256; nullopt
// when there is neither. Throws DataError naming PATH.run.json when it is malformed or describes
// other rows (a run replacing the file was interrupted).
std::optional<nlohmann::json> recorded_identity(const std::string& path, const SampleCsv& csv);

// Starts the journal of `path` (held under its JournalLock) from the finished file's complete rows
// `csv`, with its identity line, so that a resumed run appends to it. Throws OutputError.
void continue_in_journal(const std::string& path, const SampleCsv& csv,
                         const nlohmann::json& identity);

}  // namespace flowlik
