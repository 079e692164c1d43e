#include "likelihood/score.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <vector>

#include "flowlik/error.h"
#include "likelihood/model/prior.h"
#include "likelihood/ode/per_sample_solver.h"

namespace flowlik {
namespace {

class BatchScorer {
 public:
  BatchScorer(const VelocityField& field, const TraceEstimator& trace, const Dataset& data,
              const Preprocessing& pre, const ScoreSpec& options, const SampleSink& sink)
      : field_(field), trace_(trace), data_(data), pre_(pre), options_(options), sink_(sink) {}

  // An adaptive solve: every row (sample b under draw m) has its own steps, and rows stream through
  // a batch of options.batch_size rows (continuous batching). Samples are passed to the sink in the
  // order of `indices`, each once all its draws have finished.
  void score_per_sample(std::span<const int64_t> indices) {
    const int64_t draws = std::max<int64_t>(pre_.draws, 1);
    const auto total_rows = static_cast<int64_t>(indices.size()) * draws;
    int64_t fed = 0;
    // Per row fed and not yet emitted: its log-determinant and dequantization log-density.
    std::map<int64_t, std::pair<double, double>> log_dets;
    std::map<int64_t, std::vector<RowSolution>> finished;  // per sample position, its finished rows
    size_t next_to_emit = 0;
    const RowFeed feed = [&](int64_t max_rows) {
      const int64_t count = std::min(max_rows, total_rows - fed);
      if (count <= 0) return SolveRows{};
      std::vector<int64_t> row_samples;
      std::vector<int64_t> row_draws;
      for (int64_t r = fed; r < fed + count; ++r) {
        row_samples.push_back(indices[static_cast<size_t>(r / draws)]);
        row_draws.push_back(r % draws);
      }
      auto rows = prepare(row_samples, row_draws);
      const auto log_det = rows.input.log_det.to(torch::kFloat64).contiguous();
      const auto log_q = rows.input.log_q.to(torch::kFloat64).contiguous();
      for (int64_t r = 0; r < count; ++r) {
        log_dets[fed + r] = {log_det.data_ptr<double>()[r], log_q.data_ptr<double>()[r]};
      }
      fed += count;
      return SolveRows{rows.input.y.to(field_.options()), rows.probes, rows.labels};
    };
    const RowSink sink = [&](RowSolution row) {
      const int64_t position = row.row / draws;
      auto& rows = finished[position];
      rows.push_back(std::move(row));
      while (next_to_emit < indices.size()) {
        const auto it = finished.find(static_cast<int64_t>(next_to_emit));
        if (it == finished.end() || static_cast<int64_t>(it->second.size()) < draws) break;
        emit_sample(indices[next_to_emit], draws, it->second, log_dets);
        finished.erase(it);
        ++next_to_emit;
      }
    };
    solve_rows(field_, trace_, options_.solver, options_.batch_size, feed, sink);
  }

  // spent: evaluations already spent on these samples by a failed solve of a larger batch.
  void score(std::span<const int64_t> batch, int64_t spent = 0) {
    // Row b * M + m is sample b under dequantization draw m: the M draws are solved together.
    const int64_t draws = std::max<int64_t>(pre_.draws, 1);
    std::vector<int64_t> row_samples;
    std::vector<int64_t> row_draws;
    for (const auto sample : batch) {
      for (int64_t m = 0; m < draws; ++m) {
        row_samples.push_back(sample);
        row_draws.push_back(m);
      }
    }
    const auto [input, probes, labels] = prepare(row_samples, row_draws);
    FlowSolution solution;
    try {
      solution = integrate_to_prior(field_, trace_, input.y.to(field_.options()), probes,
                                    options_.solver, labels);
    } catch (const IntegrationError& failure) {
      // Every evaluation of the batch evaluated each of a sample's M draws: M evaluations of it.
      const int64_t burnt = spent + failure.nfe() * draws;
      if (batch.size() > 1) {
        for (size_t i = 0; i < batch.size(); ++i) score(batch.subspan(i, 1), burnt);
        return;
      }
      SampleResult result;
      result.index = batch[0];
      result.status = SampleStatus::kFailed;
      result.detail = failure.what();
      result.nfe = burnt;
      sink_(result);
      return;
    }
    // As the per-sample solver counts it: every evaluation spent on the sample, each draw's own.
    solution.nfe = solution.nfe * draws + spent;
    emit(batch, draws, input, solution);
  }

