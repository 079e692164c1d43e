#include "cli/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <string>

namespace flowlik::cli {
namespace {

std::string format_duration(double seconds) {
  const auto s = static_cast<int64_t>(seconds + 0.5);
  if (s >= 3600) return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
  if (s >= 60) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}s", s);
}

}  // namespace

Progress::Mode Progress::mode_for_stderr(bool quiet) {
  if (quiet) return Mode::kQuiet;
  return isatty(STDERR_FILENO) ? Mode::kBar : Mode::kLines;
}

Progress::Progress(Mode mode, int64_t total)
    : mode_(mode), total_(total), start_(std::chrono::steady_clock::now()), last_draw_(start_) {
  // Plain lines every 10% of the work, so a log file stays short.
  next_line_at_ = std::max<int64_t>(1, total_ / 10);
}

void Progress::advance() {
  ++done_;
  if (mode_ == Mode::kQuiet) return;
  const auto now = std::chrono::steady_clock::now();
  if (mode_ == Mode::kBar) {
    if (now - last_draw_ < std::chrono::milliseconds(100) && done_ < total_) return;
  } else {
    if (done_ < next_line_at_ && done_ < total_) return;
    next_line_at_ += std::max<int64_t>(1, total_ / 10);
  }
  last_draw_ = now;
  draw();
}

void Progress::advance_to(int64_t done, int64_t total) {
  if (total != total_) {
    total_ = total;
    next_line_at_ = std::max<int64_t>(1, total_ / 10);
  }
  done_ = done - 1;
  advance();
}

void Progress::finish() {
  if (mode_ == Mode::kBar) std::fputs("\n", stderr);
}

void Progress::draw() {
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = elapsed > 0 ? done_ / elapsed : 0.0;
  const std::string eta = rate > 0 ? format_duration((total_ - done_) / rate) : "?";
  if (mode_ == Mode::kBar) {
    constexpr int kWidth = 30;
    const int filled = total_ > 0 ? static_cast<int>(kWidth * done_ / total_) : kWidth;
    fmt::print(stderr, "\r[{}{}] {}/{} samples  {:.1f}/s  {} left ", std::string(filled, '#'),
               std::string(kWidth - filled, '.'), done_, total_, rate, eta);
  } else {
    fmt::print(stderr, "scored {}/{} samples ({:.0f}%), {:.1f}/s, {} left\n", done_, total_,
               100.0 * done_ / std::max<int64_t>(total_, 1), rate, eta);
  }
  std::fflush(stderr);
}

}  // namespace flowlik::cli
