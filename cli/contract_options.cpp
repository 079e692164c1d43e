#include "cli/contract_options.h"

#include "cli/number_options.h"

namespace flowlik::cli {

void add_contract_options(CLI::App& cmd, ContractOverrides& o) {
  const std::string group = "Model contract (overrides the manifest)";
  add_parsed(cmd, "--signature", o.signature, parse_signature,
             "forward argument order: \"(x, t)\" or \"(t, x)\"")
      ->group(group);
  add_parsed(cmd, "--time-input", o.time_input, parse_time_input, "t as a vector [B] or a scalar")
      ->group(group);
  add_parsed(cmd, "--time", o.time, parse_time_convention,
             "flow (t = 0 prior) or diffusion (s = 0 data)")
      ->group(group);
  add_parsed(cmd, "--parameterization", o.parameterization, parse_parameterization,
             "velocity, data, noise, score or v")
      ->group(group);
  add_parsed(cmd, "--schedule", o.schedule, parse_schedule,
             "linear[:SIGMA_MIN], vp[:BETA_MIN,BETA_MAX], cosine[:C], ve:SIGMA_MIN,SIGMA_MAX")
      ->group(group);
  add_parsed(cmd, "--time-range", o.time_range, parse_time_range,
             "LO,HI integrated, in the model's own time")
      ->group(group);
  cmd.add_option("--time-eps", o.time_eps,
                 "start EPS from the data end, in the model's own time (score_sde's eps): "
                 "[EPS, HI] in diffusion time, [LO, 1 - EPS] in flow time")
      ->group(group)
      ->check(finite_number());
  add_parsed(cmd, "--prior", o.prior, parse_prior_scale, "standard or normal:SCALE")->group(group);
  add_parsed(cmd, "--conditioning", o.conditioning, parse_conditioning,
             "none, or label: forward takes class labels y last")
      ->group(group);
}

}  // namespace flowlik::cli
