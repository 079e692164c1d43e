// Results in the forms CI systems read: JUnit XML (one test case per gate) and a Markdown summary
// for a job summary page.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "flowlik/results.h"
#include "flowlik/run.h"

namespace flowlik::cli {

// The gate options shared by `score` and `compare`.
struct GateArguments {
  std::optional<double> max_regression;  // bpd
  std::string rule = "mean";
  std::string junit;
  std::string markdown;
};
// `limit_help` says what the limit is measured against.
void add_gate_options(CLI::App& command, GateArguments& args, const std::string& limit_help);

// The program's exit status for a run's gates: kGateFailed if one failed, else kOk.
int gates_exit_code(const std::vector<GateResult>& gates);

// Throws OutputError naming the file.
void write_junit(const std::string& path, const std::vector<GateResult>& gates);
void write_markdown(const std::string& path, const std::vector<const RunReport*>& models,
                    const std::vector<PairedDifference>& paired,
                    const std::vector<GateResult>& gates);

}  // namespace flowlik::cli