 private:
  struct PreparedRows {
    ModelInput input;
    torch::Tensor probes;
    torch::Tensor labels;
  };

  // The model-space inputs, probes and labels of these rows (sample, draw), each keyed by its own
  // sample and draw so that it is the same in any batch.
  PreparedRows prepare(const std::vector<int64_t>& row_samples,
                       const std::vector<int64_t>& row_draws) const {
    const auto index = torch::tensor(row_samples);
    auto input = to_model_space(data_.values.index_select(0, index), row_samples, pre_, row_draws);
    auto probes = trace_.draw_probes(row_samples, data_.dim, field_.options(), row_draws);
    auto labels = data_.labels.defined()
                      ? data_.labels.index_select(0, index).to(field_.options().device())
                      : torch::Tensor();
    return {std::move(input), std::move(probes), std::move(labels)};
  }

  // One sample from its M finished rows.
  void emit_sample(int64_t sample, int64_t draws, std::vector<RowSolution>& rows,
                   std::map<int64_t, std::pair<double, double>>& log_dets) {
    std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.row < b.row; });
    int64_t nfe = 0;
    const RowSolution* failed = nullptr;
    std::vector<torch::Tensor> x_prior;
    std::vector<torch::Tensor> change;
    std::vector<double> log_det;
    std::vector<double> log_q;
    for (const auto& row : rows) {
      nfe += row.nfe;
      if (!row.ok && failed == nullptr) failed = &row;
      x_prior.push_back(row.x_prior);
      change.push_back(row.log_density_change);
      const auto [det, q] = log_dets.at(row.row);
      log_det.push_back(det);
      log_q.push_back(q);
      log_dets.erase(row.row);
    }
    if (failed != nullptr) {
      SampleResult result;
      result.index = sample;
      result.status = SampleStatus::kFailed;
      result.detail = failed->failure;
      result.nfe = nfe;
      sink_(result);
      return;
    }
    const int64_t one[] = {sample};
    ModelInput input{torch::Tensor(), torch::tensor(log_det, torch::kFloat64),
                     torch::tensor(log_q, torch::kFloat64)};
    emit(one, draws, input, FlowSolution{torch::stack(x_prior), torch::stack(change), nfe});
  }

