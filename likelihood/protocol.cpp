// The published evaluation protocols (flowlik/options.h, docs/protocols.md): each a list of the
// program's options with the values its paper and code use, sources in the comments.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <functional>
#include <map>

#include "flowlik/error.h"
#include "flowlik/options.h"
#include "flowlik/text_number.h"

namespace flowlik {
namespace {

// Settings in the order the report lists them: the data's (map, noise, draws, bound), then the
// solve's.
std::vector<ProtocolSetting> settings(std::vector<ProtocolSetting> data,
                                      const std::vector<ProtocolSetting>& solve) {
  data.insert(data.end(), solve.begin(), solve.end());
  return data;
}

// What all four protocols solve with: an RK45-class pair (Dormand-Prince 5(4)) at rtol = atol =
// 1e-5 and one Rademacher probe; the error norm is their integrator's (scipy's RMS over the state,
// or torchdiffeq's mixed norm).
std::vector<ProtocolSetting> dopri5_one_probe(const char* error_norm) {
  return {{"solver", "dopri5"},    {"rtol", "1e-5"},
          {"atol", "1e-5"},        {"error-norm", error_norm},
          {"trace", "hutchinson"}, {"noise", "rademacher"},
          {"probes", "1"}};
}

std::vector<Protocol> make_protocols() {
  auto score_sde = settings({{"scale", "centered"},
                             {"dequantization", "uniform"},
                             {"dequant-draws", "5"},
                             {"dequant-bound", "mean"}},
                            dopri5_one_probe("rms"));
  score_sde.push_back({"time-eps", "1e-5"});
  return {
      // Song et al. 2021, yang-song/score_sde_pytorch: likelihood.py (RK45 at rtol = atol = 1e-5
      // from eps = 1e-5, one Rademacher probe), run_lib.py (the test set scored 5 times with new
      // uniform noise, the mean of the passes; centered data, +7 bits).
      {"score-sde",
       "Song et al. 2021, Score-Based Generative Modeling through SDEs (yang-song/score_sde: "
       "likelihood.py, run_lib.py)",
       score_sde},
      // Lipman et al. 2023, Flow Matching for Generative Modeling: appendix E.2 (dopri5 through
      // torchdiffeq at 1e-5, Hutchinson, importance-weighted uniform dequantization), table 4
      // (CIFAR-10 with K = 50 draws: 2.99 bpd). The probe's law is not stated; flow_matching's
      // compute_likelihood draws Rademacher probes.
      {"flow-matching",
       "Lipman et al. 2023, Flow Matching for Generative Modeling, appendix E.2 and table 4 "
       "(CIFAR-10, K = 50)",
       settings({{"scale", "centered"},
                 {"dequantization", "uniform"},
                 {"dequant-draws", "50"},
                 {"dequant-bound", "importance-weighted"}},
                dopri5_one_probe("mixed"))},
      // Grathwohl et al. 2019, rtqichen/ffjord train_cnf.py: logit map with alpha = 1e-6, uniform
      // noise on the test set too, dopri5 at atol = rtol = 1e-5 (torchdiffeq), Hutchinson with
      // --rademacher True, one draw.
      {"ffjord",
       "Grathwohl et al. 2019, FFJORD (rtqichen/ffjord: train_cnf.py, lib/layers/elemwise.py)",
       settings({{"scale", "logit:1e-6"},
                 {"dequantization", "uniform"},
                 {"dequant-draws", "1"},
                 {"dequant-bound", "importance-weighted"}},
                dopri5_one_probe("mixed"))},
      // Zheng et al. 2023, thu-ml/i-DODE model_vdm.py (eval_type "tn"): the noise a truncated
      // normal with the model's own sigma_0 / alpha_0 at its start time, truncated to the bin; RK45
      // at 1e-5; one Rademacher probe; num_importance = 1 means 5 draws, their mean.
      {"i-dode",
       "Zheng et al. 2023, Improved Techniques for Maximum Likelihood Estimation for Diffusion "
       "ODEs (thu-ml/i-DODE: model_vdm.py, eval_type \"tn\")",
       settings({{"scale", "centered"},
                 {"dequantization", "truncated-normal"},
                 {"dequant-draws", "5"},
                 {"dequant-bound", "mean"}},
                dopri5_one_probe("rms"))},
  };
}

int64_t setting_integer(const ProtocolSetting& s) {
  const auto value = parse_finite_double(s.value);
  if (!value || *value != static_cast<double>(static_cast<int64_t>(*value))) {
    throw InvalidArgument(s.option, fmt::format("expected an integer, got '{}'", s.value));
  }
  return static_cast<int64_t>(*value);
}

double setting_number(const ProtocolSetting& s) {
  const auto value = parse_finite_double(s.value);
  if (!value) throw InvalidArgument(s.option, fmt::format("expected a number, got '{}'", s.value));
  return *value;
}

using Setter = std::function<void(const ProtocolSetting&, ModelOptions&, ScoreOptions&)>;

const std::map<std::string, Setter>& setters() {
  static const std::map<std::string, Setter> table = {
      {"scale", [](const auto& s, auto&, auto& o) { o.data.scale = parse_data_map(s.value); }},
      {"dequantization", [](const auto& s, auto&,
                            auto& o) { o.data.dequantization = parse_dequantization(s.value); }},
      {"dequant-draws",
       [](const auto& s, auto&, auto& o) { o.data.dequant_draws = setting_integer(s); }},
      {"dequant-bound",
       [](const auto& s, auto&, auto& o) { o.data.dequant_bound = parse_draw_bound(s.value); }},
      {"solver", [](const auto& s, auto&, auto& o) { o.solver.method = parse_solver(s.value); }},
      {"rtol", [](const auto& s, auto&, auto& o) { o.solver.rtol = setting_number(s); }},
      {"atol", [](const auto& s, auto&, auto& o) { o.solver.atol = setting_number(s); }},
      {"error-norm",
       [](const auto& s, auto&, auto& o) { o.solver.error_norm = parse_error_norm(s.value); }},
      {"trace", [](const auto& s, auto&, auto& o) { o.trace.method = parse_trace(s.value); }},
      {"noise", [](const auto& s, auto&, auto& o) { o.trace.noise = parse_probe_noise(s.value); }},
      {"probes", [](const auto& s, auto&, auto& o) { o.trace.probes = setting_integer(s); }},
      {"time-eps", [](const auto& s, auto& m, auto&) { m.contract.time_eps = setting_number(s); }},
  };
  return table;
}

}  // namespace

const std::vector<Protocol>& protocols() {
  static const std::vector<Protocol> all = make_protocols();
  return all;
}

const Protocol& find_protocol(const std::string& name) {
  const auto& all = protocols();
  const auto it =
      std::find_if(all.begin(), all.end(), [&](const Protocol& p) { return p.name == name; });
  if (it == all.end()) {
    std::vector<std::string> names;
    for (const auto& p : all) names.push_back(p.name);
    throw InvalidArgument(
        "protocol", fmt::format("unknown protocol '{}' (valid: {})", name, fmt::join(names, ", ")));
  }
  return *it;
}

void apply_protocol(const Protocol& protocol, ModelOptions& model, ScoreOptions& score,
                    const std::vector<std::string>& keep) {
  for (const auto& setting : protocol.settings) {
    if (std::find(keep.begin(), keep.end(), setting.option) != keep.end()) continue;
    setters().at(setting.option)(setting, model, score);
  }
}

}  // namespace flowlik
