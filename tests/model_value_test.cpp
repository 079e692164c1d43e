// A Model is a value (issue 19): loading gives an immutable model, and each score binds a field of
// its own to its data's shape, so copies scored on different shapes in two threads, and a score
// started from inside another's on_sample, see nothing of each other. Results equal one thread's to
// the bit.
#include <gtest/gtest.h>

#include <mutex>
#include <thread>
#include <vector>

#include "flowlik/flowlik.h"
#include "tests/closed_form.h"

namespace flowlik {
namespace {

// -x on any shape (NaN only for a first coordinate above 100, which these data never have).
Model shape_agnostic_model() { return Model::load(test::fixture_path("nan_for_large_input.pt")); }

Data data_of_width(int64_t width) {
  Data data;
  data.values = torch::linspace(-1.5, 1.5, 5 * width, torch::kFloat64).view({5, width});
  data.name = "width " + std::to_string(width);
  return data;
}

ScoreOptions fast() {
  ScoreOptions options;
  options.solver.method = Solver::kRk4;
  options.solver.steps = 4;
  return options;
}

std::vector<double> log_likelihoods(const Scores& scores) {
  std::vector<double> out;
  for (const auto& s : scores.samples) out.push_back(s.log_likelihood);
  return out;
}

// One model, data of two shapes, and each one's results from a single thread.
struct TwoShapes {
  Model model = shape_agnostic_model();
  Data narrow = data_of_width(4);
  Data wide = data_of_width(8);
  std::vector<double> expected_narrow = log_likelihoods(score(model, narrow, fast()));
  std::vector<double> expected_wide = log_likelihoods(score(model, wide, fast()));
};

TEST(ModelValueTest, CopiesOnTwoShapesInTwoThreadsGiveOneThreadsResults) {
  const TwoShapes c;
  ASSERT_NE(c.expected_narrow, c.expected_wide);

  std::vector<std::string> failures;
  std::mutex failures_mutex;
  auto worker = [&](const Model copy, const Data& data, const std::vector<double>& expected) {
    for (int i = 0; i < 20; ++i) {
      try {
        if (log_likelihoods(score(copy, data, fast())) != expected) {
          std::lock_guard lock(failures_mutex);
          failures.push_back(data.name + ": results differ from one thread's");
        }
      } catch (const std::exception& e) {
        std::lock_guard lock(failures_mutex);
        failures.push_back(data.name + ": " + e.what());
      }
    }
  };
  std::thread a(worker, c.model, std::cref(c.narrow), std::cref(c.expected_narrow));
  std::thread b(worker, c.model, std::cref(c.wide), std::cref(c.expected_wide));
  a.join();
  b.join();
  EXPECT_TRUE(failures.empty()) << failures.size() << " failures, first: " << failures.front();
}

TEST(ModelValueTest, AScoreFromInsideAnotherOnOtherDataLeavesItAlone) {
  const TwoShapes c;
  const Model copy = c.model;
  std::vector<double> inner;
  const auto outer = score(c.model, c.narrow, fast(), [&](const SampleResult& r) {
    if (r.index == 0) inner = log_likelihoods(score(copy, c.wide, fast()));
  });
  EXPECT_EQ(log_likelihoods(outer), c.expected_narrow);
  EXPECT_EQ(inner, c.expected_wide);
}

}  // namespace
}  // namespace flowlik
