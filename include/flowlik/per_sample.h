// The per-sample file of a run: one CSV row per sample (index, log-likelihood, bpd, NFE, status and
// the parts of each), written as each sample completes so that an interrupted run keeps what it
// did, and resumed from. The format and its guarantees are in docs/reference.md ("The per-sample
// file").
//
// While a run goes on its rows go to the journal PATH.partial, whose first line records the run's
// identity (RunOptions::resume receives it); when the run ends, the identity goes to PATH.run.json
// and the rows to PATH, a plain CSV.
//
//   flowlik::PerSampleFile file("scores.csv");  // one writer per file: held until destroyed
//   options.resume = [&](const nlohmann::json& id) { return file.open(id, /*resume=*/true); };
//   options.on_sample = [&](const flowlik::SampleResult& r) { file.write(r); };
//   auto report = flowlik::run_score(model, data, options);
//   file.commit();
#pragma once

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "flowlik/results.h"

namespace flowlik {

// The files a per-sample file PATH occupies: PATH.partial (the journal of a run in progress) and
// PATH.run.json (the identity of the run that wrote a finished PATH).
std::string journal_path(const std::string& path);
std::string identity_path(const std::string& path);

class PerSampleFile {
 public:
  // Takes the file's advisory lock (flock on its journal): another run that wants the same file is
  // refused with an OutputError naming it, so that a finished file always holds one run's rows.
  explicit PerSampleFile(std::string path);
  ~PerSampleFile();
  PerSampleFile(const PerSampleFile&) = delete;
  PerSampleFile& operator=(const PerSampleFile&) = delete;

  // Starts the journal of the run `identity`. With `resume`, the rows an interrupted (or finished)
  // run of the same identity left there are kept and returned, for RunOptions::resume; a last row
  // cut off mid-write is dropped (its sample is scored again) and said through on_note. Throws
  // InvalidArgument naming "resume" when the file was written by another run or records no
  // identity, DataError naming the file when it is malformed or holds a sample twice.
  std::vector<SampleResult> open(const nlohmann::json& identity, bool resume,
                                 const std::function<void(const std::string&)>& on_note = {});
  void write(const SampleResult& result);  // after open
  // Writes the identity to identity_path(path), then the rows to path, each atomically, and removes
  // the journal: once every sample of the run is written.
  void commit();
  const std::string& path() const { return path_; }

 private:
  struct Files;
  std::string path_;
  std::unique_ptr<Files> files_;
};

// Reads a finished per-sample file strictly: DataError naming the file and line for a wrong header
// or a malformed row, or when its last row was cut off mid-write.
std::vector<SampleResult> read_per_sample(const std::string& path);

}  // namespace flowlik
