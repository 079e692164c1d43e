#include "likelihood/score.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "likelihood/error.h"
#include "likelihood/prior.h"

namespace flowlik {
namespace {

class BatchScorer {
 public:
  BatchScorer(const VelocityField& field, const TraceEstimator& trace, const Dataset& data,
              const Preprocessing& pre, const ScoreOptions& options, const SampleSink& sink)
      : field_(field), trace_(trace), data_(data), pre_(pre), options_(options), sink_(sink) {}

  // spent: evaluations already spent on these samples by a failed solve of a larger batch.
  void score(std::span<const int64_t> batch, int64_t spent = 0) {
    const auto index = torch::tensor(std::vector<int64_t>(batch.begin(), batch.end()));
    const auto input = to_model_space(data_.values.index_select(0, index), batch, pre_);
    const auto probes = trace_.draw_probes(batch, data_.dim, field_.options());
    const auto labels = data_.labels.defined()
                            ? data_.labels.index_select(0, index).to(field_.options().device())
                            : torch::Tensor();
    FlowSolution solution;
    try {
      solution =
          integrate_to_prior(field_, trace_, input.y.to(field_.options()), probes, options_.solver, labels);
    } catch (const IntegrationFailure& failure) {
      if (batch.size() > 1) {
        for (size_t i = 0; i < batch.size(); ++i) score(batch.subspan(i, 1), spent + failure.nfe());
        return;
      }
      SampleResult result;
      result.index = batch[0];
      result.status = SampleStatus::kFailed;
      result.detail = failure.what();
      result.nfe = spent + failure.nfe();
      sink_(result);
      return;
    }
    solution.nfe += spent;
    emit(batch, input, solution);
  }

 private:
  void emit(std::span<const int64_t> batch, const ModelInput& input, const FlowSolution& solution) {
    // [B] and [B, K], on the CPU: one model log-likelihood per trace estimate (shared/MATH.md section 2).
    const auto prior = normal_log_density(solution.x_prior, field_.contract().prior_scale).cpu();
    const auto estimates = prior.unsqueeze(1) + solution.log_density_change.to(torch::kCPU, torch::kFloat64);
    const auto model_ll = estimates.mean(1);
    const int64_t probes = estimates.size(1);
    const auto spread = probes >= 2 ? (estimates.std(1) / std::sqrt(static_cast<double>(probes)))
                                    : torch::full_like(model_ll, NAN);
    const double offset = data_log_offset(pre_, data_.dim);
    // One copy out of the tensors per batch, not one .item() per value.
    const auto prior_v = prior.contiguous();
    const auto model_ll_v = model_ll.contiguous();
    const auto spread_v = spread.contiguous();
    const auto log_det_v = input.log_det.contiguous();
    const auto prior_a = prior_v.accessor<double, 1>();
    const auto model_ll_a = model_ll_v.accessor<double, 1>();
    const auto spread_a = spread_v.accessor<double, 1>();
    const auto log_det_a = log_det_v.accessor<double, 1>();
    for (size_t b = 0; b < batch.size(); ++b) {
      const auto i = static_cast<int64_t>(b);
      SampleResult result;
      result.index = batch[b];
      result.nfe = solution.nfe;
      result.prior_log_density = prior_a[i];
      result.model_log_likelihood = model_ll_a[i];
      result.log_det = log_det_a[i];
      result.log_likelihood = result.model_log_likelihood + result.log_det - offset;
      result.bpd = bits_per_dim(result.log_likelihood, data_.dim);
      result.estimator_std_error = spread_a[i];
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
  const ScoreOptions& options_;
  const SampleSink& sink_;
};

}  // namespace

std::string to_string(SampleStatus status) {
  switch (status) {
    case SampleStatus::kOk: return "ok";
    case SampleStatus::kFailed: return "failed";
    case SampleStatus::kNonFinite: return "nonfinite";
  }
  return "unknown";
}

void score_dataset(const VelocityField& field, const TraceEstimator& trace, const Dataset& data,
                   const Preprocessing& pre, const ScoreOptions& options,
                   std::span<const int64_t> indices, const SampleSink& sink) {
  BatchScorer scorer(field, trace, data, pre, options, sink);
  const auto batch_size = static_cast<size_t>(options.batch_size);
  for (size_t first = 0; first < indices.size(); first += batch_size) {
    scorer.score(indices.subspan(first, std::min(batch_size, indices.size() - first)));
  }
}

Error all_failed_error(int64_t total) {
  return Error(ExitCode::kAllFailed,
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
  double nfe_sum = 0.0;
  for (const auto& r : results) {
    nfe_sum += static_cast<double>(r.nfe);
    summary.nfe_max = std::max(summary.nfe_max, r.nfe);
    if (r.status != SampleStatus::kOk) continue;
    log_likelihoods.push_back(r.log_likelihood);
    bpds.push_back(r.bpd);
    estimator_variance += r.estimator_std_error * r.estimator_std_error;  // NaN propagates: K < 2
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
  summary.estimator_std_error_bpd =
      summary.estimator_std_error_log_likelihood / (static_cast<double>(dim) * std::log(2.0));
  return summary;
}

}  // namespace flowlik
