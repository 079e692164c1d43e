// What a caller of the flowlik library chooses, as plain values: how a model is loaded and how a
// dataset is scored. Names and defaults are those of the flowlik program's options (`max_nfe` is
// --max-nfe). Closed choices are enums, with parse_* for their names as the program's options take
// them; a value out of range (a negative count, a bad map) is refused when it is used, with an
// InvalidArgument naming the field (flowlik/error.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "flowlik/conventions.h"

namespace flowlik {

// The closed choices. dopri5, tsit5, bosh3, rkf78 are adaptive (a step size per sample); rk4,
// midpoint, euler take fixed steps.
enum class Solver { kDopri5, kTsit5, kBosh3, kRkf78, kRk4, kMidpoint, kEuler };
// How an adaptive solver measures a step's error per sample: rms, max (Odeint's) or mixed
// (torchdiffeq's: the larger RMS of the state's and of the log-density's parts).
enum class ErrorNorm { kMax, kRms, kMixed };
// How an adaptive solver takes the integral of the trace (shared/MATH.md section 2): augmented (the
// trace integrated with the state, one error control for both: every stage evaluates the trace) or
// gauss-legendre (the state solved alone, its steps controlled on x; on each accepted step the
// trace at the three Gauss-Legendre points of the step, on the solver's dense output: three trace
// evaluations a step in place of six; dopri5 only).
enum class Quadrature { kAugmented, kGaussLegendre };
enum class Trace { kExact, kHutchinson };
enum class ProbeNoise { kRademacher, kGaussian };  // Hutchinson's probes
enum class Dtype { kFloat32, kFloat64 };
// How M dequantization draws combine: importance-weighted (logmeanexp, the tighter bound) or mean
// (the mean of the draws' bounds: the dataset scored M times, as score_sde repeats it).
enum class DrawBound { kImportanceWeighted, kMean };

// Each choice by its name ("dopri5", "rms", "exact", "rademacher", "float32",
// "importance-weighted") and back. parse_* throw InvalidArgument naming the field (solver,
// error_norm, quadrature, trace, noise, dtype, dequant_bound) and listing the valid names.
Solver parse_solver(const std::string& name);
ErrorNorm parse_error_norm(const std::string& name);
Quadrature parse_quadrature(const std::string& name);
Trace parse_trace(const std::string& name);
ProbeNoise parse_probe_noise(const std::string& name);
Dtype parse_dtype(const std::string& name);
DrawBound parse_draw_bound(const std::string& name);
std::string to_string(Solver solver);
std::string to_string(ErrorNorm norm);
std::string to_string(Quadrature quadrature);
std::string to_string(Trace trace);
std::string to_string(ProbeNoise noise);
std::string to_string(Dtype dtype);
std::string to_string(DrawBound bound);
bool is_adaptive(Solver solver);

// The device a model runs on: the CPU, or a CUDA device by index (-1: the current one). Written
// "cpu", "cuda" or "cuda:N"; whether a CUDA device exists is checked when a model is loaded on it
// (LibTorch's CUDA backend is loaded then, not before).
struct Device {
  enum class Kind { kCpu, kCuda };
  Kind kind = Kind::kCpu;
  int index = -1;  // CUDA: the device's index, or -1
  static Device cpu() { return {}; }
  static Device cuda(int index = -1) { return {Kind::kCuda, index}; }
  bool is_cuda() const { return kind == Kind::kCuda; }
  bool operator==(const Device&) const = default;
};
// parse_device throws InvalidArgument naming "device" and listing the forms.
Device parse_device(const std::string& name);
std::string to_string(const Device& device);

// Values that override the model's manifest, field by field (docs/models.md, "The model
// contract"); the program's options and the manifest write them as text (flowlik/conventions.h).
struct ContractOverrides {
  std::optional<Signature> signature;
  std::optional<TimeInput> time_input;
  std::optional<TimeConvention> time;
  std::optional<Parameterization> parameterization;
  std::optional<Schedule> schedule;
  std::optional<TimeRange> time_range;
  // EPS: the integration starts EPS from the data end, in the model's own time (score_sde's eps):
  // [EPS, HI] in diffusion time, [LO, 1 - EPS] in flow time, LO and HI from the time range.
  std::optional<double> time_eps;
  std::optional<double> prior;  // the prior's scale S: p0 = N(0, S^2 I)
  std::optional<Conditioning> conditioning;
};

struct ModelOptions {
  Dtype dtype = Dtype::kFloat32;  // the states', and the network's parameters'
  Device device;                  // the CPU by default
  ContractOverrides contract;
};

struct SolverOptions {
  Solver method = Solver::kDopri5;
  double rtol = 1e-5;  // adaptive solvers
  double atol = 1e-5;
  ErrorNorm error_norm = ErrorNorm::kRms;          // adaptive solvers
  Quadrature quadrature = Quadrature::kAugmented;  // adaptive solvers (gauss-legendre: dopri5)
  int64_t steps = 100;                             // fixed-step solvers
  int64_t max_nfe = 100000;  // a sample whose solve needs more evaluations fails alone
};

struct TraceOptions {
  Trace method = Trace::kExact;
  ProbeNoise noise = ProbeNoise::kRademacher;  // hutchinson
  int64_t probes = 1;                          // per sample (hutchinson)
  int64_t max_rows = 1 << 14;  // rows per batched Jacobian call of the exact trace (memory bound)
};

// How raw data map into the model's space. Unset fields come from the model's manifest.
struct DataOptions {
  std::optional<int64_t> levels;  // discrete (uint8) data: levels K (default 256)
  std::optional<DataMap> scale;   // discrete data: unit | centered | logit[:LAMBDA]
  // The noise within each bin: uniform, or a normal truncated to the bin (SIGMA in bins, from the
  // model's schedule at its data end when not given).
  Dequantization dequantization;
  int64_t dequant_draws = 1;  // dequantization draws per sample
  DrawBound dequant_bound = DrawBound::kImportanceWeighted;
};

// The preprocessing in effect for a run on discrete data: DataOptions resolved against the model's
// manifest and the data (levels, map, noise, draws), with where each came from; `discrete` false
// (the rest unused): float data scored as given. Reports record it (RunReport::preprocessing).
struct Preprocessing {
  bool discrete = false;
  int64_t levels = 0;                // K, discrete only
  ScaleMap scale = ScaleMap::kUnit;  // discrete only
  double logit_lambda = 0.0;         // kLogit only
  uint64_t seed = 0;                 // dequantization noise
  int64_t draws = 1;                 // M dequantization draws per sample (shared/MATH.md section 6)
  DequantizationKind dequantization = DequantizationKind::kUniform;
  double noise_sigma = 0.0;  // kTruncatedNormal: the normal's standard deviation, in bins
  DrawBound bound = DrawBound::kImportanceWeighted;
  std::string dequantization_source;  // "option --dequantization", "default", ...
  std::string levels_source;          // "option --levels", "manifest (...)", "default"
  std::string scale_source;
  bool operator==(const Preprocessing&) const = default;
};

struct ScoreOptions {
  SolverOptions solver;
  TraceOptions trace;
  DataOptions data;
  uint64_t seed = 0;        // dequantization noise and probes, keyed by (seed, sample index)
  int64_t batch_size = 32;  // rows solved together; results do not depend on it
};

// A published evaluation protocol: the options it sets, by the flowlik program's option names
// ("rtol", "dequant-draws"), with their values as the program's options take them. A preset hides
// nothing: a report lists every setting (docs/protocols.md).
struct ProtocolSetting {
  std::string option;
  std::string value;
};
struct Protocol {
  std::string name;    // "score-sde", "flow-matching", "ffjord", "i-dode"
  std::string source;  // the paper and code it follows
  std::vector<ProtocolSetting> settings;
};

// Every protocol flowlik knows, in a fixed order.
const std::vector<Protocol>& protocols();
// The protocol called `name`; throws InvalidArgument naming "protocol" and listing the names.
const Protocol& find_protocol(const std::string& name);
// Sets each of the protocol's options in `model` and `score`, except those named in `keep` (options
// the caller set itself, which win).
void apply_protocol(const Protocol& protocol, ModelOptions& model, ScoreOptions& score,
                    const std::vector<std::string>& keep = {});

}  // namespace flowlik
