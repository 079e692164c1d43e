#include "estimators/trace_factory.h"

#include <fmt/format.h>

#include "estimators/exact_trace.h"
#include "flowlik/error.h"

namespace flowlik {

ProbeNoise parse_probe_noise(const std::string& name) {
  if (name == "rademacher") return ProbeNoise::kRademacher;
  if (name == "gaussian") return ProbeNoise::kGaussian;
  throw InvalidArgument(
      "noise", fmt::format("unknown probe distribution '{}' (valid: rademacher, gaussian)", name));
}

std::unique_ptr<TraceEstimator> make_trace_estimator(const TraceSpec& spec) {
  if (spec.method == "exact") {
    if (spec.max_rows < 1) throw InvalidArgument("max_rows", "must be at least 1");
    return std::make_unique<ExactTrace>(spec.max_rows);
  }
  if (spec.method == "hutchinson") {
    if (spec.probes < 1) {
      throw InvalidArgument("probes", fmt::format("must be at least 1, got {}", spec.probes));
    }
    return std::make_unique<HutchinsonTrace>(parse_probe_noise(spec.noise), spec.probes, spec.seed);
  }
  throw InvalidArgument(
      "trace", fmt::format("unknown trace estimator '{}' (valid: exact, hutchinson)", spec.method));
}

}  // namespace flowlik
