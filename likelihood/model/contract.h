// The model contract: how an exported network's inputs and output relate to the flow velocity that
// flowlik integrates (issue 4; shared/MATH.md sections 1, 4, 5). Declared once in a manifest
// (embedded in the TorchScript file as `flowlik.json`, or beside it as MODEL.pt.json), every field
// overridable by an option, and every field's origin recorded for the report.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "flowlik/options.h"
#include "likelihood/model/schedule.h"

namespace flowlik {

// Overrides of the manifest, field by field (flowlik/options.h).
using ContractOptions = ContractOverrides;

// `manifest` may be null (no manifest); `manifest_source` names it for messages and the report.
// Throws ModelError for a malformed manifest field (naming it and the manifest), InvalidArgument
// for a bad override, and either (naming the field) for a missing or contradictory contract.
Contract resolve_contract(const nlohmann::json* manifest, const std::string& manifest_source,
                          const ContractOptions& options);

}  // namespace flowlik
