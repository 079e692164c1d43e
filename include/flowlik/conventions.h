// A model's conventions (its contract: how the exported network's inputs and output relate to the
// flow velocity, docs/models.md "The model contract", shared/MATH.md sections 1, 4, 5) and the map
// of discrete data into its space (section 6), as values. Each has parse_* for its text form, as
// the flowlik program's options and the manifest write it, throwing InvalidArgument naming the
// field (flowlik/error.h), and to_string back to that form.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace flowlik {

enum class Signature { kXT, kTX };                // forward(x, t) or forward(t, x)
enum class TimeInput { kVector, kScalar };        // t as [B] or as a 0-d tensor
enum class TimeConvention { kFlow, kDiffusion };  // t = 0 prior (flow) or s = 0 data (diffusion)
enum class Parameterization { kVelocity, kData, kNoise, kScore, kV };
enum class Conditioning { kNone, kLabel };  // label: forward takes class labels y last

// A Gaussian probability path x_t = alpha_t x1 + sigma_t x0 in flow time (shared/MATH.md section
// 4). Written "linear[:SIGMA_MIN]", "vp[:BETA_MIN,BETA_MAX]", "cosine[:C]",
// "ve:SIGMA_MIN,SIGMA_MAX".
enum class ScheduleKind { kLinear, kVp, kCosine, kVe };
struct Schedule {
  ScheduleKind kind = ScheduleKind::kLinear;
  double sigma_min = 0.0;        // linear: sigma_1; ve: sigma at the data end
  double beta_min = 0.1;         // vp
  double beta_max = 20.0;        // vp
  double sigma_max = 50.0;       // ve: sigma at the prior end
  double cosine_offset = 0.008;  // cosine: c of Nichol and Dhariwal

  // True for paths with alpha^2 + sigma^2 = 1, on which diffusion v-prediction is defined.
  bool variance_preserving() const {
    return kind == ScheduleKind::kVp || kind == ScheduleKind::kCosine;
  }
  bool operator==(const Schedule&) const = default;
};

// The interval integrated, in the model's own time: written "LO,HI", 0 <= LO < HI <= 1.
struct TimeRange {
  double lo = 0.0;
  double hi = 1.0;
  bool operator==(const TimeRange&) const = default;
};

// How dequantized data in [0, 1) map into the model's space: unit (as they are), centered (2x - 1)
// or logit (logit(lambda + (1 - 2 lambda) x), FFJORD's, lambda 1e-6 unless written logit:LAMBDA).
enum class ScaleMap { kUnit, kCentered, kLogit };
struct DataMap {
  ScaleMap kind = ScaleMap::kUnit;
  double logit_lambda = 1e-6;  // kLogit: in [0, 0.5)
  bool operator==(const DataMap&) const = default;
};

// The noise u within each bin: uniform on [0, 1), or u = 0.5 + sigma e with e a standard normal
// truncated to |e| <= 0.5 / sigma (i-DODE's training-free dequantization), sigma in bins, taken
// from the model's schedule at its data end when not given. Written "uniform", "truncated-normal"
// or "truncated-normal:SIGMA".
enum class DequantizationKind { kUniform, kTruncatedNormal };
struct Dequantization {
  DequantizationKind kind = DequantizationKind::kUniform;
  std::optional<double> sigma;  // kTruncatedNormal: in [1e-6, 10] bins
  bool operator==(const Dequantization&) const = default;
};

// A model's contract in effect: each field from the manifest, overridden field by field by the
// options (ContractOverrides, flowlik/options.h), with the origin of each. Model::contract() gives
// it; reports record it (RunReport::ModelRecord).
struct Contract {
  Signature signature = Signature::kXT;
  TimeInput time_input = TimeInput::kVector;
  TimeConvention time = TimeConvention::kFlow;
  Parameterization parameterization = Parameterization::kVelocity;
  std::optional<Schedule> schedule;
  double time_lo = 0.0;  // the interval integrated, in the model's own time
  double time_hi = 1.0;
  double prior_scale = 1.0;  // p0 = N(0, prior_scale^2 I)
  std::optional<std::vector<int64_t>> shape;
  std::optional<int64_t> data_levels;
  std::optional<DataMap> data_scale;
  // Forward takes a third argument, the class label y: scores log p(x | y).
  bool conditional = false;
  // Field name -> where its value came from: "manifest (embedded)", "manifest (FILE)", "option
  // --NAME" (option_name, flowlik/error.h), "default", "not declared".
  std::map<std::string, std::string> sources;

  // The integration interval in flow time: from the data end to the prior end.
  double t_data() const { return time == TimeConvention::kFlow ? time_hi : 1.0 - time_lo; }
  double t_prior() const { return time == TimeConvention::kFlow ? time_lo : 1.0 - time_hi; }
  bool operator==(const Contract&) const = default;
};

// parse_* name the field they parse in the InvalidArgument they throw: signature, time_input, time,
// parameterization, conditioning, schedule, time_range, prior (the scale S of "normal:S";
// "standard" is 1), scale (the data map), dequantization.
Signature parse_signature(const std::string& text);  // "(x, t)" | "(t, x)", spaces ignored
TimeInput parse_time_input(const std::string& text);
TimeConvention parse_time_convention(const std::string& text);
Parameterization parse_parameterization(const std::string& text);
Conditioning parse_conditioning(const std::string& text);
Schedule parse_schedule(const std::string& text);
TimeRange parse_time_range(const std::string& text);
double parse_prior_scale(const std::string& text);
DataMap parse_data_map(const std::string& text);
Dequantization parse_dequantization(const std::string& text);

std::string to_string(Signature v);
std::string to_string(TimeInput v);
std::string to_string(TimeConvention v);
std::string to_string(Parameterization v);
std::string to_string(Conditioning v);
std::string to_string(const Schedule& v);  // "vp:0.1,20"
std::string to_string(const TimeRange& v);
std::string to_string(const DataMap& v);  // "unit", "centered", "logit:1e-06"
std::string to_string(const Dequantization& v);

// The checks parse_* make on the numbers, for values built in code: each throws InvalidArgument
// naming `field` when a number is out of its range.
void check(const Schedule& schedule, const std::string& field = "schedule");
void check(const TimeRange& range, const std::string& field = "time_range");
void check(const DataMap& map, const std::string& field = "scale");
void check(const Dequantization& dequantization, const std::string& field = "dequantization");

}  // namespace flowlik
