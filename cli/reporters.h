// The outputs of a finished `score` or `compare` run, each behind one interface (shared/STYLE.md:
// one level of virtual dispatch, for an open set chosen at run time): the JSON report (-o), the
// history row
// (--history), the HTML report (--html), JUnit XML (--junit) and Markdown (--markdown). The
// per-sample CSV (--per-sample) is not among them: it is written as each sample completes
// (io/sample_csv.h), so that an interrupted run keeps what it did.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/ci_outputs.h"
#include "cli/scoring.h"
#include "flowlik/results.h"
#include "flowlik/run.h"

namespace flowlik::cli {

// Everything a run reports, once, for every output form.
struct RunOutcome {
  std::vector<const RunReport*> models;  // score: one; compare: each model's
  std::vector<PairedDifference> paired;  // compare: every pair
  std::vector<GateResult> gates;
  nlohmann::json report;                     // the JSON report
  std::vector<nlohmann::json> history_rows;  // the per-model reports appended to --history
  std::string history_model;  // whose history the HTML trend shows; empty: every model's
};

class Reporter {
 public:
  virtual ~Reporter() = default;
  // Throws OutputError naming the file.
  virtual void write(const RunOutcome& outcome) const = 0;
};

// The reporters of the outputs the options name, in the order they are to be written (the history
// before the HTML report, which plots it).
std::vector<std::unique_ptr<Reporter>> make_reporters(const ScoreArguments& scoring,
                                                      const GateArguments& gate,
                                                      const std::string& command);

}  // namespace flowlik::cli