  // Rows are b * M + m (see score). Per draw, the K trace estimates give K model log-likelihoods
  // (shared/MATH.md section 2), and the draw's bound is log p_model(y) + L - log q(u) - D ln K; per
  // sample the M draws combine as logmeanexp, the importance-weighted bound of shared/MATH.md
  // section 6, or as their mean (M = 1: the single draw's value either way).
  void emit(std::span<const int64_t> batch, int64_t draws, const ModelInput& input,
            const FlowSolution& solution) {
    const int64_t rows = static_cast<int64_t>(batch.size()) * draws;
    // [R] and [R, K], on the CPU.
    const auto prior = prior_log_density(field_, solution.x_prior);
    const auto estimates =
        prior.unsqueeze(1) + solution.log_density_change.to(torch::kCPU, torch::kFloat64);
    const int64_t probes = estimates.size(1);
    const auto model_ll = estimates.mean(1);  // [R]
    // The variance of a draw's mean over K probes: s^2 / K, from the spread between probes.
    const auto probe_var = probes >= 2 ? estimates.var(1) / static_cast<double>(probes)
                                       : torch::full_like(model_ll, NAN);
    const double offset = data_log_offset(pre_, data_.dim);
    const auto draw_ll =
        (model_ll + input.log_det.to(torch::kFloat64) - input.log_q.to(torch::kFloat64) - offset)
            .view({-1, draws});  // [B, M]
    const bool mean_bound = pre_.bound == DrawBound::kMean;
    const auto combined =
        mean_bound ? draw_ll.mean(1)
                   : torch::logsumexp(draw_ll, 1) - std::log(static_cast<double>(draws));  // [B]
    // Delta method for logmeanexp: L ~ sum_m w_m l_m with w = softmax(l), so a part of l's variance
    // that is independent across draws reaches L as sum_m w_m^2 var(l_m). The mean has w = 1 / M.
    const auto weights = mean_bound ? torch::full_like(draw_ll, 1.0 / static_cast<double>(draws))
                                    : torch::softmax(draw_ll, 1);
    const auto weight_squares = (weights * weights).sum(1);                               // [B]
    const auto estimator_var = (weights * weights * probe_var.view({-1, draws})).sum(1);  // [B]
    torch::Tensor dequant_var =
        torch::full({static_cast<int64_t>(batch.size())}, NAN, torch::kFloat64);
    if (draws >= 2) {
      // The spread between draws holds the probes' spread too; what is left is the
      // dequantization's.
      auto between = draw_ll.var(1);
      if (probes >= 2) between = (between - probe_var.view({-1, draws}).mean(1)).clamp_min(0.0);
      dequant_var = between * weight_squares;
    }
    const auto draw_ll_c = draw_ll.contiguous();
    const auto combined_c = combined.contiguous();
    const auto estimator_c = estimator_var.contiguous();
    const auto dequant_c = dequant_var.contiguous();
    const auto prior_c = prior.contiguous();
    const auto model_c = model_ll.contiguous();
    const auto log_det_c = input.log_det.to(torch::kFloat64).contiguous();
    const auto draw_a = draw_ll_c.accessor<double, 2>();
    const auto combined_a = combined_c.accessor<double, 1>();
    const auto estimator_a = estimator_c.accessor<double, 1>();
    const auto dequant_a = dequant_c.accessor<double, 1>();
    const auto prior_a = prior_c.accessor<double, 1>();
    const auto model_a = model_c.accessor<double, 1>();
    const auto log_det_a = log_det_c.accessor<double, 1>();
    (void)rows;
    for (size_t b = 0; b < batch.size(); ++b) {
      const auto i = static_cast<int64_t>(b);
      const int64_t first_row = i * draws;
      SampleResult result;
      result.index = batch[b];
      result.nfe = solution.nfe;
      // The first draw's parts; with M >= 2 the per-draw log-likelihoods are kept as well.
      result.prior_log_density = prior_a[first_row];
      result.model_log_likelihood = model_a[first_row];
      result.log_det = log_det_a[first_row];
      result.log_likelihood = combined_a[i];
      result.bpd = bits_per_dim(result.log_likelihood, data_.dim);
      result.estimator_std_error = std::sqrt(estimator_a[i]);
      result.dequant_std_error = std::sqrt(dequant_a[i]);
      if (draws >= 2) {
        for (int64_t m = 0; m < draws; ++m) result.draw_log_likelihoods.push_back(draw_a[i][m]);
      }
      if (!std::isfinite(result.log_likelihood)) {
        result.status = SampleStatus::kNonFinite;
        result.detail = "log-likelihood is not finite";
      }
      sink_(result);
    }
  }

  const VelocityField& field_;
  const TraceEstimator& trace_;
  const Dataset& data_;
  const Preprocessing& pre_;
  const ScoreSpec& options_;
  const SampleSink& sink_;
};

}  // namespace

std::string to_string(SampleStatus status) {
  switch (status) {
    case SampleStatus::kOk:
      return "ok";
    case SampleStatus::kFailed:
      return "failed";
    case SampleStatus::kNonFinite:
      return "nonfinite";
  }
  return "unknown";
}

void score_dataset(const VelocityField& field, const TraceEstimator& trace, const Dataset& data,
                   const Preprocessing& pre, const ScoreSpec& options,
                   std::span<const int64_t> indices, const SampleSink& sink) {
  BatchScorer scorer(field, trace, data, pre, options, sink);
  if (is_adaptive(options.solver.kind)) {
    scorer.score_per_sample(indices);
    return;
  }
  const auto batch_size = static_cast<size_t>(options.batch_size);
  for (size_t first = 0; first < indices.size(); first += batch_size) {
    scorer.score(indices.subspan(first, std::min(batch_size, indices.size() - first)));
  }
}

