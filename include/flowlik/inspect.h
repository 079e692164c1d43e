// A model looked at before it is used (`flowlik inspect`): the contract in effect and where each
// field came from, the parameters, a smoke run (one batch through the velocity at mid-path; one
// sample integrated, with its NFE and time) and what scoring will cost, measured in seconds
// whatever the model's size.
//
//   auto report = flowlik::inspect(flowlik::Model::load("model.pt2"));
//   report.smoke_finite, report.cost.exact_ms, flowlik::describe(report), flowlik::to_json(report)
#pragma once

#include <cmath>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "flowlik/flowlik.h"

namespace flowlik {

struct InspectReport {
  std::string path;
  std::string format;  // "torchscript" or "aoti"
  int64_t parameters = 0;
  std::string parameter_dtype;
  Contract contract;  // in effect, with each field's origin ("sources")
  int64_t dim = 0;    // values per sample of the inspected shape
  std::string device;
  // The rows of each network call, largest first: a run uses the first, or one of the others when
  // it has at most a quarter of its rows (docs/reproducibility.md).
  std::vector<int64_t> blocks;

  // Smoke run: a batch of prior samples through the velocity at mid-path.
  std::vector<int64_t> smoke_input_shape;
  std::vector<int64_t> smoke_output_shape;
  bool smoke_finite = false;
  double smoke_flow_time = 0.0;

  // What scoring will cost: one evaluation of each estimator timed on one sample, the exact
  // trace's memory per row, and one sample solved with a one-probe Hutchinson trace (dopri5 at
  // rtol = atol = 1e-5, bounded to about 30 s). The exact trace is never run over a whole solve
  // (a 3x32x32 model would take minutes and gigabytes): its cost is extrapolated from a chunk.
  struct Cost {
    double velocity_ms = NAN;         // one velocity evaluation of one sample
    double hutchinson_ms = NAN;       // one evaluation with one probe (a vector-Jacobian product)
    double exact_ms = NAN;            // one evaluation of the exact trace (D rows), extrapolated
    int64_t exact_rows = 0;           // the rows of the chunk it was extrapolated from
    double exact_peak_bytes = NAN;    // resident memory of the exact trace at batch size 32
    int64_t exact_max_rows = 0;       // what `score --max-rows auto` takes here
    std::string exact_max_rows_how;   // how it chose: "N rows: a budget of ..."
    std::string solve_status = "ok";  // of the one sample's solve: "ok" or "failed: WHY"
    int64_t nfe = 0;
    double solve_seconds = 0.0;
    double log_likelihood = NAN;  // of the smoke input's first sample (NaN if not finite)
  } cost;

  // Whether the model passed: a finite velocity and the one sample solved.
  bool ok() const { return smoke_finite && cost.solve_status == "ok"; }
};

// shape: one sample's shape; unset, the manifest's (InvalidArgument naming "shape" when it
// declares none). Throws ModelError when the model cannot be run on that shape. A conditional
// model is run with label 0. The random inputs come from a generator of their own.
InspectReport inspect(const Model& model, const std::optional<std::vector<int64_t>>& shape = {});

nlohmann::json to_json(const InspectReport& report);  // what `flowlik inspect --json` prints
std::string describe(const InspectReport& report);    // what `flowlik inspect` prints
}  // namespace flowlik
