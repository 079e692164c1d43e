// The CUDA path: the same closed-form check as on the CPU, on a GPU. Skipped, saying why, where
// LibTorch finds no CUDA device (CI has none); run on a machine that has one.
#include <gtest/gtest.h>

#include <numeric>

#include "estimators/exact_trace.h"
#include "estimators/hutchinson_trace.h"
#include "likelihood/model/device.h"
#include "likelihood/model/prior.h"
#include "likelihood/model/velocity_field.h"
#include "likelihood/ode/cnf_solver.h"
#include "tests/closed_form.h"

namespace flowlik {
namespace {

TEST(CudaTest, ClosedFormLogDensityOnTheGpu) {
  // flowlik loads LibTorch's CUDA backend only when a CUDA device is asked for
  // (likelihood/model/device.h).
  std::string why;
  if (!load_cuda_backend(&why)) GTEST_SKIP() << "LibTorch's CUDA backend cannot be loaded: " << why;
  if (!torch::cuda::is_available()) {
    GTEST_SKIP() << "no CUDA device: torch::cuda::is_available() is false on this machine";
  }
  const auto p = test::load_mixture_params("mixture");
  const auto options = torch::TensorOptions().dtype(torch::kFloat64).device(torch::kCUDA);
  VelocityField field(load_model_file(test::fixture_path("mixture.pt")),
                      resolve_contract(nullptr, "", {}), options);
  field.bind_shape(p.shape);
  const auto x = torch::tensor({-2.1, 0.3, 1.7, 1.2, 0.2, -2.0}, torch::kFloat64).view({3, 2});
  SolverSpec spec;
  spec.rtol = spec.atol = 1e-9;
  for (const bool hutchinson : {false, true}) {
    const HutchinsonTrace probes_estimator(ProbeNoise::kRademacher, 2, 1);
    const ExactTrace exact(1 << 14);
    const TraceEstimator& trace =
        hutchinson ? static_cast<const TraceEstimator&>(probes_estimator) : exact;
    std::vector<int64_t> samples{0, 1, 2};
    const auto probes = trace.draw_probes(samples, 2, options);
    const auto solution = integrate_to_prior(field, trace, x.to(options), probes, spec);
    ASSERT_TRUE(solution.x_prior.is_cuda());
    const auto got =
        (normal_log_density(solution.x_prior).unsqueeze(1) + solution.log_density_change).cpu();
    for (int64_t b = 0; b < 3; ++b) {
      const auto row = x[b].contiguous();
      const double expected =
          test::mixture_log_density(p, 1.0, std::span<const double>(row.data_ptr<double>(), 2));
      if (!hutchinson) {
        EXPECT_NEAR(got[b][0].item<double>(), expected, 1e-6);
      } else {
        // Two probes: unbiased, not exact; they must at least be finite and differ from each other
        // only through the probes.
        EXPECT_TRUE(std::isfinite(got[b].mean().item<double>()));
      }
    }
  }
}

}  // namespace
}  // namespace flowlik
