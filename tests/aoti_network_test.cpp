// AOTInductor packages (.pt2): the closed-form checks of both trace estimators on a compiled
// Gaussian field, agreement with the TorchScript export of the same network, format detection from
// contents, and every bad package. The fixtures are compiled once at build time by
// tests/fixtures/make_pt2_fixtures.py.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <vector>

#include "estimators/exact_trace.h"
#include "estimators/hutchinson_trace.h"
#include "flowlik/error.h"
#include "likelihood/model/device.h"
#include "likelihood/model/prior.h"
#include "likelihood/ode/cnf_solver.h"
#include "tests/closed_form.h"
#include "tests/expect_error.h"

namespace flowlik {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;

// This test program opts in to the stand-in for libtorch.so as the flowlik program does, before any
// package is loaded (the choice is made once per process, at the first package).
const bool kUsesStandIn = (use_libtorch_stand_in(FLOWLIK_LIBTORCH_STUB_BUILD), true);

VelocityField load_bound(const std::string& file, const std::vector<int64_t>& shape,
                         torch::ScalarType dtype = torch::kFloat64) {
  auto field = VelocityField::load(test::fixture_path(file), dtype);
  field.bind_shape(shape);
  return field;
}

torch::Tensor points(int64_t batch, int64_t dim) {
  std::vector<double> flat;
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t d = 0; d < dim; ++d)
      flat.push_back(std::sin(1.3 * (b + 1) * (d + 1)) * (1.0 + 0.5 * b));
  }
  return torch::tensor(flat, torch::kFloat64).view({batch, dim});
}

TEST(AotiNetworkTest, ACpuRunOfAPackageLoadsNoCudaLibrary) {
  // The package's compiled functions name libtorch.so, whose real copy in a CUDA build depends on
  // libtorch_cuda; flowlik's stand-in takes its place for a CPU run (likelihood/model/device.h).
  ASSERT_TRUE(kUsesStandIn);
  if (cuda_backend_loaded()) GTEST_SKIP() << "the CUDA backend was loaded before this test";
  const auto p = test::load_mixture_params("gaussian");
  const auto field = load_bound("gaussian_velocity.pt2", p.shape);
  const auto x = points(3, p.dim());
  const auto result = ExactTrace(1 << 14).evaluate(field, x, 0.5, {}, {});
  EXPECT_TRUE(result.velocity.isfinite().all().item<bool>());
  EXPECT_FALSE(cuda_backend_loaded());
}

TEST(AotiNetworkTest, LoadsAsAPackageWhateverItsName) {
  const auto p = test::load_mixture_params("gaussian");
  const auto field = load_bound("gaussian_velocity.pt2", p.shape);
  EXPECT_EQ(field.format(), "aoti-package");
  // The format comes from the contents: a package named .pt and a TorchScript file named .pt2 load
  // as what they are.
  const auto dir = fs::temp_directory_path() / ("flowlik_aoti_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  fs::copy_file(test::fixture_path("gaussian_velocity.pt2"), dir / "model.pt",
                fs::copy_options::overwrite_existing);
  fs::copy_file(test::fixture_path("gaussian.pt"), dir / "model.pt2",
                fs::copy_options::overwrite_existing);
  EXPECT_EQ(VelocityField::load((dir / "model.pt").string(), torch::kFloat64).format(),
            "aoti-package");
  EXPECT_EQ(VelocityField::load((dir / "model.pt2").string(), torch::kFloat64).format(),
            "torchscript");
  fs::remove_all(dir);
}

