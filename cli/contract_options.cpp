#include "cli/contract_options.h"

#include "cli/exit_codes.h"

namespace flowlik::cli {

void add_contract_options(CLI::App& cmd, ContractOverrides& o) {
  const std::string group = "Model contract (overrides the manifest)";
  cmd.add_option("--signature", o.signature, "forward argument order: \"(x, t)\" or \"(t, x)\"")
      ->group(group);
  cmd.add_option("--time-input", o.time_input, "t as a vector [B] or a scalar")->group(group);
  cmd.add_option("--time", o.time, "flow (t = 0 prior) or diffusion (s = 0 data)")->group(group);
  cmd.add_option("--parameterization", o.parameterization, "velocity, data, noise, score or v")
      ->group(group);
  cmd.add_option("--schedule", o.schedule,
                 "linear[:SIGMA_MIN], vp[:BETA_MIN,BETA_MAX], cosine[:C], ve:SIGMA_MIN,SIGMA_MAX")
      ->group(group);
  cmd.add_option("--time-range", o.time_range, "LO,HI integrated, in the model's own time")
      ->group(group);
  cmd.add_option("--time-eps", o.time_eps,
                 "start EPS from the data end, in the model's own time (score_sde's eps): "
                 "[EPS, HI] in diffusion time, [LO, 1 - EPS] in flow time")
      ->group(group);
  cmd.add_option("--prior", o.prior, "standard or normal:SCALE")->group(group);
  cmd.add_option("--conditioning", o.conditioning,
                 "none, or label: forward takes class labels y last")
      ->group(group);
  o.name_argument = option_for;
}

}  // namespace flowlik::cli
