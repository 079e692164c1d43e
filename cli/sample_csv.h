// Per-sample results as CSV, one row per sample, written as each completes so that nothing done is lost,
// and read back strictly for --resume and `flowlik merge`.
#pragma once

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "likelihood/score.h"

namespace flowlik::cli {

class SampleCsvWriter {
 public:
  // Creates the file with its header, or (append) adds rows to an existing one. Throws OutputError
  // naming the file if it cannot be opened.
  explicit SampleCsvWriter(const std::string& path, bool append = false);
  void write(const SampleResult& result);

 private:
  std::string path_;
  std::ofstream out_;
};

struct SampleCsv {
  std::vector<SampleResult> rows;  // in file order
  uint64_t complete_bytes = 0;     // length of the header and every complete row
  bool partial_tail = false;       // the file ends in a row cut off mid-write (no final newline)
};

// Throws DataError naming the file and line for a wrong header or a malformed complete row.
SampleCsv read_sample_csv(const std::string& path);

}  // namespace flowlik::cli
