#include "likelihood/cost.h"

#include <algorithm>
#include <chrono>
#include <numeric>
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
  // Timed on a whole block of rows, the sample repeated, and divided by its rows: a run of many
  // samples calls the network so (one sample alone would be padded to the block, or, where the
  // network takes any number of rows, pay a call's overhead alone).
  const int64_t block = field.rows_per_call();
  const auto xs = x.expand({block, x.size(1)}).contiguous();
  const auto ls = labels.defined() ? labels.expand({block}).contiguous() : labels;
  const auto per_sample = [&](double ms) { return ms / static_cast<double>(block); };
  {
    torch::NoGradGuard no_grad;
    field.evaluate(xs, t_mid, ls);  // warm-up
    cost.velocity_ms = per_sample(milliseconds([&] { field.evaluate(xs, t_mid, ls); }));
  }
  std::vector<int64_t> samples(static_cast<size_t>(block));
  std::iota(samples.begin(), samples.end(), 0);
  const HutchinsonTrace one_probe(ProbeNoise::kRademacher, 1, 0);
  const auto probe = one_probe.draw_probes(samples, field.dim(), field.options());
  one_probe.evaluate(field, xs, t_mid, probe, ls);  // warm-up
  cost.hutchinson_ms =
      per_sample(milliseconds([&] { one_probe.evaluate(field, xs, t_mid, probe, ls); }));

  // The exact trace is D rows of vector-Jacobian products per sample, in chunks of --max-rows; the
  // cost of R rows is that of R Hutchinson probes, measured on a chunk of at most 64 rows.
  cost.exact_rows = std::min<int64_t>(field.dim(), 64);
  const HutchinsonTrace chunk(ProbeNoise::kRademacher, cost.exact_rows, 0);
  const auto probes = chunk.draw_probes(samples, field.dim(), field.options());
  const double chunk_ms =
      per_sample(milliseconds([&] { chunk.evaluate(field, xs, t_mid, probes, ls); }));
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
  // seconds, in calls of the block a run of one sample takes.
  VelocityField alone = field;
  alone.fit_rows_per_call(1);
  const auto probe_one =
      one_probe.draw_probes(std::vector<int64_t>{0}, field.dim(), field.options());
  SolverSpec spec;
  spec.max_nfe = std::clamp<int64_t>(
      static_cast<int64_t>(30e3 / std::max(cost.hutchinson_ms, 1e-3)), 50, 5000);
  const auto start = std::chrono::steady_clock::now();
  try {
    const auto solution = integrate_to_prior(alone, one_probe, x, probe_one, spec, labels);
    cost.nfe = solution.nfe;
    cost.log_likelihood = model_log_density(alone, solution).select(1, 0).item<double>();
  } catch (const IntegrationError& e) {
    cost.solve_status = std::string("failed: ") + e.what();
    cost.nfe = e.nfe();
  }
  cost.solve_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return cost;
}

}  // namespace flowlik
