#include "likelihood/sample.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "estimators/counter_rng.h"
#include "estimators/trace_factory.h"
#include "flowlik/error.h"
#include "likelihood/model/prior.h"
#include "likelihood/ode/cnf_solver.h"
#include "likelihood/ode/per_sample_solver.h"

namespace flowlik {
namespace {

// x0 ~ N(0, scale^2 I) per index, keyed by (seed, index): [B, D] float64 on the CPU.
torch::Tensor prior_points(const VelocityField& field, uint64_t seed,
                           std::span<const int64_t> indices) {
  const int64_t dim = field.dim();
  auto x = torch::empty({static_cast<int64_t>(indices.size()), dim}, torch::kFloat64);
  auto* data = x.data_ptr<double>();
  for (size_t b = 0; b < indices.size(); ++b) {
    const RandomKey key{seed, RandomStream::kPrior, static_cast<uint64_t>(indices[b]), 0};
    fill_standard_normal(key, std::span<double>(data + b * dim, static_cast<size_t>(dim)));
  }
  return x * field.contract().prior_scale;
}

SolverSpec forward(SolverSpec spec) {
  spec.direction = Direction::kToData;
  return spec;
}

// A solve's rows toward `direction`'s end, whatever the solver: an adaptive one steps each row
// apart (solve_rows), a fixed-step one solves the batch and, when that fails, each row alone.
// Returns one RowSolution per row, in row order.
std::vector<RowSolution> solve_all(const VelocityField& field, const TraceEstimator& trace,
                                   const ScoreSpec& spec, const SolveRows& rows) {
  const int64_t count = rows.count();
  std::vector<RowSolution> out(static_cast<size_t>(count));
  if (is_adaptive(spec.solver.kind)) {
    int64_t fed = 0;
    const RowFeed feed = [&](int64_t max_rows) {
      const int64_t n = std::min(max_rows, count - fed);
      if (n <= 0) return SolveRows{};
      SolveRows part{rows.x.narrow(0, fed, n),
                     rows.probes.defined() ? rows.probes.narrow(1, fed, n) : torch::Tensor(),
                     rows.labels.defined() ? rows.labels.narrow(0, fed, n) : torch::Tensor()};
      fed += n;
      return part;
    };
    solve_rows(field, trace, spec.solver, spec.batch_size, feed,
               [&](RowSolution row) { out[static_cast<size_t>(row.row)] = std::move(row); });
    return out;
  }
  const auto solve_batch = [&](int64_t first, int64_t n) {
    const auto solution = integrate_to_prior(
        field, trace, rows.x.narrow(0, first, n),
        rows.probes.defined() ? rows.probes.narrow(1, first, n) : torch::Tensor(), spec.solver,
        rows.labels.defined() ? rows.labels.narrow(0, first, n) : torch::Tensor());
    for (int64_t r = 0; r < n; ++r) {
      auto& row = out[static_cast<size_t>(first + r)];
      row.row = first + r;
      row.x_prior = solution.x_prior[r];
      row.log_density_change = solution.log_density_change[r];
      row.nfe = solution.nfe;
    }
  };
  for (int64_t first = 0; first < count; first += spec.batch_size) {
    const int64_t n = std::min(spec.batch_size, count - first);
    try {
      solve_batch(first, n);
    } catch (const IntegrationError&) {
      for (int64_t r = first; r < first + n; ++r) {
        try {
          solve_batch(r, 1);
        } catch (const IntegrationError& failure) {
          auto& row = out[static_cast<size_t>(r)];
          row.row = r;
          row.ok = false;
          row.failure = failure.what();
          row.nfe = failure.nfe();
        }
      }
    }
  }
  return out;
}

}  // namespace

VelocityField bound_for_sampling(const VelocityField& field, int64_t count) {
  const auto& shape = field.contract().shape;
  if (!shape) {
    throw ModelError(
        fmt::format("{}: the manifest declares no 'shape'; sampling needs the shape of one sample "
                    "(docs/models.md, \"The model contract\")",
                    field.path()));
  }
  VelocityField bound = field;
  bound.bind_shape(*shape);
  bound.fit_rows_per_call(count);
  return bound;
}

void generate(const VelocityField& field, const TraceEstimator& trace, const ScoreSpec& spec,
              uint64_t seed, std::span<const int64_t> indices, const torch::Tensor& labels,
              const GeneratedSink& sink) {
  if (field.contract().conditional && !labels.defined()) {
    throw InvalidArgument("labels", fmt::format("{} is class-conditional; give the class of each "
                                                "sample to generate",
                                                field.path()));
  }
  if (!field.contract().conditional && labels.defined()) {
    throw InvalidArgument(
        "labels", fmt::format("{} is not class-conditional; it takes no labels", field.path()));
  }
  if (labels.defined() && labels.size(0) != static_cast<int64_t>(indices.size())) {
    throw InvalidArgument("labels",
                          fmt::format("{} labels for {} samples", labels.size(0), indices.size()));
  }
  const ScoreSpec forward_spec{forward(spec.solver), spec.batch_size};
  const double ln2 = std::log(2.0);
  // A block at a time, so that memory does not grow with the number of samples.
  const auto block = static_cast<size_t>(std::max<int64_t>(spec.batch_size, 1) * 8);
  for (size_t first = 0; first < indices.size(); first += block) {
    const auto part = indices.subspan(first, std::min(block, indices.size() - first));
    const auto x0 = prior_points(field, seed, part);
    const auto probes = trace.draw_probes(part, field.dim(), field.options());
    const auto part_labels =
        labels.defined()
            ? labels.narrow(0, static_cast<int64_t>(first), static_cast<int64_t>(part.size()))
                  .to(field.options().device())
            : torch::Tensor();
    const auto rows = solve_all(field, trace, forward_spec,
                                SolveRows{x0.to(field.options()), probes, part_labels});
    const auto prior = normal_log_density(x0, field.contract().prior_scale);  // [B]
    for (size_t b = 0; b < part.size(); ++b) {
      const auto& row = rows[b];
      SampleResult r;
      r.index = part[b];
      r.nfe = row.nfe;
      if (!row.ok) {
        r.status = SampleStatus::kFailed;
        r.detail = row.failure;
        sink(r, torch::Tensor());
        continue;
      }
      const auto change = row.log_density_change.to(torch::kCPU, torch::kFloat64);  // [K]
      const auto estimates = prior[static_cast<int64_t>(b)] - change;  // log p1(x1) per probe
      const int64_t k = estimates.size(0);
      r.prior_log_density = prior[static_cast<int64_t>(b)].item<double>();
      r.model_log_likelihood = estimates.mean().item<double>();
      r.log_likelihood = r.model_log_likelihood;
      r.log_det = 0.0;
      r.bpd = -r.log_likelihood / (static_cast<double>(field.dim()) * ln2);
      r.estimator_std_error =
          k >= 2 ? std::sqrt(estimates.var().item<double>() / static_cast<double>(k)) : NAN;
      const auto x1 = row.x_prior.to(torch::kCPU, torch::kFloat64);
      if (!std::isfinite(r.log_likelihood) || !torch::isfinite(x1).all().item<bool>()) {
        r.status = SampleStatus::kNonFinite;
        r.detail = "log-likelihood or sample is not finite";
      }
      sink(r, x1);
    }
  }
}

GeneratedRows generate_rows(const VelocityField& field, const TraceEstimator& trace,
                            const ScoreSpec& spec, uint64_t seed, std::span<const int64_t> indices,
                            const torch::Tensor& labels, const SampleSink& on_sample) {
  GeneratedRows out;
  out.points =
      torch::full({static_cast<int64_t>(indices.size()), field.dim()}, NAN, torch::kFloat64);
  // The sink is called in the order of `indices`: the i-th call is row i.
  int64_t row = 0;
  generate(field, trace, spec, seed, indices, labels,
           [&](const SampleResult& r, const torch::Tensor& x1) {
             if (x1.defined()) out.points[row].copy_(x1);
             ++row;
             if (on_sample) on_sample(r);
             out.results.push_back(r);
           });
  return out;
}

RoundTripError round_trip(const VelocityField& field, const Dataset& data, const Preprocessing& pre,
                          const ScoreSpec& spec, std::span<const int64_t> indices) {
  // The states do not depend on the trace; one probe is its cheapest form.
  const auto trace =
      make_trace_estimator(TraceSpec{Trace::kHutchinson, ProbeNoise::kRademacher, 1, pre.seed, 1});
  RoundTripError out;
  double largest = 0.0;
  double sum = 0.0;
  const auto block = static_cast<size_t>(std::max<int64_t>(spec.batch_size, 1) * 8);
  for (size_t first = 0; first < indices.size(); first += block) {
    const auto part = indices.subspan(first, std::min(block, indices.size() - first));
    const auto index = torch::tensor(std::vector<int64_t>(part.begin(), part.end()));
    const auto labels = data.labels.defined()
                            ? data.labels.index_select(0, index).to(field.options().device())
                            : torch::Tensor();
    const auto y =
        to_model_space(data.values.index_select(0, index), part, pre).y.to(field.options());
    const auto probes = trace->draw_probes(part, field.dim(), field.options());
    const auto encoded = solve_all(field, *trace, spec, SolveRows{y, probes, labels});
    std::vector<int64_t> ok;
    std::vector<torch::Tensor> x0;
    for (size_t b = 0; b < part.size(); ++b) {
      if (encoded[b].ok) {
        ok.push_back(static_cast<int64_t>(b));
        x0.push_back(encoded[b].x_prior);
      }
    }
    if (!ok.empty()) {
      const auto kept = torch::tensor(ok);
      const auto decoded =
          solve_all(field, *trace, ScoreSpec{forward(spec.solver), spec.batch_size},
                    SolveRows{torch::stack(x0).to(field.options()),
                              probes.index_select(1, kept.to(probes.device())),
                              labels.defined() ? labels.index_select(0, kept.to(labels.device()))
                                               : torch::Tensor()});
      const auto y64 = y.to(torch::kCPU, torch::kFloat64);
      for (size_t j = 0; j < ok.size(); ++j) {
        if (!decoded[j].ok) continue;
        const auto b = ok[j];
        const auto error = (decoded[j].x_prior.to(torch::kCPU, torch::kFloat64) - y64[b]).abs();
        largest = std::max(largest, error.max().item<double>());
        sum += error.mean().item<double>();
        ++out.samples;
      }
    }
  }
  out.failed = static_cast<int64_t>(indices.size()) - out.samples;
  if (out.samples > 0) {
    out.max_abs_error = largest;
    out.mean_abs_error = sum / static_cast<double>(out.samples);
  }
  return out;
}

}  // namespace flowlik