std::vector<int64_t> spread_subset(std::span<const int64_t> candidates, int64_t n, uint64_t seed) {
  const auto size = static_cast<int64_t>(candidates.size());
  const int64_t count = std::min(n, size);
  std::vector<int64_t> picked;
  if (count <= 0) return picked;
  const auto offset = static_cast<int64_t>(seed % static_cast<uint64_t>(size));
  for (int64_t i = 0; i < count; ++i) {
    picked.push_back(candidates[static_cast<size_t>((offset + i * size / count) % size)]);
  }
  std::sort(picked.begin(), picked.end());
  return picked;
}

NoSampleScored all_failed_error(int64_t total) {
  return NoSampleScored(
      fmt::format("all {} samples failed to integrate; see the per-sample status", total));
}

ScoreSummary summarize(std::span<const SampleResult> results, int64_t dim) {
  auto summary = summarize_results(results, dim);
  if (summary.ok == 0) throw all_failed_error(summary.total);
  return summary;
}

ScoreSummary summarize_results(std::span<const SampleResult> results, int64_t dim) {
  ScoreSummary summary;
  summary.total = static_cast<int64_t>(results.size());
  std::vector<double> log_likelihoods;
  std::vector<double> bpds;
  double estimator_variance = 0.0;
  double dequant_variance = 0.0;
  double nfe_sum = 0.0;
  for (const auto& r : results) {
    nfe_sum += static_cast<double>(r.nfe);
    summary.nfe_max = std::max(summary.nfe_max, r.nfe);
    if (r.status != SampleStatus::kOk) continue;
    log_likelihoods.push_back(r.log_likelihood);
    bpds.push_back(r.bpd);
    estimator_variance += r.estimator_std_error * r.estimator_std_error;  // NaN propagates: K < 2
    dequant_variance += r.dequant_std_error * r.dequant_std_error;        // NaN propagates: M < 2
  }
  summary.ok = static_cast<int64_t>(log_likelihoods.size());
  summary.nfe_mean = nfe_sum / std::max<int64_t>(summary.total, 1);
  if (summary.ok == 0) {
    constexpr double kNone = std::numeric_limits<double>::quiet_NaN();
    summary.log_likelihood = summary.bpd = MeanEstimate{0, kNone, kNone, kNone, kNone};
    return summary;
  }
  summary.log_likelihood = estimate_mean(log_likelihoods);
  summary.bpd = estimate_mean(bpds);
  summary.estimator_std_error_log_likelihood = std::sqrt(estimator_variance) / summary.ok;
  const double to_bpd = 1.0 / (static_cast<double>(dim) * std::log(2.0));
  summary.estimator_std_error_bpd = summary.estimator_std_error_log_likelihood * to_bpd;
  summary.dequant_std_error_log_likelihood = std::sqrt(dequant_variance) / summary.ok;
  summary.dequant_std_error_bpd = summary.dequant_std_error_log_likelihood * to_bpd;
  const auto known = [](double v) { return std::isfinite(v) ? v * v : 0.0; };
  const double total = summary.log_likelihood.std_error;
  if (std::isfinite(total)) {
    // With few samples the within-sample parts, estimated from each sample's own draws and probes,
    // can exceed the spread between samples that the total measures: then the data's part is not
    // identifiable (NaN, and the summary says so), not clamped to 0 beside a part larger than the
    // total.
    const double rest = total * total - known(summary.dequant_std_error_log_likelihood) -
                        known(summary.estimator_std_error_log_likelihood);
    summary.data_std_error_log_likelihood =
        rest >= 0.0 ? std::sqrt(rest) : std::numeric_limits<double>::quiet_NaN();
    summary.data_std_error_bpd = summary.data_std_error_log_likelihood * to_bpd;
  }
  return summary;
}

}  // namespace flowlik
