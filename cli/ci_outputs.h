// Results in the forms CI systems read: JUnit XML (one test case per gate) and a Markdown summary for a
// job summary page.
#pragma once

#include <string>
#include <vector>

#include "likelihood/comparison.h"
#include "likelihood/report.h"

namespace flowlik::cli {

struct ModelRow {
  std::string name;
  const ScoreSummary* summary = nullptr;
};

// Throws OutputError naming the file.
void write_junit(const std::string& path, const std::vector<GateResult>& gates);
void write_markdown(const std::string& path, const std::vector<ModelRow>& models,
                    const std::vector<PairedDifference>& paired, const std::vector<GateResult>& gates);

}  // namespace flowlik::cli
