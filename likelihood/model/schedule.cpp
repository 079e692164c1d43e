#include "likelihood/model/schedule.h"

#include <fmt/format.h>

#include <cmath>
#include <numbers>
#include <vector>

#include "flowlik/error.h"
#include "flowlik/text_number.h"

namespace flowlik {

PathCoefficients path_coefficients(const Schedule& schedule, double t) {
  const double s = 1.0 - t;  // diffusion time; d/dt = -d/ds
  PathCoefficients c;
  switch (schedule.kind) {
    case ScheduleKind::kLinear:
      c.alpha = t;
      c.alpha_dot = 1.0;
      c.sigma = 1.0 - (1.0 - schedule.sigma_min) * t;
      c.sigma_dot = -(1.0 - schedule.sigma_min);
      return c;
    case ScheduleKind::kVp: {
      // alpha = exp(-T(s) / 2), T(s) = beta_min s + (beta_max - beta_min) s^2 / 2.
      const double integral =
          schedule.beta_min * s + 0.5 * (schedule.beta_max - schedule.beta_min) * s * s;
      const double beta = schedule.beta_min + (schedule.beta_max - schedule.beta_min) * s;
      c.alpha = std::exp(-0.5 * integral);
      c.alpha_dot = 0.5 * beta * c.alpha;  // -d/ds of exp(-T/2) = (T'/2) alpha
      break;
    }
    case ScheduleKind::kCosine: {
      const double off = schedule.cosine_offset;
      const double phase = std::numbers::pi / 2 * (s + off) / (1 + off);
      const double norm = std::cos(std::numbers::pi / 2 * off / (1 + off));
      c.alpha = std::cos(phase) / norm;
      c.alpha_dot = std::sin(phase) * (std::numbers::pi / 2 / (1 + off)) / norm;
      break;
    }
    case ScheduleKind::kVe: {
      const double log_ratio = std::log(schedule.sigma_max / schedule.sigma_min);
      c.alpha = 1.0;
      c.alpha_dot = 0.0;
      c.sigma = schedule.sigma_min * std::exp(log_ratio * s);
      c.sigma_dot = -log_ratio * c.sigma;
      return c;
    }
  }
  // Variance preserving: sigma = sqrt(1 - alpha^2), sigma_dot = -alpha alpha_dot / sigma.
  c.sigma = std::sqrt(std::max(0.0, 1.0 - c.alpha * c.alpha));
  c.sigma_dot = -c.alpha * c.alpha_dot / c.sigma;
  return c;
}

namespace {

std::vector<double> parse_numbers(const std::string& text, const std::string& option,
                                  const std::string& form) {
  std::vector<double> out;
  for (const auto& item : split_on_commas(text)) {
    const auto value = parse_finite_double(item);
    if (!value)
      throw InvalidArgument(option, fmt::format("'{}' is not a number (expected {})", item, form));
    out.push_back(*value);
  }
  return out;
}

}  // namespace

Schedule parse_schedule(const std::string& text, const std::string& option) {
  const auto colon = text.find(':');
  const std::string name = text.substr(0, colon);
  const std::string rest = colon == std::string::npos ? "" : text.substr(colon + 1);
  Schedule s;
  auto numbers = [&](size_t count, const std::string& form) {
    if (rest.empty()) return std::vector<double>{};
    auto v = parse_numbers(rest, option, form);
    if (v.size() != count) {
      throw InvalidArgument(option,
                            fmt::format("'{}' takes {} parameter(s): {}", text, count, form));
    }
    return v;
  };
  if (name == "linear") {
    s.kind = ScheduleKind::kLinear;
    if (const auto v = numbers(1, "linear:SIGMA_MIN"); !v.empty()) s.sigma_min = v[0];
    if (!(s.sigma_min >= 0 && s.sigma_min < 1)) {
      throw InvalidArgument(option,
                            fmt::format("linear sigma_min must be in [0, 1), got {}", s.sigma_min));
    }
  } else if (name == "vp") {
    s.kind = ScheduleKind::kVp;
    if (const auto v = numbers(2, "vp:BETA_MIN,BETA_MAX"); !v.empty()) {
      s.beta_min = v[0];
      s.beta_max = v[1];
    }
    if (!(s.beta_min > 0 && s.beta_max > s.beta_min)) {
      throw InvalidArgument(option, fmt::format("vp needs 0 < beta_min < beta_max, got {}, {}",
                                                s.beta_min, s.beta_max));
    }
  } else if (name == "cosine") {
    s.kind = ScheduleKind::kCosine;
    if (const auto v = numbers(1, "cosine:OFFSET"); !v.empty()) s.cosine_offset = v[0];
    if (!(s.cosine_offset > 0)) {
      throw InvalidArgument(option,
                            fmt::format("cosine offset must be positive, got {}", s.cosine_offset));
    }
  } else if (name == "ve") {
    s.kind = ScheduleKind::kVe;
    const auto v = numbers(2, "ve:SIGMA_MIN,SIGMA_MAX");
    if (v.empty()) {
      throw InvalidArgument(option, "ve needs its range, ve:SIGMA_MIN,SIGMA_MAX");
    }
    s.sigma_min = v[0];
    s.sigma_max = v[1];
    if (!(s.sigma_min > 0 && s.sigma_max > s.sigma_min)) {
      throw InvalidArgument(option, fmt::format("ve needs 0 < sigma_min < sigma_max, got {}, {}",
                                                s.sigma_min, s.sigma_max));
    }
  } else {
    throw InvalidArgument(
        option, fmt::format("unknown schedule '{}' (valid: linear, vp, cosine, ve)", name));
  }
  return s;
}

std::string describe_schedule(const Schedule& s) {
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

}  // namespace flowlik
