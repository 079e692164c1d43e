// The text forms of flowlik/conventions.h, as the program's options and a manifest write them.
#include "flowlik/conventions.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <string_view>
#include <utility>
#include <vector>

#include "flowlik/error.h"
#include "flowlik/text_number.h"

namespace flowlik {
namespace {

template <typename E>
using Names = std::vector<std::pair<std::string, E>>;

const Names<Signature> kSignatures = {{"(x, t)", Signature::kXT}, {"(t, x)", Signature::kTX}};
const Names<TimeInput> kTimeInputs = {{"vector", TimeInput::kVector},
                                      {"scalar", TimeInput::kScalar}};
const Names<TimeConvention> kTimes = {{"flow", TimeConvention::kFlow},
                                      {"diffusion", TimeConvention::kDiffusion}};
const Names<Parameterization> kParameterizations = {{"velocity", Parameterization::kVelocity},
                                                    {"data", Parameterization::kData},
                                                    {"noise", Parameterization::kNoise},
                                                    {"score", Parameterization::kScore},
                                                    {"v", Parameterization::kV}};
const Names<Conditioning> kConditionings = {{"none", Conditioning::kNone},
                                            {"label", Conditioning::kLabel}};

template <typename E>
E parse_name(const std::string& text, const Names<E>& names, const std::string& field) {
  std::vector<std::string> valid;
  for (const auto& [name, value] : names) {
    if (text == name) return value;
    valid.push_back(name);
  }
  throw InvalidArgument(
      field, fmt::format("unknown value '{}' (valid: {})", text, fmt::join(valid, ", ")));
}

template <typename E>
std::string name_of(E value, const Names<E>& names) {
  for (const auto& [name, v] : names) {
    if (v == value) return name;
  }
  return "unknown";
}

double parse_number(const std::string& text, const std::string& field, const std::string& form) {
  const auto value = parse_finite_double(text);
  if (!value) {
    throw InvalidArgument(field, fmt::format("'{}' is not a number (expected {})", text, form));
  }
  return *value;
}

// The numbers after NAME: in "NAME:A,B": none when there is no colon, else exactly `count`.
std::vector<double> parameters(const std::string& text, size_t count, const std::string& field,
                               const std::string& form) {
  const auto colon = text.find(':');
  if (colon == std::string::npos) return {};
  std::vector<double> out;
  for (const auto& item : split_on_commas(text.substr(colon + 1))) {
    out.push_back(parse_number(item, field, form));
  }
  if (out.size() != count) {
    throw InvalidArgument(field, fmt::format("'{}' takes {} parameter(s): {}", text, count, form));
  }
  return out;
}

}  // namespace

Signature parse_signature(const std::string& text) {
  std::string compact = text;
  std::erase(compact, ' ');
  if (compact == "(x,t)") return Signature::kXT;
  if (compact == "(t,x)") return Signature::kTX;
  return parse_name(text, kSignatures, "signature");  // throws, listing the forms
}
TimeInput parse_time_input(const std::string& text) {
  return parse_name(text, kTimeInputs, "time_input");
}
TimeConvention parse_time_convention(const std::string& text) {
  return parse_name(text, kTimes, "time");
}
Parameterization parse_parameterization(const std::string& text) {
  return parse_name(text, kParameterizations, "parameterization");
}
Conditioning parse_conditioning(const std::string& text) {
  return parse_name(text, kConditionings, "conditioning");
}

std::string to_string(Signature v) { return name_of(v, kSignatures); }
std::string to_string(TimeInput v) { return name_of(v, kTimeInputs); }
std::string to_string(TimeConvention v) { return name_of(v, kTimes); }
std::string to_string(Parameterization v) { return name_of(v, kParameterizations); }
std::string to_string(Conditioning v) { return name_of(v, kConditionings); }

Schedule parse_schedule(const std::string& text) {
  const std::string field = "schedule";
  const std::string name = text.substr(0, text.find(':'));
  Schedule s;
  if (name == "linear") {
    s.kind = ScheduleKind::kLinear;
    if (const auto v = parameters(text, 1, field, "linear:SIGMA_MIN"); !v.empty()) {
      s.sigma_min = v[0];
    }
  } else if (name == "vp") {
    s.kind = ScheduleKind::kVp;
    if (const auto v = parameters(text, 2, field, "vp:BETA_MIN,BETA_MAX"); !v.empty()) {
      s.beta_min = v[0];
      s.beta_max = v[1];
    }
  } else if (name == "cosine") {
    s.kind = ScheduleKind::kCosine;
    if (const auto v = parameters(text, 1, field, "cosine:OFFSET"); !v.empty()) {
      s.cosine_offset = v[0];
    }
  } else if (name == "ve") {
    s.kind = ScheduleKind::kVe;
    const auto v = parameters(text, 2, field, "ve:SIGMA_MIN,SIGMA_MAX");
    if (v.empty()) throw InvalidArgument(field, "ve needs its range, ve:SIGMA_MIN,SIGMA_MAX");
    s.sigma_min = v[0];
    s.sigma_max = v[1];
  } else {
    throw InvalidArgument(
        field, fmt::format("unknown schedule '{}' (valid: linear, vp, cosine, ve)", name));
  }
  check(s, field);
  return s;
}

void check(const Schedule& s, const std::string& field) {
  switch (s.kind) {
    case ScheduleKind::kLinear:
      if (!(s.sigma_min >= 0 && s.sigma_min < 1)) {
        throw InvalidArgument(
            field, fmt::format("linear sigma_min must be in [0, 1), got {}", s.sigma_min));
      }
      return;
    case ScheduleKind::kVp:
      if (!(s.beta_min > 0 && s.beta_max > s.beta_min && std::isfinite(s.beta_max))) {
        throw InvalidArgument(field, fmt::format("vp needs 0 < beta_min < beta_max, got {}, {}",
                                                 s.beta_min, s.beta_max));
      }
      return;
    case ScheduleKind::kCosine:
      if (!(s.cosine_offset > 0 && std::isfinite(s.cosine_offset))) {
        throw InvalidArgument(
            field, fmt::format("cosine offset must be positive, got {}", s.cosine_offset));
      }
      return;
    case ScheduleKind::kVe:
      if (!(s.sigma_min > 0 && s.sigma_max > s.sigma_min && std::isfinite(s.sigma_max))) {
        throw InvalidArgument(field, fmt::format("ve needs 0 < sigma_min < sigma_max, got {}, {}",
                                                 s.sigma_min, s.sigma_max));
      }
      return;
  }
  throw InvalidArgument(field, "unknown schedule kind");
}

std::string to_string(const Schedule& s) {
  switch (s.kind) {
    case ScheduleKind::kLinear:
      return fmt::format("linear:{}", s.sigma_min);
    case ScheduleKind::kVp:
      return fmt::format("vp:{},{}", s.beta_min, s.beta_max);
    case ScheduleKind::kCosine:
      return fmt::format("cosine:{}", s.cosine_offset);
    case ScheduleKind::kVe:
      return fmt::format("ve:{},{}", s.sigma_min, s.sigma_max);
  }
  return "unknown";
}

TimeRange parse_time_range(const std::string& text) {
  const auto items = split_on_commas(text);
  if (items.size() != 2) {
    throw InvalidArgument("time_range", fmt::format("expected LO,HI, got '{}'", text));
  }
  const TimeRange range{parse_number(items[0], "time_range", "LO,HI"),
                        parse_number(items[1], "time_range", "LO,HI")};
  check(range);
  return range;
}

void check(const TimeRange& range, const std::string& field) {
  if (!(range.lo >= 0.0 && range.lo < range.hi && range.hi <= 1.0)) {
    throw InvalidArgument(
        field, fmt::format("must satisfy 0 <= LO < HI <= 1, got [{}, {}]", range.lo, range.hi));
  }
}

std::string to_string(const TimeRange& range) { return fmt::format("{},{}", range.lo, range.hi); }

double parse_prior_scale(const std::string& text) {
  if (text == "standard" || text == "standard_normal" || text == "normal") return 1.0;
  if (text.starts_with("normal:")) {
    const double scale = parse_number(text.substr(7), "prior", "normal:SCALE");
    if (!(scale > 0)) {
      throw InvalidArgument("prior", fmt::format("prior scale must be positive, got {}", scale));
    }
    return scale;
  }
  throw InvalidArgument("prior",
                        fmt::format("unknown prior '{}' (valid: standard, normal:SCALE)", text));
}

DataMap parse_data_map(const std::string& text) {
  DataMap map;
  if (text == "unit") {
    map.kind = ScaleMap::kUnit;
  } else if (text == "centered") {
    map.kind = ScaleMap::kCentered;
  } else if (text == "logit" || text.starts_with("logit:")) {
    map.kind = ScaleMap::kLogit;
    if (text.size() > 6) {
      const std::string number = text.substr(6);
      const auto lambda = parse_finite_double(number);
      if (!lambda) {
        throw InvalidArgument(
            "scale", fmt::format("logit lambda must be a number in [0, 0.5), got '{}'", number));
      }
      map.logit_lambda = *lambda;
    }
  } else {
    throw InvalidArgument(
        "scale",
        fmt::format("unknown map '{}' (valid: unit, centered, logit, logit:LAMBDA)", text));
  }
  check(map);
  return map;
}

void check(const DataMap& map, const std::string& field) {
  if (map.kind == ScaleMap::kLogit && !(map.logit_lambda >= 0.0 && map.logit_lambda < 0.5)) {
    throw InvalidArgument(field, fmt::format("logit lambda must be a number in [0, 0.5), got '{}'",
                                             map.logit_lambda));
  }
}

std::string to_string(const DataMap& map) {
  switch (map.kind) {
    case ScaleMap::kUnit:
      return "unit";
    case ScaleMap::kCentered:
      return "centered";
    case ScaleMap::kLogit:
      return fmt::format("logit:{}", map.logit_lambda);
  }
  return "unknown";
}

Dequantization parse_dequantization(const std::string& text) {
  constexpr std::string_view kTruncated = "truncated-normal";
  if (text == "uniform") return {};
  if (text.starts_with(kTruncated) &&
      (text.size() == kTruncated.size() || text[kTruncated.size()] == ':')) {
    Dequantization d{DequantizationKind::kTruncatedNormal, std::nullopt};
    if (text.size() > kTruncated.size()) {
      const std::string number = text.substr(kTruncated.size() + 1);
      const auto sigma = parse_finite_double(number);
      if (!sigma) {
        throw InvalidArgument(
            "dequantization",
            fmt::format("truncated-normal SIGMA must be a number of bins in [1e-6, 10], got '{}'",
                        number));
      }
      d.sigma = *sigma;
    }
    check(d);
    return d;
  }
  throw InvalidArgument(
      "dequantization",
      fmt::format("unknown dequantization '{}' (valid: uniform, truncated-normal, "
                  "truncated-normal:SIGMA)",
                  text));
}

void check(const Dequantization& d, const std::string& field) {
  // Above 10 bins the truncated normal is uniform to 1e-3; below 1e-6 the bound needs the model's
  // density resolved finer than float32 can.
  if (d.kind == DequantizationKind::kTruncatedNormal && d.sigma &&
      !(*d.sigma >= 1e-6 && *d.sigma <= 10.0)) {
    throw InvalidArgument(
        field,
        fmt::format("truncated-normal SIGMA must be a number of bins in [1e-6, 10], got '{}'",
                    *d.sigma));
  }
  if (d.kind == DequantizationKind::kUniform && d.sigma) {
    throw InvalidArgument(field, "uniform dequantization takes no SIGMA");
  }
}

std::string to_string(const Dequantization& d) {
  if (d.kind == DequantizationKind::kUniform) return "uniform";
  return d.sigma ? fmt::format("truncated-normal:{}", *d.sigma) : "truncated-normal";
}

}  // namespace flowlik
