// Gaussian probability paths x_t = alpha_t x1 + sigma_t x0 in flow time t (t = 0 prior, t = 1 data)
// and their time derivatives (shared/MATH.md section 4, "Schedules"). Diffusion time is s = 1 - t.
#pragma once

#include "flowlik/conventions.h"  // Schedule

namespace flowlik {

struct PathCoefficients {
  double alpha = 0.0;
  double sigma = 0.0;
  double alpha_dot = 0.0;  // d alpha / dt, flow time
  double sigma_dot = 0.0;  // d sigma / dt, flow time
};

PathCoefficients path_coefficients(const Schedule& schedule, double t);

}  // namespace flowlik
