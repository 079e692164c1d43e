// Issue 4: each parameterization, in each time convention, on each schedule, turned into a flow
// velocity and integrated, gives the exact log-density of a Gaussian-mixture target; and every
// contract error is named. The fixtures compute each parameterization from the mixture's closed
// form directly.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <numbers>

#include "estimators/exact_trace.h"
#include "flowlik/error.h"
#include "likelihood/model/contract.h"
#include "likelihood/model/prior.h"
#include "likelihood/model/velocity_field.h"
#include "likelihood/ode/cnf_solver.h"
#include "tests/closed_form.h"
#include "tests/expect_error.h"

namespace flowlik {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

// alpha and sigma of each schedule at flow time t, written out again here (values only; flowlik
// also needs their derivatives) so the test does not lean on likelihood/model/schedule.cpp.
std::pair<double, double> alpha_sigma(const std::string& schedule, double t) {
  const double s = 1 - t;
  if (schedule == "linear") return {t, 1 - t};
  if (schedule == "ve") return {1.0, 0.01 * std::pow(10.0 / 0.01, s)};
  double alpha = 0;
  if (schedule == "vp") alpha = std::exp(-0.5 * (0.1 * s + 0.5 * 19.9 * s * s));
  if (schedule == "cosine") {
    const double c = 0.008;
    alpha = std::cos(std::numbers::pi / 2 * (s + c) / (1 + c)) /
            std::cos(std::numbers::pi / 2 * c / (1 + c));
  }
  return {alpha, std::sqrt(1 - alpha * alpha)};
}

const std::map<std::string, std::string> kScheduleText = {
    {"linear", "linear:0"}, {"vp", "vp:0.1,20"}, {"cosine", "cosine:0.008"}, {"ve", "ve:0.01,10"}};

struct PathCase {
  std::string schedule;
  std::string parameterization;
  std::string time;
};

std::string case_name(const ::testing::TestParamInfo<PathCase>& info) {
  return info.param.schedule + "_" + info.param.parameterization + "_" + info.param.time;
}

std::vector<PathCase> all_cases() {
  std::vector<PathCase> cases;
  for (const auto& [schedule, text] : kScheduleText) {
    for (const std::string p : {"velocity", "data", "noise", "score", "v"}) {
      if (p == "v" && schedule != "vp" && schedule != "cosine") continue;
      for (const std::string time : {"flow", "diffusion"}) cases.push_back({schedule, p, time});
    }
  }
  return cases;
}

class ParameterizationTest : public ::testing::TestWithParam<PathCase> {};

TEST_P(ParameterizationTest, IntegratesToTheExactLogDensity) {
  const auto& c = GetParam();
  const auto params = test::load_mixture_params("mixture");
  // [0.01, 0.99] in the model's own time keeps every conversion away from its singular end.
  nlohmann::json manifest = {{"parameterization", c.parameterization},
                             {"time", c.time},
                             {"schedule", kScheduleText.at(c.schedule)},
                             {"time_range", {0.01, 0.99}}};
  if (c.schedule == "ve") manifest["prior"] = "normal:10";
  const auto contract = resolve_contract(&manifest, "test manifest", ContractOptions{});
  const auto path =
      test::fixture_path("path_" + c.schedule + "_" + c.parameterization + "_" + c.time + ".pt");
  VelocityField field(load_model_file(path), contract,
                      torch::TensorOptions().dtype(torch::kFloat64));
  field.bind_shape(params.shape);

  SolverSpec spec;
  spec.rtol = spec.atol = 1e-10;
  // The solve runs over the contract's interval by itself.
  EXPECT_NEAR(contract.t_data(), 0.99, 1e-15);
  EXPECT_NEAR(contract.t_prior(), 0.01, 1e-15);
  const auto x =
      torch::tensor({-2.1, 0.3, 1.7, 1.2, 0.2, -2.0, 0.9, -0.4}, torch::kFloat64).view({4, 2});
  const auto solution = integrate_to_prior(field, ExactTrace(1 << 14), x, {}, spec);
  const auto [alpha0, sigma0] = alpha_sigma(c.schedule, contract.t_prior());
  const auto [alpha1, sigma1] = alpha_sigma(c.schedule, contract.t_data());
  for (int64_t b = 0; b < 4; ++b) {
    const auto x0 = solution.x_prior[b].contiguous();
    const auto x1 = x[b].contiguous();
    // log p_{t_data}(x1) = log p_{t_prior}(x0) + l(t_prior): the change of variables with the exact
    // density at the prior end, so the check is exact whatever the prior.
    const double got = test::path_log_density(params, alpha0, sigma0,
                                              std::span<const double>(x0.data_ptr<double>(), 2)) +
                       solution.log_density_change[b][0].item<double>();
    const double expected = test::path_log_density(
        params, alpha1, sigma1, std::span<const double>(x1.data_ptr<double>(), 2));
    // Tolerance 1e-10 per step over a few hundred steps: global error well under 1e-6.
    EXPECT_NEAR(got, expected, 1e-6) << "sample " << b;
  }
}

INSTANTIATE_TEST_SUITE_P(AllPaths, ParameterizationTest, ::testing::ValuesIn(all_cases()),
                         case_name);

// The same noise-prediction VP model called as forward(t, x), and with a scalar t, gives the same
// field.
TEST(ContractTest, ArgumentOrderAndScalarTimeAreHonoured) {
  const auto params = test::load_mixture_params("mixture");
  const nlohmann::json base = {{"parameterization", "noise"},
                               {"time", "diffusion"},
                               {"schedule", "vp:0.1,20"},
                               {"time_range", {1e-3, 1.0}}};
  auto evaluate = [&](const std::string& file, nlohmann::json manifest) {
    VelocityField field(load_model_file(test::fixture_path(file)),
                        resolve_contract(&manifest, "m", {}),
                        torch::TensorOptions().dtype(torch::kFloat64));
    field.bind_shape(params.shape);
    return field.evaluate(torch::tensor({0.3, -1.2, 2.0, 0.5}, torch::kFloat64).view({2, 2}), 0.4);
  };
  const auto reference = evaluate("path_vp_noise_diffusion.pt", base);
  auto time_first = base;
  time_first["signature"] = "(t, x)";
  EXPECT_TRUE(torch::allclose(evaluate("vp_noise_time_first.pt", time_first), reference));
  auto scalar = base;
  scalar["time_input"] = "scalar";
  EXPECT_TRUE(torch::allclose(evaluate("vp_noise_scalar_time.pt", scalar), reference));
  // Called with a vector t, the scalar-time model refuses: the contract matters.
  EXPECT_THROW(evaluate("vp_noise_scalar_time.pt", base), DataError);
}

TEST(ContractTest, TheEmbeddedManifestIsReadAndASideFileThatDiffersIsRefused) {
  const auto file = load_model_file(test::fixture_path("vp_noise_embedded.pt"));
  ASSERT_TRUE(file.manifest.has_value());
  EXPECT_EQ(file.manifest_source, "manifest (embedded)");
  const auto contract = resolve_contract(&*file.manifest, file.manifest_source, {});
  EXPECT_EQ(contract.parameterization, Parameterization::kNoise);
  EXPECT_EQ(contract.sources.at("parameterization"), "manifest (embedded)");
  EXPECT_EQ(contract.sources.at("signature"), "default");
  EXPECT_DOUBLE_EQ(contract.t_data(), 1 - 1e-3);
  EXPECT_DOUBLE_EQ(contract.t_prior(), 0.0);

  const auto dir = std::filesystem::temp_directory_path() / "flowlik_contract_test";
  std::filesystem::create_directories(dir);
  const auto copy = dir / "model.pt";
  std::filesystem::copy_file(test::fixture_path("vp_noise_embedded.pt"), copy,
                             std::filesystem::copy_options::overwrite_existing);
  std::ofstream(copy.string() + ".json") << R"({"parameterization": "score"})";
  try {
    load_model_file(copy.string());
    FAIL() << "expected ModelError";
  } catch (const ModelError& e) {
    EXPECT_THAT(e.what(), AllOf(HasSubstr("model.pt.json: differs from the manifest embedded in"),
                                HasSubstr("keep one of them")));
  }
  // A side file alone is used, and named as the source.
  const auto plain = dir / "plain.pt";
  std::filesystem::copy_file(test::fixture_path("path_vp_noise_diffusion.pt"), plain,
                             std::filesystem::copy_options::overwrite_existing);
  std::ofstream(plain.string() + ".json") << R"({"parameterization": "noise"})";
  const auto side = load_model_file(plain.string());
  EXPECT_EQ(side.manifest_source, "manifest (" + plain.string() + ".json)");
}

template <typename E>
std::string error_of(const nlohmann::json& manifest, const ContractOptions& options = {}) {
  return test::expect_error<E>([&] { resolve_contract(&manifest, "m.pt.json", options); });
}

TEST(ContractTest, MissingAndContradictoryFieldsAreNamed) {
  EXPECT_THAT(error_of<ModelError>({{"parameterization", "noise"}, {"time_range", {0.01, 1}}}),
              HasSubstr("schedule: required for parameterization 'noise'"));
  EXPECT_THAT(error_of<ModelError>({{"parameterization", "noise"}, {"schedule", "vp"}}),
              HasSubstr("time_range: required for parameterization 'noise'"));
  EXPECT_THAT(error_of<ModelError>(
                  {{"parameterization", "v"}, {"schedule", "linear"}, {"time_range", {0.1, 0.9}}}),
              HasSubstr("parameterization: 'v' is defined on variance-preserving paths only"));
  EXPECT_THAT(
      error_of<ModelError>(
          {{"parameterization", "noise"}, {"schedule", "linear"}, {"time_range", {0.0, 0.9}}}),
      AllOf(HasSubstr("time_range: [0, 0.9] reaches flow time t = 0 where alpha = 0"),
            HasSubstr("time_range from m.pt.json")));
  EXPECT_THAT(error_of<ModelError>({{"parameterization", "data"},
                                    {"schedule", "vp"},
                                    {"time", "diffusion"},
                                    {"time_range", {0.0, 1.0}}}),
              HasSubstr("where sigma = 0"));
  EXPECT_THAT(error_of<ModelError>({{"time_range", {0.5, 0.2}}}),
              HasSubstr("time_range: must satisfy 0 <= LO < HI <= 1, got [0.5, 0.2]"));
  EXPECT_THAT(
      error_of<ModelError>(
          {{"parameterization", "score"}, {"schedule", "ve:0.01,50"}, {"time_range", {0.0, 1.0}}}),
      HasSubstr("prior: required with a ve schedule"));
}

TEST(ContractTest, BadManifestFieldsNameTheManifestAndField) {
  EXPECT_THAT(error_of<ModelError>({{"tme", "flow"}}),
              HasSubstr("m.pt.json: field 'tme' is not a contract field (valid: signature,"));
  EXPECT_THAT(
      error_of<ModelError>({{"time", "forward"}}),
      HasSubstr("m.pt.json: field 'time': unknown value 'forward' (valid: flow, diffusion)"));
  EXPECT_THAT(
      error_of<ModelError>({{"parameterization", "eps"}}),
      HasSubstr("field 'parameterization': unknown value 'eps' (valid: velocity, data, noise, "
                "score, v)"));
  EXPECT_THAT(error_of<ModelError>({{"schedule", "vp:0.1"}}),
              HasSubstr("field 'schedule': 'vp:0.1' takes 2 parameter(s)"));
  EXPECT_THAT(error_of<ModelError>({{"schedule", {{"name", "ve"}, {"sigma_min", 0.01}}}}),
              HasSubstr("field 'schedule'"));
  EXPECT_THAT(error_of<ModelError>({{"time_range", {0.1}}}),
              HasSubstr("field 'time_range': expected [LO, HI]"));
  EXPECT_THAT(error_of<ModelError>({{"prior", "laplace"}}),
              HasSubstr("field 'prior': unknown prior 'laplace' (valid: standard, normal:SCALE)"));
  EXPECT_THAT(error_of<ModelError>({{"shape", {8, -1}}}),
              HasSubstr("field 'shape': dimensions must be positive integers"));
  EXPECT_THAT(error_of<ModelError>(nlohmann::json::array()), HasSubstr("must be a JSON object"));
  // Object forms are strict: a misspelt or partial parameter set would otherwise change the number.
  EXPECT_THAT(error_of<ModelError>({{"schedule", {{"name", "vp"}, {"beta_max", 5}}}}),
              HasSubstr("field 'schedule': schedule 'vp' takes all of beta_min, beta_max or none"));
  EXPECT_THAT(
      error_of<ModelError>({{"schedule", {{"name", "cosine"}, {"c", 0.5}}}}),
      HasSubstr("field 'schedule': 'c' is not a parameter of schedule 'cosine' (valid: offset)"));
  EXPECT_THAT(
      error_of<ModelError>({{"schedule", {{"name", "vp"}, {"beta_min", 0.1}, {"beta_mx", 20}}}}),
      HasSubstr("'beta_mx' is not a parameter of schedule 'vp'"));
  EXPECT_THAT(error_of<ModelError>({{"prior", {{"name", "normal"}, {"scale", "big"}}}}),
              HasSubstr("field 'prior': 'scale' must be a number"));
  EXPECT_THAT(error_of<ModelError>({{"data", {{"levels", 1000}}}}),
              HasSubstr("field 'data': 'levels' must be in [2, 256], got 1000"));
  EXPECT_THAT(error_of<ModelError>({{"data", {{"scale", "minmax"}}}}),
              HasSubstr("field 'data': unknown map 'minmax'"));
  EXPECT_THAT(error_of<ModelError>({{"conditioning", "class"}}),
              HasSubstr("field 'conditioning': unknown value 'class' (valid: none, label)"));
  EXPECT_THAT(error_of<ModelError>({{"data", {{"level", 17}}}}),
              HasSubstr("field 'data': 'level' is not a data key (valid: levels, scale)"));
}

TEST(ContractTest, OptionsOverrideTheManifestAndAreNamedWhenBad) {
  ContractOptions options;
  options.time = TimeConvention::kDiffusion;
  const nlohmann::json manifest = {{"time", "flow"}};
  const auto c = resolve_contract(&manifest, "m.pt.json", options);
  EXPECT_EQ(c.time, TimeConvention::kDiffusion);
  // Named as the program and the Python module name the option.
  EXPECT_EQ(c.sources.at("time"), "option --time");

  // Overrides are values: their text is refused where it is parsed, naming the field.
  try {
    parse_time_convention("backwards");
    ADD_FAILURE() << "expected InvalidArgument";
  } catch (const InvalidArgument& e) {
    EXPECT_EQ(e.argument(), "time");
    EXPECT_EQ(e.reason(), "unknown value 'backwards' (valid: flow, diffusion)");
  }
  EXPECT_THAT(test::expect_error<InvalidArgument>([] { parse_schedule("karras"); }),
              HasSubstr("schedule: unknown schedule 'karras' (valid: linear, vp, cosine, ve)"));
  try {
    parse_time_range("0.1");
    ADD_FAILURE() << "expected InvalidArgument";
  } catch (const InvalidArgument& e) {
    EXPECT_EQ(e.argument(), "time_range");
    EXPECT_EQ(e.reason(), "expected LO,HI, got '0.1'");
  }
  // Values built in code are checked when the contract is resolved, named by their field.
  ContractOptions schedule;
  schedule.schedule = Schedule{ScheduleKind::kVp, 0.0, 20.0, 0.1};
  EXPECT_THAT(error_of<InvalidArgument>(manifest, schedule),
              HasSubstr("schedule: vp needs 0 < beta_min < beta_max, got 20, 0.1"));
  ContractOptions range;
  range.time_range = TimeRange{0.5, 0.2};
  EXPECT_THAT(error_of<InvalidArgument>(manifest, range),
              HasSubstr("time-range: must satisfy 0 <= LO < HI <= 1, got [0.5, 0.2]"));
  ContractOptions prior;
  prior.prior = -1.0;
  EXPECT_THAT(error_of<InvalidArgument>(manifest, prior),
              HasSubstr("prior: prior scale must be positive, got -1"));
  ContractOptions eps;
  eps.time_eps = 0.5;
  EXPECT_THAT(error_of<InvalidArgument>(manifest, eps),
              HasSubstr("time-eps: must be a number in (0, 0.5), got 0.5"));
  // A contradiction an override took part in is the caller's to fix: an invalid argument.
  ContractOptions param;
  param.parameterization = Parameterization::kNoise;
  EXPECT_THAT(error_of<InvalidArgument>(manifest, param),
              HasSubstr("schedule: required for parameterization 'noise'"));
}

TEST(ContractTest, TextFormsReadBackAsTheyAreWritten) {
  for (const auto* text : {"(x, t)", "(t, x)"}) EXPECT_EQ(to_string(parse_signature(text)), text);
  EXPECT_EQ(parse_signature("(t,x)"), Signature::kTX);
  for (const auto* text : {"vector", "scalar"}) EXPECT_EQ(to_string(parse_time_input(text)), text);
  for (const auto* text : {"velocity", "data", "noise", "score", "v"}) {
    EXPECT_EQ(to_string(parse_parameterization(text)), text);
  }
  for (const auto* text : {"none", "label"}) EXPECT_EQ(to_string(parse_conditioning(text)), text);
  EXPECT_EQ(to_string(parse_time_range("0.001,1")), "0.001,1");
  EXPECT_EQ(parse_prior_scale("standard"), 1.0);
  EXPECT_EQ(parse_prior_scale("normal:80"), 80.0);
  EXPECT_THAT(test::expect_error<InvalidArgument>([] { parse_prior_scale("normal:0"); }),
              HasSubstr("prior: prior scale must be positive, got 0"));
  EXPECT_THAT(test::expect_error<InvalidArgument>([] { parse_conditioning("class"); }),
              HasSubstr("conditioning: unknown value 'class' (valid: none, label)"));
}

TEST(ContractTest, ScheduleObjectsReadAsTheirTextForm) {
  const nlohmann::json manifest = {
      {"schedule", {{"name", "vp"}, {"beta_min", 0.2}, {"beta_max", 10}}}};
  const auto c = resolve_contract(&manifest, "m", {});
  EXPECT_EQ(to_string(*c.schedule), "vp:0.2,10");
}

TEST(ContractTest, NoManifestMeansTheFlowMatchingVelocityContract) {
  const auto c = resolve_contract(nullptr, "", {});
  EXPECT_EQ(c.parameterization, Parameterization::kVelocity);
  EXPECT_EQ(c.time, TimeConvention::kFlow);
  EXPECT_EQ(c.t_data(), 1.0);
  EXPECT_EQ(c.t_prior(), 0.0);
  EXPECT_EQ(c.sources.at("parameterization"), "default");
}

}  // namespace
}  // namespace flowlik
