// The published protocols as option presets (flowlik/options.h): each expands into ordinary
// options, the caller's own choices win, and an unknown name is refused with the valid ones.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "flowlik/error.h"
#include "flowlik/options.h"
#include "tests/expect_error.h"

namespace flowlik {
namespace {

TEST(ProtocolTest, ScoreSdeSetsEveryOptionItLists) {
  ModelOptions model;
  ScoreOptions score;
  apply_protocol(find_protocol("score-sde"), model, score);
  EXPECT_EQ(score.data.scale, DataMap{ScaleMap::kCentered});
  EXPECT_EQ(score.data.dequantization, Dequantization{});
  EXPECT_EQ(score.data.dequant_draws, 5);
  EXPECT_EQ(score.data.dequant_bound, DrawBound::kMean);
  EXPECT_EQ(score.solver.method, Solver::kDopri5);
  EXPECT_EQ(score.solver.rtol, 1e-5);
  EXPECT_EQ(score.solver.atol, 1e-5);
  EXPECT_EQ(score.trace.method, Trace::kHutchinson);
  EXPECT_EQ(score.trace.noise, ProbeNoise::kRademacher);
  EXPECT_EQ(score.trace.probes, 1);
  EXPECT_EQ(model.contract.time_eps, 1e-5);
}

TEST(ProtocolTest, OptionsTheCallerKeepsAreLeftAlone) {
  ModelOptions model;
  ScoreOptions score;
  score.solver.rtol = 1e-3;
  score.data.dequant_draws = 2;
  apply_protocol(find_protocol("flow-matching"), model, score, {"rtol", "dequant-draws"});
  EXPECT_EQ(score.solver.rtol, 1e-3);
  EXPECT_EQ(score.data.dequant_draws, 2);
  EXPECT_EQ(score.solver.atol, 1e-5);
  EXPECT_EQ(score.data.dequant_bound, DrawBound::kImportanceWeighted);
  EXPECT_EQ(score.solver.error_norm, ErrorNorm::kMixed);
}

TEST(ProtocolTest, EveryProtocolNamesItsSourceAndOnlyKnownOptions) {
  const std::set<std::string> names = {"score-sde", "flow-matching", "ffjord", "i-dode"};
  std::set<std::string> seen;
  for (const auto& p : protocols()) {
    seen.insert(p.name);
    EXPECT_FALSE(p.source.empty()) << p.name;
    // Applying checks each option has a setter and each value parses.
    ModelOptions model;
    ScoreOptions score;
    EXPECT_NO_THROW(apply_protocol(p, model, score)) << p.name;
  }
  EXPECT_EQ(seen, names);
  ModelOptions model;
  ScoreOptions score;
  apply_protocol(find_protocol("ffjord"), model, score);
  EXPECT_EQ(score.data.scale, (DataMap{ScaleMap::kLogit, 1e-6}));
  apply_protocol(find_protocol("i-dode"), model, score);
  EXPECT_EQ(score.data.dequantization,
            (Dequantization{DequantizationKind::kTruncatedNormal, std::nullopt}));
}

TEST(ProtocolTest, AnUnknownNameIsRefusedWithTheValidOnes) {
  test::expect_error<InvalidArgument>(
      [] { find_protocol("vdm"); },
      {"protocol: unknown protocol 'vdm' (valid: score-sde, flow-matching, ffjord, i-dode)"});
}

}  // namespace
}  // namespace flowlik
