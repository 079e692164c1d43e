// What scoring a model will cost, measured in seconds whatever its size (`flowlik inspect`): one
// evaluation of each trace estimator on one sample, the exact trace's memory per row, and one
// sample solved with the cheap Hutchinson trace. The exact trace is never run over a whole solve
// here (a 3x32x32 model would take minutes and gigabytes); its cost is extrapolated from a chunk of
// rows.
#pragma once

#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "likelihood/memory.h"
#include "likelihood/model/velocity_field.h"

namespace flowlik {

// Per sample, as in a run of many: timed on the field's rows_per_call rows and divided by them.
struct ModelCost {
  double velocity_ms = NAN;         // one velocity evaluation of one sample
  double hutchinson_ms = NAN;       // one evaluation with one probe (a vector-Jacobian product)
  double exact_ms = NAN;            // one evaluation of the exact trace (D rows), extrapolated
  int64_t exact_rows = 0;           // the rows of the chunk it was extrapolated from: min(D, 64)
  double exact_peak_bytes = NAN;    // resident memory of the exact trace at the default batch size
  RowBudget exact_budget;           // what `score --max-rows auto` takes here
  std::string solve_status = "ok";  // or "failed: WHY"
  int64_t nfe = 0;                  // of the one sample's solve
  double solve_seconds = 0.0;
  double log_likelihood = NAN;  // of the model's input x (Hutchinson, one probe)
};

// x: [1, D], one sample of the field's bound shape; labels: [1] for a conditional model, else
// undefined. The solve is dopri5 at rtol = atol = 1e-5 with one Rademacher probe, bounded to about
// 30 seconds of evaluations.
ModelCost measure_cost(const VelocityField& field, const torch::Tensor& x,
                       const torch::Tensor& labels);

}  // namespace flowlik
