// Closed forms of the Gaussian-mixture fields in tests/fixtures/make_fixtures.py, computed here
// independently in double precision: the marginal velocity of the linear path, its divergence, and
// the log-density p_t (shared/MATH.md section 4).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace flowlik::test {

struct MixtureParams {
  std::vector<int64_t> shape;
  std::vector<double> weights;
  std::vector<std::vector<double>> means;   // [K][D]
  std::vector<std::vector<double>> scales;  // [K][D]
  int64_t dim() const { return static_cast<int64_t>(means.front().size()); }
};

// The path of a fixture written by make_fixtures.py into FLOWLIK_TEST_DATA_DIR.
std::string fixture_path(const std::string& file);
// "gaussian" or "mixture", as in params.json.
MixtureParams load_mixture_params(const std::string& name);

struct FieldValue {
  std::vector<double> velocity;
  double divergence = 0.0;
};

FieldValue mixture_field(const MixtureParams& p, double t, std::span<const double> x);
double mixture_log_density(const MixtureParams& p, double t, std::span<const double> x);
// log p_t(x) on a general Gaussian path: sum_k w_k N(x; alpha mu_k, diag(alpha^2 s_k^2 + sigma^2)).
double path_log_density(const MixtureParams& p, double alpha, double sigma,
                        std::span<const double> x);

}  // namespace flowlik::test
