// The model contract: every way a model can break it is refused with a message naming the file and
// fault.
#include "likelihood/model/velocity_field.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "flowlik/error.h"
#include "tests/closed_form.h"
#include "tests/expect_error.h"

namespace flowlik {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

TEST(VelocityFieldTest, LoadsAndEvaluatesAScriptedModel) {
  auto field = VelocityField::load(test::fixture_path("gaussian.pt"), torch::kFloat64);
  field.bind_shape({2, 3});
  EXPECT_EQ(field.dim(), 6);
  EXPECT_EQ(field.parameter_count(), 0);  // the Gaussian's parameters are buffers
  const auto v = field.evaluate(torch::zeros({4, 6}, torch::kFloat64), 0.5);
  EXPECT_EQ(v.sizes(), (std::vector<int64_t>{4, 6}));
}

TEST(VelocityFieldTest, RefusesAFileThatIsNotTorchScript) {
  const auto path = test::fixture_path("not_a_model.pt");
  const auto m =
      test::expect_error<ModelError>([&] { VelocityField::load(path, torch::kFloat32); });
  EXPECT_THAT(m, AllOf(HasSubstr(path), HasSubstr("cannot load as a TorchScript module")));
  EXPECT_EQ(m.find('\n'), std::string::npos) << "one line";
}

TEST(VelocityFieldTest, RefusesAMissingFile) {
  const auto m = test::expect_error<ModelError>(
      [] { VelocityField::load("/no/such/model.pt", torch::kFloat32); });
  EXPECT_THAT(m, HasSubstr("/no/such/model.pt: cannot load"));
}

TEST(VelocityFieldTest, RefusesAnotherSignature) {
  const auto path = test::fixture_path("one_argument.pt");
  const auto m =
      test::expect_error<ModelError>([&] { VelocityField::load(path, torch::kFloat32); });
  EXPECT_THAT(m, AllOf(HasSubstr(path), HasSubstr("forward takes 1 arguments, expected 2")));
}

TEST(VelocityFieldTest, RefusesAnOutputThatIsNotATensor) {
  auto field = VelocityField::load(test::fixture_path("returns_tuple.pt"), torch::kFloat32);
  const auto m = test::expect_error<ModelError>([&] { field.bind_shape({3}); });
  EXPECT_THAT(m, AllOf(HasSubstr("returns_tuple.pt"), HasSubstr("expected a Tensor")));
}

TEST(VelocityFieldTest, RefusesANonFloatingOutput) {
  auto field = VelocityField::load(test::fixture_path("returns_integer.pt"), torch::kFloat32);
  const auto m = test::expect_error<ModelError>([&] { field.bind_shape({3}); });
  EXPECT_THAT(m, AllOf(HasSubstr("returns_integer.pt"), HasSubstr("dtype Long"),
                       HasSubstr("expected floating point")));
}

TEST(VelocityFieldTest, RefusesAnOutputOfAnotherShape) {
  auto field = VelocityField::load(test::fixture_path("wrong_shape.pt"), torch::kFloat32);
  const auto m = test::expect_error<ModelError>([&] { field.bind_shape({3}); });
  EXPECT_THAT(m, AllOf(HasSubstr("wrong_shape.pt"),
                       HasSubstr("returns shape [2, 1] for input of shape [2, 3]")));
}

TEST(VelocityFieldTest, RefusesDataOfAShapeTheModelCannotTake) {
  auto field = VelocityField::load(test::fixture_path("fixed_shape.pt"), torch::kFloat32);
  EXPECT_NO_THROW(field.bind_shape({3}));
  const auto m = test::expect_error<DataError>([&] { field.bind_shape({8, 8}); });
  EXPECT_THAT(
      m, AllOf(HasSubstr("fixed_shape.pt"), HasSubstr("forward fails on data of shape [8, 8]")));
  EXPECT_EQ(m.find('\n'), std::string::npos) << "one line";
}

}  // namespace
}  // namespace flowlik
