#include "likelihood/cost.h"

#include <algorithm>
#include <chrono>
#include <vector>

#include "estimators/hutchinson_trace.h"
#include "flowlik/error.h"
#include "likelihood/model/prior.h"
#include "likelihood/ode/cnf_solver.h"

namespace flowlik {
namespace {

constexpr int64_t kDefaultBatch = 32;  // `flowlik score`'s --batch-size

template <class F>
double milliseconds(F&& f) {
  const auto start = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

}  // namespace

ModelCost measure_cost(const VelocityField& field, const torch::Tensor& x,
                       const torch::Tensor& labels) {
  ModelCost cost;
  const double t_mid = 0.5 * (field.contract().t_data() + field.contract().t_prior());
  {
    torch::NoGradGuard no_grad;
    field.evaluate(x, t_mid, labels);  // warm-up
    cost.velocity_ms = milliseconds([&] { field.evaluate(x, t_mid, labels); });
  }
  const std::vector<int64_t> sample{0};
  const HutchinsonTrace one_probe(ProbeNoise::kRademacher, 1, 0);
  const auto probe = one_probe.draw_probes(sample, field.dim(), field.options());
  one_probe.evaluate(field, x, t_mid, probe, labels);  // warm-up
  cost.hutchinson_ms = milliseconds([&] { one_probe.evaluate(field, x, t_mid, probe, labels); });

  // The exact trace is D rows of vector-Jacobian products per sample, in chunks of --max-rows; the
  // cost of R rows is that of R Hutchinson probes on one sample, measured on a chunk of at most 64
  // rows.
  cost.exact_rows = std::min<int64_t>(field.dim(), 64);
  const HutchinsonTrace chunk(ProbeNoise::kRademacher, cost.exact_rows, 0);
  const auto probes = chunk.draw_probes(sample, field.dim(), field.options());
  const double chunk_ms = milliseconds([&] { chunk.evaluate(field, x, t_mid, probes, labels); });
  cost.exact_ms =
      chunk_ms * static_cast<double>(field.dim()) / static_cast<double>(cost.exact_rows);
  const int64_t before = status_bytes("VmRSS");
  cost.exact_budget = rows_for_memory(exact_bytes_per_row(field), 0, available_memory_bytes());
  if (before >= 0 && std::isfinite(cost.exact_budget.bytes_per_row)) {
    const double rows_at_once =
        static_cast<double>(std::min(field.dim() * kDefaultBatch, cost.exact_budget.max_rows));
    cost.exact_peak_bytes =
        static_cast<double>(before) + cost.exact_budget.bytes_per_row * rows_at_once;
  }

  // One sample solved with the score defaults but the Hutchinson trace, bounded to about 30
  // seconds.
  SolverSpec spec;
  spec.max_nfe = std::clamp<int64_t>(
      static_cast<int64_t>(30e3 / std::max(cost.hutchinson_ms, 1e-3)), 50, 5000);
  const auto start = std::chrono::steady_clock::now();
  try {
    const auto solution = integrate_to_prior(field, one_probe, x, probe, spec, labels);
    cost.nfe = solution.nfe;
    cost.log_likelihood = model_log_density(field, solution).select(1, 0).item<double>();
  } catch (const IntegrationError& e) {
    cost.solve_status = std::string("failed: ") + e.what();
    cost.nfe = e.nfe();
  }
  cost.solve_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return cost;
}

}  // namespace flowlik
