// Gaussian probability paths x_t = alpha_t x1 + sigma_t x0 in flow time t (t = 0 prior, t = 1 data)
// and their time derivatives (shared/MATH.md section 4, "Schedules"). Diffusion time is s = 1 - t.
#pragma once

#include <string>

namespace flowlik {

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
};

struct PathCoefficients {
  double alpha = 0.0;
  double sigma = 0.0;
  double alpha_dot = 0.0;  // d alpha / dt, flow time
  double sigma_dot = 0.0;  // d sigma / dt, flow time
};

PathCoefficients path_coefficients(const Schedule& schedule, double t);

// Parses the command-line form: "linear", "linear:SIGMA_MIN", "vp", "vp:BETA_MIN,BETA_MAX",
// "cosine", "cosine:C", "ve:SIGMA_MIN,SIGMA_MAX". Throws InvalidArgument naming `argument`.
Schedule parse_schedule(const std::string& text, const std::string& argument = "schedule");
// The same form, for reports.
std::string describe_schedule(const Schedule& schedule);

}  // namespace flowlik
