// The model contract: how an exported network's inputs and output relate to the flow velocity that
// flowlik integrates (issue 4; shared/MATH.md sections 1, 4, 5). Declared once in a manifest
// (embedded in the TorchScript file as `flowlik.json`, or beside it as MODEL.pt.json), every field
// overridable by an option, and every field's origin recorded for the report.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "flowlik/options.h"
#include "likelihood/model/schedule.h"

namespace flowlik {

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
  bool conditional =
      false;  // forward takes a third argument, the class label y: scores log p(x | y)
  // Field name -> where its value came from: "manifest (embedded)", "manifest (FILE)", "option
  // --NAME" (option_name, flowlik/error.h), "default".
  std::map<std::string, std::string> sources;

  // The integration interval in flow time: from the data end to the prior end.
  double t_data() const { return time == TimeConvention::kFlow ? time_hi : 1.0 - time_lo; }
  double t_prior() const { return time == TimeConvention::kFlow ? time_lo : 1.0 - time_hi; }
};

// Overrides of the manifest, field by field (flowlik/options.h).
using ContractOptions = ContractOverrides;

// `manifest` may be null (no manifest); `manifest_source` names it for messages and the report.
// Throws ModelError for a malformed manifest field (naming it and the manifest), InvalidArgument
// for a bad override, and either (naming the field) for a missing or contradictory contract.
Contract resolve_contract(const nlohmann::json* manifest, const std::string& manifest_source,
                          const ContractOptions& options);

// The contract in effect with each field's origin, for reports and `flowlik inspect`.
nlohmann::json contract_json(const Contract& contract);

}  // namespace flowlik
