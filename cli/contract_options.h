// The command-line options that override a model's manifest, shared by every subcommand that loads
// one.
#pragma once

#include <CLI/CLI.hpp>

#include "likelihood/contract.h"

namespace flowlik::cli {

void add_contract_options(CLI::App& command, ContractOptions& options);

}  // namespace flowlik::cli
