// flowlik::inspect (include/flowlik/inspect.h, issue 20): the contract with its sources, the smoke
// run and the cost of a model, through the public API; a model without a shape needs one given.
#include "flowlik/inspect.h"

#include <gtest/gtest.h>

#include "tests/closed_form.h"
#include "tests/expect_error.h"

namespace flowlik {
namespace {

TEST(InspectTest, ReportsTheContractTheSmokeRunAndTheCost) {
  // A VP noise-prediction mixture with its manifest (shape [2], time range [1e-3, 1]).
  const auto report = inspect(Model::load(test::fixture_path("vp_noise_embedded.pt")));
  EXPECT_TRUE(report.ok());
  EXPECT_EQ(report.format, "torchscript");
  EXPECT_EQ(report.dim, 2);
  EXPECT_EQ(report.smoke_input_shape, (std::vector<int64_t>{4, 2}));
  EXPECT_EQ(report.smoke_output_shape, (std::vector<int64_t>{4, 2}));
  EXPECT_EQ(report.contract.parameterization, Parameterization::kNoise);
  EXPECT_EQ(report.contract.time_lo, 1e-3);
  EXPECT_EQ(report.cost.solve_status, "ok");
  EXPECT_GT(report.cost.nfe, 0);
  EXPECT_TRUE(std::isfinite(report.cost.log_likelihood));
  EXPECT_EQ(report.cost.exact_rows, 2);  // min(D, 64)
  EXPECT_GT(report.cost.exact_max_rows, 0);

  const auto json = to_json(report);
  EXPECT_EQ(json["smoke"]["one_sample"]["nfe"], report.cost.nfe);
  EXPECT_EQ(json["cost"]["exact_max_rows_how"],
            "--max-rows auto: " + report.cost.exact_max_rows_how);
  const auto text = describe(report);
  EXPECT_NE(text.find("    parameterization  \"noise\"  [manifest"), std::string::npos) << text;
  EXPECT_NE(text.find("smoke: velocity   input [4, 2] -> output [4, 2], all finite"),
            std::string::npos)
      << text;
}

TEST(InspectTest, AModelWithoutAShapeNeedsOneGiven) {
  const auto model = Model::load(test::fixture_path("gaussian.pt"));
  test::expect_error<InvalidArgument>(
      [&] { inspect(model); },
      {"shape: the model declares no shape in a manifest; give one, e.g. --shape 8,8"});
  const auto report = inspect(model, std::vector<int64_t>{2, 3});  // the model's [B, 2, 3]
  EXPECT_EQ(report.dim, 6);
  EXPECT_TRUE(report.smoke_finite);
}

}  // namespace
}  // namespace flowlik
