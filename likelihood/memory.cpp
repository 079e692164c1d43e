#include "likelihood/memory.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>

#include "estimators/hutchinson_trace.h"

namespace flowlik {
namespace {

constexpr int64_t kLibraryDefaultRows = 1 << 14;  // TraceOptions::max_rows

// The first number on the line of `path` that starts with `key` (a /proc file's "Key: N kB").
int64_t proc_field(const std::string& path, const std::string& key) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with(key + ":")) {
      try {
        return std::stoll(line.substr(key.size() + 1));
      } catch (const std::exception&) {
        return -1;
      }
    }
  }
  return -1;
}

// A cgroup file holding one number ("max" means none): -1 when absent or unlimited.
int64_t cgroup_number(const std::string& path) {
  std::ifstream in(path);
  std::string text;
  if (!(in >> text) || text == "max") return -1;
  try {
    return std::stoll(text);
  } catch (const std::exception&) {
    return -1;
  }
}

}  // namespace

int64_t status_bytes(const std::string& key) {
  const auto kb = proc_field("/proc/self/status", key);
  return kb < 0 ? -1 : kb * 1024;
}

void reset_peak_memory() { std::ofstream("/proc/self/clear_refs") << "5"; }

int64_t available_memory_bytes() {
  const auto kb = proc_field("/proc/meminfo", "MemAvailable");
  int64_t available = kb < 0 ? -1 : kb * 1024;
  // cgroup v2 (the unified hierarchy a container sees at /sys/fs/cgroup), then v1.
  for (const auto& [limit_file, usage_file] :
       {std::pair{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"},
        std::pair{"/sys/fs/cgroup/memory/memory.limit_in_bytes",
                  "/sys/fs/cgroup/memory/memory.usage_in_bytes"}}) {
    const auto limit = cgroup_number(limit_file);
    const auto usage = cgroup_number(usage_file);
    // v1 reports "no limit" as a number near 2^63.
    if (limit > 0 && usage >= 0 && limit < (int64_t{1} << 60)) {
      const auto left = std::max<int64_t>(limit - usage, 0);
      available = available < 0 ? left : std::min(available, left);
      break;
    }
  }
  return available;
}

double exact_bytes_per_row(const VelocityField& field) {
  const int64_t rows = std::min<int64_t>(field.dim(), 64);
  const auto x = torch::zeros({1, field.dim()}, field.options());
  const auto labels = field.contract().conditional
                          ? torch::zeros({1}, field.options().dtype(torch::kInt64))
                          : torch::Tensor();
  const double t = 0.5 * (field.contract().t_data() + field.contract().t_prior());
  // R rows of vector-Jacobian products on one sample cost what R rows of the exact trace's chunk
  // do (the same products, batched the same way).
  const HutchinsonTrace chunk(ProbeNoise::kRademacher, rows, 0);
  const auto probes = chunk.draw_probes(std::vector<int64_t>{0}, field.dim(), field.options());
  chunk.evaluate(field, x, t, probes, labels);  // warm-up: first-call allocations are not rows
  const int64_t before = status_bytes("VmRSS");
  reset_peak_memory();
  chunk.evaluate(field, x, t, probes, labels);
  const int64_t peak = status_bytes("VmHWM");
  if (before < 0 || peak < before) return std::numeric_limits<double>::quiet_NaN();
  // At least a page per row: a chunk served from memory already in the heap measures as free.
  return std::max(static_cast<double>(peak - before) / static_cast<double>(rows), 4096.0);
}

RowBudget rows_for_memory(double bytes_per_row, int64_t budget_bytes, int64_t available_bytes) {
  RowBudget out;
  const bool from_available = budget_bytes <= 0;
  out.budget_bytes =
      from_available ? (available_bytes < 0 ? -1 : available_bytes / 2) : budget_bytes;
  out.bytes_per_row = bytes_per_row;
  if (out.budget_bytes < 0 || !std::isfinite(bytes_per_row) || bytes_per_row <= 0.0) {
    out.max_rows = kLibraryDefaultRows;
    out.how =
        fmt::format("{} (the library default: the memory available could not be measured here)",
                    kLibraryDefaultRows);
    return out;
  }
  const double fit = std::floor(static_cast<double>(out.budget_bytes) / bytes_per_row);
  out.max_rows =
      static_cast<int64_t>(std::clamp(fit, 1.0, static_cast<double>(kLibraryDefaultRows)));
  out.how = fmt::format("{} rows: a budget of {:.0f} MB ({}) at {:.3f} MB per row measured",
                        out.max_rows, static_cast<double>(out.budget_bytes) / 1e6,
                        from_available ? "half of the memory available" : "--memory",
                        bytes_per_row / 1e6);
  return out;
}

}  // namespace flowlik
