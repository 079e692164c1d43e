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

}  // namespace flowlik
