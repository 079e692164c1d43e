// What a caller of the flowlik library chooses, as plain values: how a model is loaded and how a
// dataset is scored. Names and defaults are those of the flowlik program's options (`max_nfe` is
// --max-nfe); an invalid value is refused when it is used, with an InvalidArgument naming the field
// (flowlik/error.h).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace flowlik {

// How messages and reports name an option the caller gave (a field of these structs, such as
// "levels"). Unset: by the field's name. The flowlik program names its flag ("--levels").
using ArgumentNamer = std::function<std::string(const std::string& argument)>;

// Values that override the model's manifest, field by field, as text in the manifest's own forms
// (docs/models.md, "The model contract").
struct ContractOverrides {
  std::optional<std::string> signature;         // "(x, t)" | "(t, x)"
  std::optional<std::string> time_input;        // vector | scalar
  std::optional<std::string> time;              // flow | diffusion
  std::optional<std::string> parameterization;  // velocity | data | noise | score | v
  std::optional<std::string> schedule;    // linear[:SIGMA_MIN] | vp[:B0,B1] | cosine[:C] | ve:S0,S1
  std::optional<std::string> time_range;  // LO,HI
  std::optional<std::string> prior;       // standard | normal:SCALE
  std::optional<std::string> conditioning;  // none | label
  ArgumentNamer name_argument;              // an override's origin reads "option NAME"
};

struct ModelOptions {
  std::string dtype = "float32";  // float32 | float64: the states', and the network's parameters'
  std::string device = "cpu";     // cpu | cuda | cuda:N (CUDA is loaded when first asked for)
  ContractOverrides contract;
};

struct SolverOptions {
  std::string method =
      "dopri5";        // dopri5, tsit5, bosh3, rkf78 (adaptive, per sample); rk4, midpoint, euler
  double rtol = 1e-5;  // adaptive solvers
  double atol = 1e-5;
  std::string error_norm = "rms";  // rms | max | mixed
  int64_t steps = 100;             // fixed-step solvers
  int64_t max_nfe = 100000;        // a sample whose solve needs more evaluations fails alone
};

struct TraceOptions {
  std::string method = "exact";      // exact | hutchinson
  std::string noise = "rademacher";  // rademacher | gaussian (hutchinson)
  int64_t probes = 1;                // per sample (hutchinson)
  int64_t max_rows = 1 << 14;  // rows per batched Jacobian call of the exact trace (memory bound)
};

// How raw data map into the model's space. Unset fields come from the model's manifest.
struct DataOptions {
  std::optional<int64_t> levels;     // discrete (uint8) data: levels K (default 256)
  std::optional<std::string> scale;  // discrete data: unit | centered | logit[:LAMBDA]
  int64_t dequant_draws = 1;    // uniform dequantization draws per sample (importance-weighted)
  ArgumentNamer name_argument;  // an option's origin reads "option NAME"
};

struct ScoreOptions {
  SolverOptions solver;
  TraceOptions trace;
  DataOptions data;
  uint64_t seed = 0;        // dequantization noise and probes, keyed by (seed, sample index)
  int64_t batch_size = 32;  // rows solved together; results do not depend on it
};

}  // namespace flowlik