// The compiled diagonal and vector-Jacobian functions against the closed-form field, through both
// estimators, with row budgets that force chunks of 1 and 3 dimensions as well as one call.
TEST(AotiNetworkTest, BothEstimatorsMatchTheClosedForm) {
  const auto p = test::load_mixture_params("gaussian");
  const auto field = load_bound("gaussian_velocity.pt2", p.shape);
  const auto x = points(3, p.dim());
  for (const double t : {0.02, 0.5, 0.98}) {
    for (const int64_t max_rows : {1, 9, 1 << 14}) {
      const auto result = ExactTrace(max_rows).evaluate(field, x, t, {}, {});
      for (int64_t b = 0; b < 3; ++b) {
        const auto row = x[b].contiguous();
        const auto expected =
            test::mixture_field(p, t, std::span<const double>(row.data_ptr<double>(), p.dim()));
        EXPECT_NEAR(result.trace[b][0].item<double>(), expected.divergence, 1e-10) << "t " << t;
        for (int64_t d = 0; d < p.dim(); ++d) {
          EXPECT_NEAR(result.velocity[b][d].item<double>(), expected.velocity[d], 1e-10);
        }
      }
    }
    // A Gaussian's Jacobian is diagonal: every Rademacher probe gives the trace exactly, and
    // Gaussian probes average to it.
    const HutchinsonTrace rademacher(ProbeNoise::kRademacher, 4, 7);
    const std::vector<int64_t> samples{0, 1, 2};
    const auto probes = rademacher.draw_probes(samples, p.dim(), torch::kFloat64);
    const auto estimates = rademacher.evaluate(field, x, t, probes, {}).trace;  // [3, 4]
    for (int64_t b = 0; b < 3; ++b) {
      const auto row = x[b].contiguous();
      const auto expected =
          test::mixture_field(p, t, std::span<const double>(row.data_ptr<double>(), p.dim()));
      for (int64_t k = 0; k < 4; ++k)
        EXPECT_NEAR(estimates[b][k].item<double>(), expected.divergence, 1e-10);
    }
  }
}

// A package compiled for static sizes (32 rows, 1 and 8 probes) answers any call: rows in blocks of
// 32, the last padded; probes split over the compiled K (9 = 8 + 1, 3 padded into 8); the diagonal
// in one-hot groups. A row's numbers are the same to the bit whatever rows, probes or directions
// share its call, and the rows of a call of 3 are those of a call of 40.
TEST(AotiNetworkTest, AnyRowsProbesAndDirectionsGiveTheSameNumbersToTheBit) {
  const auto p = test::load_mixture_params("gaussian");
  const auto field = load_bound("gaussian_velocity.pt2", p.shape);
  EXPECT_EQ(field.rows_per_call(), 32);
  const auto many = points(40, p.dim());
  const auto few = many.narrow(0, 0, 3);
  const double t = 0.37;
  for (const int64_t k : {1, 3, 8, 9}) {
    const HutchinsonTrace gaussian(ProbeNoise::kGaussian, k, 5);
    std::vector<int64_t> samples(40);
    std::iota(samples.begin(), samples.end(), 0);
    const auto probes = gaussian.draw_probes(samples, p.dim(), torch::kFloat64);  // [K, 40, D]
    const auto all = gaussian.evaluate(field, many, t, probes, {});
    const auto part = gaussian.evaluate(field, few, t, probes.narrow(1, 0, 3), {});
    EXPECT_TRUE(torch::equal(all.trace.narrow(0, 0, 3), part.trace)) << "K " << k;
    EXPECT_TRUE(torch::equal(all.velocity.narrow(0, 0, 3), part.velocity)) << "K " << k;
    // Each probe alone gives the same estimate as inside the K of its call.
    for (int64_t j = 0; j < k; ++j) {
      const auto one = HutchinsonTrace(ProbeNoise::kGaussian, 1, 5)
                           .evaluate(field, few, t, probes.narrow(0, j, 1).narrow(1, 0, 3), {});
      EXPECT_NEAR((one.trace - part.trace.narrow(1, j, 1)).abs().max().item<double>(), 0.0, 1e-12)
          << "K " << k << " probe " << j;
    }
  }
  const auto whole = ExactTrace(1 << 14).evaluate(field, many, t, {}, {});
  for (const int64_t max_rows : {3, 64, 96}) {  // chunks of 1, 2 and 3 directions for 3 rows
    const auto chunked = ExactTrace(max_rows).evaluate(field, few, t, {}, {});
    EXPECT_TRUE(torch::allclose(whole.trace.narrow(0, 0, 3), chunked.trace, 0, 1e-12))
        << "max_rows " << max_rows;
  }
}

