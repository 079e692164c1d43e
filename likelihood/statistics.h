// Summary statistics a report needs (shared/MATH.md section 7).
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "flowlik/results.h"

namespace flowlik {

// Throws std::invalid_argument on an empty span.
MeanEstimate estimate_mean(std::span<const double> values);

// The cheapest budget whose mean bpd has the target standard error, Var(mean) = (data + one_draw /
// M
// + one_probe / (M K)) / n, with n at most max_samples (and at least 2), M from 1 to max_draws and
// K from 1 to max_probes; nullopt when no such budget reaches the target. The number of evaluations
// per solve is taken as the same for every choice.
std::optional<Budget> cheapest_budget(const BudgetVariances& v, double target_stderr,
                                      int64_t max_samples, int64_t max_draws, int64_t max_probes);

}  // namespace flowlik
