// A self-contained HTML report a person can look at: the summary tables and inline SVG plots
// (per-sample bits/dim histogram for each model, paired-difference distributions, and the metric
// over time from the history). No scripts and no external files.
#pragma once

#include <string>
#include <vector>

#include "flowlik/history.h"
#include "flowlik/results.h"
#include "flowlik/run.h"

namespace flowlik::cli {

// `paired` and `paired_values` line up: the per-sample bpd differences of each pair. Throws
// OutputError.
void write_html_report(const std::string& path, const std::vector<const RunReport*>& models,
                       const std::vector<PairedDifference>& paired,
                       const std::vector<std::vector<double>>& paired_values,
                       const std::vector<GateResult>& gates,
                       const std::vector<HistoryRow>& history);

}  // namespace flowlik::cli
