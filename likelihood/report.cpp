#include "likelihood/report.h"

#include <fmt/format.h>

#include <cmath>

#include "flowlik/error.h"
#include "likelihood/report_reader.h"

namespace flowlik {
nlohmann::json mean_json(const MeanEstimate& m) {
  return {{"mean", number_or_null(m.mean)},
          {"stderr", number_or_null(m.std_error)},
          {"ci95", {number_or_null(m.ci_low), number_or_null(m.ci_high)}},
          {"n", m.count}};
}

MeanEstimate read_mean(const ReportReader& report, const std::string& key) {
  MeanEstimate m;
  m.mean = report.number_or_null(key + ".mean").value_or(NAN);
  m.std_error = report.number_or_null(key + ".stderr").value_or(NAN);
  const auto ci = report.numbers_or_null(key + ".ci95", 2);
  m.ci_low = ci[0];
  m.ci_high = ci[1];
  m.count = report.integer(key + ".n");
  return m;
}

nlohmann::json data_json(const RunReport::DataRecord& d) {
  return {{"path", d.path},
          {"sha256", d.sha256},
          {"dtype", d.dtype},
          {"shape", d.shape},
          {"N", d.n},
          {"D", d.dim},
          {"labels", d.labels.empty() ? nlohmann::json(nullptr) : nlohmann::json(d.labels)}};
}

RunReport::DataRecord read_data_record(const ReportReader& report) {
  RunReport::DataRecord d;
  d.path = report.string("data.path");
  d.sha256 = report.string("data.sha256");
  d.dtype = report.string("data.dtype");
  d.shape = report.integers("data.shape");
  d.n = report.integer("data.N");
  d.dim = report.integer("data.D");
  d.labels = report.string_or_null("data.labels").value_or("");
  return d;
}

nlohmann::json Shard::json(int64_t n) const {
  const auto [first, end] = range(n);
  return {{"index", index}, {"count", count}, {"source", source}, {"first", first}, {"end", end}};
}

Shard read_shard(const ReportReader& report, int64_t n) {
  Shard s;
  s.index = report.integer("shard.index");
  s.count = report.integer("shard.count");
  s.source = report.string("shard.source");
  const auto first = report.integer("shard.first");
  const auto end = report.integer("shard.end");
  if (s.count < 1 || s.count > kMaxReportCount || s.index < 0 || s.index >= s.count) {
    throw DataError(fmt::format("{}: shard.index {} of shard.count {} is not a shard",
                                report.path(), s.index, s.count));
  }
  // The block this shard must have scored; anything else is a hand-edited report.
  const auto [lo, hi] = s.range(n);
  if (first != lo || end != hi) {
    throw DataError(
        fmt::format("{}: shard.first/shard.end [{}, {}) are not block {} of {} of {} samples "
                    "([{}, {}))",
                    report.path(), first, end, s.index, s.count, n, lo, hi));
  }
  return s;
}

namespace {

std::string draw_bound_text(const Preprocessing& pre) {
  const char* q = pre.dequantization == DequantizationKind::kUniform ? "" : " - log q(u)";
  if (pre.draws == 1) {
    return fmt::format("one draw: log P(k) >= log p_model(y) + log|det dy/dx01|{} - D ln K", q);
  }
  if (pre.bound == DrawBound::kMean) {
    return fmt::format(
        "mean over M draws (each a bound; the dataset scored M times): log P(k) >= mean_m [log "
        "p_model(y_m) + log|det dy/dx01|_m{}] - D ln K",
        q);
  }
  return fmt::format(
      "importance-weighted over M draws: log P(k) >= logmeanexp_m [log p_model(y_m) + "
      "log|det dy/dx01|_m{}] - D ln K (shared/MATH.md section 6)",
      q);
}

}  // namespace

nlohmann::json preprocessing_json(const Preprocessing& pre, int64_t dim) {
  if (!pre.discrete) {
    return {{"kind", "continuous"},
            {"description", "float data scored as given; bpd = -log p / (D ln 2)"}};
  }
  nlohmann::json j = {
      {"kind", "discrete"},
      {"levels", pre.levels},
      {"dequantization",
       pre.dequantization == DequantizationKind::kUniform
           ? "uniform: x01 = (k + u) / K, u ~ U[0,1)^D, Philox keyed by (seed, sample, draw)"
           : fmt::format("truncated-normal:{}: x01 = (k + u) / K, u = 0.5 + sigma e, e ~ N(0, I) "
                         "truncated to |e_i| <= 0.5 / sigma, sigma = {} bins, Philox keyed by "
                         "(seed, sample, draw); log q(u) enters the bound",
                         pre.noise_sigma, pre.noise_sigma)},
      {"dequant_noise", describe_dequantization(pre)},
      {"draws", pre.draws},
      {"bound", draw_bound_text(pre)},
      {"scale", describe_scale(pre)},
      {"sources",
       {{"levels", pre.levels_source},
        {"scale", pre.scale_source},
        {"dequantization", pre.dequantization_source}}},
      {"seed", pre.seed},
      {"log_offset_nats", data_log_offset(pre, dim)},
      {"description",
       "log_likelihood = log p_model(y) + log|det dy/dx01| - D ln K (a lower bound on log P(k)); "
       "bpd = -log_likelihood / (D ln 2)"}};
  if (pre.draws > 1) j["dequant_bound"] = to_string(pre.bound);
  return j;
}

int64_t read_levels(const ReportReader& report, const std::string& key) {
  const auto levels = report.integer(key);
  if (levels < 2 || levels > 256) report.invalid(key, "not a number of levels from 2 to 256");
  return levels;
}

Preprocessing read_preprocessing(const ReportReader& report) {
  Preprocessing pre;
  const auto kind = report.string("preprocessing.kind");
  if (kind == "continuous") return pre;
  if (kind != "discrete") report.invalid("preprocessing.kind", "not continuous or discrete");
  pre.discrete = true;
  pre.levels = read_levels(report, "preprocessing.levels");
  const auto noise = report.parsed("preprocessing.dequant_noise", parse_dequantization);
  pre.dequantization = noise.kind;
  if (noise.kind == DequantizationKind::kTruncatedNormal && !noise.sigma) {
    report.invalid("preprocessing.dequant_noise", "truncated-normal without its SIGMA");
  }
  pre.noise_sigma = noise.sigma.value_or(0.0);
  pre.draws = report.integer("preprocessing.draws");
  if (pre.draws < 1 || pre.draws > kMaxReportCount) {
    report.invalid("preprocessing.draws", "not a number of draws");
  }
  if (pre.draws > 1) pre.bound = report.parsed("preprocessing.dequant_bound", parse_draw_bound);
  const auto map = report.parsed("preprocessing.scale", parse_data_map);
  pre.scale = map.kind;
  pre.logit_lambda = map.logit_lambda;
  pre.levels_source = report.string("preprocessing.sources.levels");
  pre.scale_source = report.string("preprocessing.sources.scale");
  pre.dequantization_source = report.string("preprocessing.sources.dequantization");
  pre.seed = report.unsigned_integer("preprocessing.seed");
  return pre;
}

std::string describe_prior(double scale) {
  return scale == 1.0 ? std::string("standard normal") : fmt::format("normal, scale {}", scale);
}

nlohmann::json number_or_null(double value) {
  return std::isfinite(value) ? nlohmann::json(value) : nlohmann::json(nullptr);
}

nlohmann::json samples_json(const ScoreSummary& s) {
  return {{"total", s.total}, {"ok", s.ok}, {"excluded", s.total - s.ok}};
}

std::string describe_error_sources(const ScoreSummary& s) {
  auto part = [](double v, const char* missing) {
    return std::isfinite(v) ? fmt::format("{:.4f}", v) : std::string(missing);
  };
  if (std::isfinite(s.bpd.std_error) && !std::isfinite(s.data_std_error_bpd)) {
    return fmt::format(
        "{}: its split by source is not identifiable from {} samples (the within-sample parts, "
        "dequantization {} and estimator {} bpd, exceed the spread between samples)",
        part(s.bpd.std_error, "n/a"), s.ok, part(s.dequant_std_error_bpd, "not estimated"),
        part(s.estimator_std_error_bpd, "not estimated"));
  }
  return fmt::format("{} = data {} + dequantization {} + estimator {} (bpd, in quadrature)",
                     part(s.bpd.std_error, "n/a"), part(s.data_std_error_bpd, "n/a"),
                     part(s.dequant_std_error_bpd, "not estimated (one draw)"),
                     part(s.estimator_std_error_bpd, "not estimated (exact trace or one probe)"));
}

nlohmann::json metrics_json(const ScoreSummary& s) {
  const auto sources = [&](double total, double data, double dequant, double estimator) {
    return nlohmann::json{{"total", number_or_null(total)},
                          {"data", number_or_null(data)},
                          {"dequantization", number_or_null(dequant)},
                          {"estimator", number_or_null(estimator)}};
  };
  return {
      {"log_likelihood", mean_json(s.log_likelihood)},
      {"bpd", mean_json(s.bpd)},
      {"stderr_by_source",
       {{"log_likelihood",
         sources(s.log_likelihood.std_error, s.data_std_error_log_likelihood,
                 s.dequant_std_error_log_likelihood, s.estimator_std_error_log_likelihood)},
        {"bpd", sources(s.bpd.std_error, s.data_std_error_bpd, s.dequant_std_error_bpd,
                        s.estimator_std_error_bpd)},
        {"how",
         {{"total", "sd of the per-sample values / sqrt(n)"},
          {"dequantization",
           "per sample, the variance between its M >= 2 draws (less the probes' share), times "
           "sum_m w_m^2 with "
           "w the logmeanexp weights (delta method); sqrt(sum over samples) / n; null with one "
           "draw"},
          {"estimator",
           "per sample, the variance between its K >= 2 Hutchinson probes / K, weighted as above; "
           "sqrt(sum) / n; "
           "null for the exact trace or one probe"},
          {"data",
           "sqrt(total^2 - dequantization^2 - estimator^2), an unestimated part counting as 0; "
           "null when that is negative (not identifiable from so few samples)"}}}}},
      {"estimator_stderr",
       {{"log_likelihood", number_or_null(s.estimator_std_error_log_likelihood)},
        {"bpd", number_or_null(s.estimator_std_error_bpd)}}},
      {"nfe", {{"mean", s.nfe_mean}, {"max", s.nfe_max}}},
  };
}

ScoreSummary read_summary(const ReportReader& report) {
  ScoreSummary s;
  s.total = report.integer("samples.total");
  s.ok = report.integer("samples.ok");
  if (s.total < 0 || s.total > kMaxReportCount || s.ok < 0 || s.ok > s.total) {
    throw DataError(fmt::format("{}: samples.ok = {} of samples.total = {} is not a count",
                                report.path(), s.ok, s.total));
  }
  s.log_likelihood = read_mean(report, "metrics.log_likelihood");
  s.bpd = read_mean(report, "metrics.bpd");
  const auto part = [&](const std::string& key) {
    return report.number_or_null("metrics.stderr_by_source." + key).value_or(NAN);
  };
  s.data_std_error_log_likelihood = part("log_likelihood.data");
  s.dequant_std_error_log_likelihood = part("log_likelihood.dequantization");
  s.estimator_std_error_log_likelihood = part("log_likelihood.estimator");
  s.data_std_error_bpd = part("bpd.data");
  s.dequant_std_error_bpd = part("bpd.dequantization");
  s.estimator_std_error_bpd = part("bpd.estimator");
  s.nfe_mean = report.number_or_null("metrics.nfe.mean").value_or(NAN);
  s.nfe_max = report.integer("metrics.nfe.max");
  return s;
}

nlohmann::json tool_json(const std::string& command, const std::string& version) {
  return {{"name", "flowlik"},
          {"version", version.empty() ? FLOWLIK_VERSION : version},
          {"command", command}};
}

std::string bound_caveat(const Preprocessing& pre, Trace trace) {
  if (!pre.discrete || pre.draws < 2 || pre.bound != DrawBound::kImportanceWeighted) return "";
  if (trace != Trace::kHutchinson) return "";
  return "importance-weighted over Hutchinson estimates: the logmeanexp of noisy estimates is "
         "biased upward, by about half their variance, so the figure may exceed the true bound; "
         "--probes K >= 2 measures that variance (metrics.stderr_by_source.estimator), --trace "
         "exact or --dequant-bound mean removes the bias";
}

std::string describe(const Preprocessing& pre) {
  if (!pre.discrete) return "continuous, scored as given";
  return fmt::format("discrete, {} levels [{}], {} dequantization (seed {}, {}), scale {} [{}]",
                     pre.levels, pre.levels_source, describe_dequantization(pre), pre.seed,
                     pre.draws > 1
                         ? fmt::format("{} draws, {} bound", pre.draws, to_string(pre.bound))
                         : "one draw",
                     describe_scale(pre), pre.scale_source);
}

}  // namespace flowlik
