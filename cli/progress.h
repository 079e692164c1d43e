// Progress of a scoring run on stderr: a redrawn bar on a terminal, plain lines otherwise, or
// nothing.
#pragma once

#include <chrono>
#include <cstdint>

namespace flowlik::cli {

class Progress {
 public:
  enum class Mode { kQuiet, kBar, kLines };
  static Mode mode_for_stderr(bool quiet);

  Progress(Mode mode, int64_t total);
  void advance();  // one more sample done
  // `done` of `total` samples done (flowlik::RunOptions::on_progress); `total` may differ from the
  // constructor's.
  void advance_to(int64_t done, int64_t total);
  void finish();

 private:
  void draw();

  Mode mode_;
  int64_t total_;
  int64_t done_ = 0;
  int64_t next_line_at_ = 0;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace flowlik::cli
