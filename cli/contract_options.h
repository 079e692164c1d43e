// The command-line options that override a model's manifest, shared by every subcommand that loads
// one.
#pragma once

#include <CLI/CLI.hpp>

#include "flowlik/options.h"

namespace flowlik::cli {

void add_contract_options(CLI::App& command, ContractOverrides& options);

}  // namespace flowlik::cli
