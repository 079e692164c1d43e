#include "tests/closed_form.h"

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numbers>
#include <stdexcept>

namespace flowlik::test {

std::string fixture_path(const std::string& file) {
  return std::string(FLOWLIK_TEST_DATA_DIR) + "/" + file;
}

MixtureParams load_mixture_params(const std::string& name) {
  std::ifstream in(fixture_path("params.json"));
  if (!in) throw std::runtime_error("fixtures missing: run tests/fixtures/make_fixtures.py");
  const auto all = nlohmann::json::parse(in);
  const auto& j = all.at(name);
  return {j.at("shape").get<std::vector<int64_t>>(), j.at("weights").get<std::vector<double>>(),
          j.at("means").get<std::vector<std::vector<double>>>(),
          j.at("scales").get<std::vector<std::vector<double>>>()};
}

namespace {

// Per component k: log w_k + log N(x; t mu_k, diag(S_k)), S_k = t^2 s_k^2 + (1 - t)^2.
struct Components {
  std::vector<double> log_joint;         // [K]
  std::vector<std::vector<double>> var;  // [K][D]
};

Components components(const MixtureParams& p, double t, std::span<const double> x) {
  Components c;
  for (size_t k = 0; k < p.weights.size(); ++k) {
    double log_n = std::log(p.weights[k]);
    std::vector<double> var(x.size());
    for (size_t i = 0; i < x.size(); ++i) {
      const double s = p.scales[k][i];
      var[i] = t * t * s * s + (1 - t) * (1 - t);
      const double d = x[i] - t * p.means[k][i];
      log_n -= 0.5 * (std::log(2 * std::numbers::pi * var[i]) + d * d / var[i]);
    }
    c.log_joint.push_back(log_n);
    c.var.push_back(var);
  }
  return c;
}

double log_sum_exp(const std::vector<double>& v) {
  double m = -INFINITY;
  for (const double a : v) m = std::max(m, a);
  double s = 0.0;
  for (const double a : v) s += std::exp(a - m);
  return m + std::log(s);
}

}  // namespace

double mixture_log_density(const MixtureParams& p, double t, std::span<const double> x) {
  return log_sum_exp(components(p, t, x).log_joint);
}

double path_log_density(const MixtureParams& p, double alpha, double sigma,
                        std::span<const double> x) {
  std::vector<double> log_joint;
  for (size_t k = 0; k < p.weights.size(); ++k) {
    double log_n = std::log(p.weights[k]);
    for (size_t i = 0; i < x.size(); ++i) {
      const double s = p.scales[k][i];
      const double var = alpha * alpha * s * s + sigma * sigma;
      const double d = x[i] - alpha * p.means[k][i];
      log_n -= 0.5 * (std::log(2 * std::numbers::pi * var) + d * d / var);
    }
    log_joint.push_back(log_n);
  }
  return log_sum_exp(log_joint);
}

FieldValue mixture_field(const MixtureParams& p, double t, std::span<const double> x) {
  const auto c = components(p, t, x);
  const double log_p = log_sum_exp(c.log_joint);
  const size_t n = x.size();
  const size_t kk = p.weights.size();
  std::vector<double> gamma(kk);
  for (size_t k = 0; k < kk; ++k) gamma[k] = std::exp(c.log_joint[k] - log_p);
  // v_k = mu_k + a_k (x - t mu_k); g_k = d log N_k / dx = -(x - t mu_k) / S_k.
  std::vector<std::vector<double>> v_k(kk, std::vector<double>(n)), g_k = v_k;
  std::vector<double> g_bar(n, 0.0);
  FieldValue out;
  out.velocity.assign(n, 0.0);
  for (size_t k = 0; k < kk; ++k) {
    for (size_t i = 0; i < n; ++i) {
      const double s = p.scales[k][i];
      const double a = (t * s * s - (1 - t)) / c.var[k][i];
      const double d = x[i] - t * p.means[k][i];
      v_k[k][i] = p.means[k][i] + a * d;
      g_k[k][i] = -d / c.var[k][i];
      g_bar[i] += gamma[k] * g_k[k][i];
      out.velocity[i] += gamma[k] * v_k[k][i];
      out.divergence += gamma[k] * a;
    }
  }
  // div v = sum_k gamma_k div v_k + sum_k grad gamma_k . v_k, grad gamma_k = gamma_k (g_k - g_bar).
  for (size_t k = 0; k < kk; ++k) {
    for (size_t i = 0; i < n; ++i) out.divergence += gamma[k] * (g_k[k][i] - g_bar[i]) * v_k[k][i];
  }
  return out;
}

}  // namespace flowlik::test