// The same network exported both ways gives the same velocity and traces, for a parameterization
// whose conversion to a velocity is not the identity (noise prediction on a VP path in diffusion
// time).
TEST(AotiNetworkTest, AgreesWithTheTorchScriptExportOfTheSameNetwork) {
  const std::vector<int64_t> shape{2};
  const nlohmann::json manifest = {{"parameterization", "noise"},
                                   {"time", "diffusion"},
                                   {"schedule", "vp:0.1,20"},
                                   {"time_range", {1e-3, 1.0}}};
  auto load = [&](const std::string& file) {
    auto model = load_model_file(test::fixture_path(file));
    auto contract = resolve_contract(&manifest, "manifest (test)", ContractOptions{});
    VelocityField field(std::move(model), std::move(contract),
                        torch::TensorOptions().dtype(torch::kFloat64));
    field.bind_shape(shape);
    return field;
  };
  const auto compiled = load("gmm_noise_vp.pt2");
  const auto scripted = load("path_vp_noise_diffusion.pt");
  const auto x = points(4, 2);
  const HutchinsonTrace gaussian(ProbeNoise::kGaussian, 3, 11);
  const std::vector<int64_t> samples{0, 1, 2, 3};
  const auto probes = gaussian.draw_probes(samples, 2, torch::kFloat64);
  for (const double t : {0.05, 0.4, 0.9}) {
    const auto a = ExactTrace(1 << 14).evaluate(compiled, x, t, {}, {});
    const auto b = ExactTrace(1 << 14).evaluate(scripted, x, t, {}, {});
    EXPECT_TRUE(torch::allclose(a.velocity, b.velocity, 1e-10, 1e-10)) << "t " << t;
    EXPECT_TRUE(torch::allclose(a.trace, b.trace, 1e-10, 1e-10)) << "t " << t;
    const auto ha = gaussian.evaluate(compiled, x, t, probes, {});
    const auto hb = gaussian.evaluate(scripted, x, t, probes, {});
    EXPECT_TRUE(torch::allclose(ha.trace, hb.trace, 1e-10, 1e-10)) << "t " << t;
  }
}

// The block a run calls with (run_block): the largest, unless the run has at most a quarter of its
// rows; then the largest it fills more than half of, else the smallest.
TEST(AotiNetworkTest, ARunTakesTheLargestBlockUnlessItCannotFillAQuarterOfIt) {
  const std::vector<int64_t> two{32, 2};
  EXPECT_EQ(run_block(two, 1000), 32);
  EXPECT_EQ(run_block(two, 9), 32);
  EXPECT_EQ(run_block(two, 8), 2);
  EXPECT_EQ(run_block(two, 1), 2);
  const std::vector<int64_t> one{16};
  EXPECT_EQ(run_block(one, 1), 16);
  const std::vector<int64_t> any{32, 16, 8, 4, 2, 1};  // a network that takes any number of rows
  EXPECT_EQ(run_block(any, 9), 32);
  EXPECT_EQ(run_block(any, 8), 8);
  EXPECT_EQ(run_block(any, 5), 8);
  EXPECT_EQ(run_block(any, 3), 4);
  EXPECT_EQ(run_block(any, 1), 1);
  const std::vector<int64_t> wide{16, 8};  // no block the run fills more than half of
  EXPECT_EQ(run_block(wide, 1), 8);
}

// A package with a second block (gaussian_blocks.pt2: 32 and 2 rows): a field fitted to a small run
// calls the small block's functions, whose numbers are the closed form's, and a row's are the same
// to the bit whatever rows share its calls.
TEST(AotiNetworkTest, ASmallRunCallsThePackagesSmallBlock) {
  const auto p = test::load_mixture_params("gaussian");
  const auto field = load_bound("gaussian_blocks.pt2", p.shape);
  EXPECT_EQ(field.blocks(), (std::vector<int64_t>{32, 2}));
  EXPECT_EQ(field.rows_per_call(), 32);
  auto small = field;
  small.fit_rows_per_call(3);
  EXPECT_EQ(small.rows_per_call(), 2);
  EXPECT_EQ(field.rows_per_call(), 32) << "the copy fitted alone";
  auto large = field;
  large.fit_rows_per_call(9);
  EXPECT_EQ(large.rows_per_call(), 32);
  const auto x = points(5, p.dim());
  const double t = 0.37;
  const auto exact = ExactTrace(1 << 14).evaluate(small, x, t, {}, {});
  for (int64_t b = 0; b < 5; ++b) {
    const auto row = x[b].contiguous();
    const auto expected =
        test::mixture_field(p, t, std::span<const double>(row.data_ptr<double>(), p.dim()));
    EXPECT_NEAR(exact.trace[b][0].item<double>(), expected.divergence, 1e-10);
    for (int64_t d = 0; d < p.dim(); ++d)
      EXPECT_NEAR(exact.velocity[b][d].item<double>(), expected.velocity[d], 1e-10);
  }
  const HutchinsonTrace gaussian(ProbeNoise::kGaussian, 3, 5);
  const std::vector<int64_t> samples{0, 1, 2, 3, 4};
  const auto probes = gaussian.draw_probes(samples, p.dim(), torch::kFloat64);
  const auto all = gaussian.evaluate(small, x, t, probes, {});
  const auto part = gaussian.evaluate(small, x.narrow(0, 0, 3), t, probes.narrow(1, 0, 3), {});
  EXPECT_TRUE(torch::equal(all.trace.narrow(0, 0, 3), part.trace));
  EXPECT_TRUE(torch::equal(all.velocity.narrow(0, 0, 3), part.velocity));
  const auto big = gaussian.evaluate(large, x, t, probes, {});
  EXPECT_TRUE(torch::allclose(big.trace, all.trace, 0, 1e-12));
}

