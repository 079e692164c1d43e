// The memory the program may use, and the exact trace's rows per call sized to it: `--max-rows
// auto` (the default) measures the bytes one row of this model's Jacobian products takes, on one
// chunk, and takes as many rows as fit in the budget (`--memory`, default half of the memory
// available), so that a default `score --trace exact` of a large model is not killed by the kernel.
// Linux
// (/proc and cgroups); elsewhere the library's fixed default is used and the report says so.
#pragma once

#include <cstdint>
#include <string>

#include "likelihood/model/velocity_field.h"

namespace flowlik {

// A size in bytes from /proc/self/status: "VmRSS" now, "VmHWM" the peak since the last
// reset_peak_memory(); -1 where it cannot be read.
int64_t status_bytes(const std::string& key);
// Resets VmHWM to the current resident size (Linux 4.0 and later).
void reset_peak_memory();

// The memory this process could still take: MemAvailable, bounded by the cgroup's limit less its
// usage where one is set; -1 where it cannot be read.
int64_t available_memory_bytes();

// The resident bytes one row of the exact trace's batched Jacobian products takes for `field` (a
// chunk of up to 64 rows on one sample, measured as the peak resident size's growth); NaN where it
// cannot be measured.
double exact_bytes_per_row(const VelocityField& field);

// What `--max-rows auto` gives: the rows that fit in the budget, within [1, 16384].
struct RowBudget {
  int64_t max_rows = 1 << 14;
  int64_t budget_bytes = -1;  // -1: unknown (the library default is used)
  double bytes_per_row = 0.0;
  std::string how;  // for the report and the summary
};
// `budget_bytes` 0 means half of available_memory_bytes(). Pure arithmetic once measured.
RowBudget rows_for_memory(double bytes_per_row, int64_t budget_bytes, int64_t available_bytes);

}  // namespace flowlik
