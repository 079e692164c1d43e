// The one place a trace estimator is chosen by name (shared/STYLE.md, code rule 3).
#pragma once

#include <memory>
#include <string>

#include "estimators/hutchinson_trace.h"
#include "estimators/trace_estimator.h"

namespace flowlik {

struct TraceSpec {
  std::string method = "exact";      // exact | hutchinson
  std::string noise = "rademacher";  // rademacher | gaussian (hutchinson only)
  int64_t probes = 1;                // K >= 1 (hutchinson only)
  uint64_t seed = 0;
  int64_t max_rows = 1 << 14;  // rows per batched autograd call of the exact trace
};

// Throws InvalidArgument naming the argument and listing the valid names.
std::unique_ptr<TraceEstimator> make_trace_estimator(const TraceSpec& spec);
ProbeNoise parse_probe_noise(const std::string& name);

}  // namespace flowlik
