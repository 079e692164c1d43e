// Hutchinson's estimator: tr J = E[e^T J e] for probes with E[e e^T] = I (shared/MATH.md section
// 3). Probes are drawn once per sample from the counter-based generator keyed by (seed, sample,
// probe) and held fixed for the whole solve, as FFJORD does: the ODE stays smooth and the estimate
// unbiased.
#pragma once

#include <cstdint>

#include "estimators/trace_estimator.h"
#include "flowlik/options.h"  // ProbeNoise

namespace flowlik {

class HutchinsonTrace final : public TraceEstimator {
 public:
  HutchinsonTrace(ProbeNoise noise, int64_t probes, uint64_t seed)
      : noise_(noise), probes_(probes), seed_(seed) {}

  int64_t num_estimates() const override { return probes_; }
  // [K, B, D]
  torch::Tensor draw_probes(std::span<const int64_t> samples, int64_t dim,
                            torch::TensorOptions options,
                            std::span<const int64_t> draws = {}) const override;
  using TraceEstimator::evaluate;
  VelocityAndTrace evaluate(const JacobianProducts& field, const torch::Tensor& x,
                            const torch::Tensor& t, const torch::Tensor& probes,
                            const torch::Tensor& labels) const override;
  std::string name() const override { return "hutchinson"; }

 private:
  ProbeNoise noise_;
  int64_t probes_;
  uint64_t seed_;
};

}  // namespace flowlik
