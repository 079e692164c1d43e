// The one place a trace estimator is chosen (shared/STYLE.md, code rule 3).
#pragma once

#include <memory>
#include <string>

#include "estimators/hutchinson_trace.h"
#include "estimators/trace_estimator.h"

namespace flowlik {

struct TraceSpec {
  Trace method = Trace::kExact;
  ProbeNoise noise = ProbeNoise::kRademacher;  // hutchinson only
  int64_t probes = 1;                          // K >= 1 (hutchinson only)
  uint64_t seed = 0;
  int64_t max_rows = 1 << 14;  // rows per batched autograd call of the exact trace
};

// Throws InvalidArgument naming max_rows or probes when it is below 1.
std::unique_ptr<TraceEstimator> make_trace_estimator(const TraceSpec& spec);

}  // namespace flowlik