TEST(AotiNetworkTest, IntegratesToTheExactLogDensity) {
  const auto p = test::load_mixture_params("gaussian");
  const auto field = load_bound("gaussian_velocity.pt2", p.shape);
  const auto x = points(3, p.dim());
  SolverSpec spec;
  spec.rtol = spec.atol = 1e-9;
  const ExactTrace exact(1 << 14);
  const auto solution = integrate_to_prior(field, exact, x, {}, spec);
  const auto got = normal_log_density(solution.x_prior) + solution.log_density_change.select(1, 0);
  for (int64_t b = 0; b < 3; ++b) {
    const auto row = x[b].contiguous();
    // As the TorchScript closed-form test: dopri5 at 1e-9 in float64.
    EXPECT_NEAR(
        got[b].item<double>(),
        test::mixture_log_density(p, 1.0, std::span<const double>(row.data_ptr<double>(), p.dim())),
        1e-6);
  }
}

TEST(AotiNetworkTest, RefusesATruncatedPackage) {
  const auto path =
      (fs::temp_directory_path() / ("flowlik_truncated_" + std::to_string(::getpid()) + ".pt2"))
          .string();
  const auto size = fs::file_size(test::fixture_path("gaussian_velocity.pt2"));
  {
    std::ifstream in(test::fixture_path("gaussian_velocity.pt2"), std::ios::binary);
    std::string bytes(size / 2, '\0');
    in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    std::ofstream(path, std::ios::binary) << bytes;
  }
  const auto m =
      test::expect_error<ModelError>([&] { VelocityField::load(path, torch::kFloat64); });
  EXPECT_THAT(m, AllOf(HasSubstr(path), HasSubstr("not a complete zip archive")));
  EXPECT_EQ(m.find('\n'), std::string::npos) << "one line";
  fs::remove(path);
}

TEST(AotiNetworkTest, RefusesAnExportedProgramNamingTheFix) {
  const auto path = test::fixture_path("exported_program.pt2");
  const auto m =
      test::expect_error<ModelError>([&] { VelocityField::load(path, torch::kFloat64); });
  EXPECT_THAT(m, AllOf(HasSubstr(path), HasSubstr("ExportedProgram"), HasSubstr("format=\"pt2\"")));
}

TEST(AotiNetworkTest, RefusesAPackageWithoutTheTraceFunctions) {
  const auto path = test::fixture_path("velocity_only.pt2");
  const auto m =
      test::expect_error<ModelError>([&] { VelocityField::load(path, torch::kFloat64); });
  EXPECT_THAT(m, AllOf(HasSubstr(path), HasSubstr("no compiled 'vjp' function")));
}

TEST(AotiNetworkTest, RefusesADtypeItWasNotCompiledFor) {
  const auto path = test::fixture_path("gaussian_velocity.pt2");
  const auto m =
      test::expect_error<ModelError>([&] { VelocityField::load(path, torch::kFloat32); });
  EXPECT_THAT(m, AllOf(HasSubstr("compiled for float64 only"), HasSubstr("dtypes=")));
}

}  // namespace
}  // namespace flowlik
