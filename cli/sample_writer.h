// Per-sample results as CSV, one row per sample, written as each completes so that nothing done is lost.
#pragma once

#include <fstream>
#include <string>

#include "likelihood/score.h"

namespace flowlik::cli {

class SampleCsvWriter {
 public:
  // Throws OutputError naming the file if it cannot be created.
  explicit SampleCsvWriter(const std::string& path);
  void write(const SampleResult& result);

 private:
  std::string path_;
  std::ofstream out_;
};

}  // namespace flowlik::cli
