#include "estimators/trace_factory.h"

#include <fmt/format.h>

#include "estimators/exact_trace.h"
#include "flowlik/error.h"

namespace flowlik {

std::unique_ptr<TraceEstimator> make_trace_estimator(const TraceSpec& spec) {
  if (spec.method == Trace::kExact) {
    if (spec.max_rows < 1) throw InvalidArgument("max_rows", "must be at least 1");
    return std::make_unique<ExactTrace>(spec.max_rows);
  }
  if (spec.probes < 1) {
    throw InvalidArgument("probes", fmt::format("must be at least 1, got {}", spec.probes));
  }
  return std::make_unique<HutchinsonTrace>(spec.noise, spec.probes, spec.seed);
}

}  // namespace flowlik
