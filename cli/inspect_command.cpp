#include "cli/inspect_command.h"

#include <fmt/format.h>

#include <string>

#include "cli/contract_options.h"
#include "cli/exit_codes.h"
#include "cli/number_options.h"
#include "flowlik/inspect.h"
#include "flowlik/text_number.h"

namespace flowlik::cli {
namespace {

std::vector<int64_t> parse_shape(const std::string& text) {
  std::vector<int64_t> shape;
  for (const auto& item : split_on_commas(text)) {
    const auto value = parse_int64(item);
    if (!value || *value < 1) {
      throw UsageError(fmt::format("--shape: expected positive integers like 8,8, got '{}'", text));
    }
    shape.push_back(*value);
  }
  return shape;
}

}  // namespace

CLI::App* add_inspect_command(CLI::App& app, InspectArguments& a) {
  auto* cmd = app.add_subcommand("inspect", "show a model's contract and run it once");
  cmd->add_option("model", a.model,
                  "model file: an AOTInductor package (.pt2) or a TorchScript module")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--shape", a.shape, "per-sample shape, e.g. 8,8 (default: the manifest's)");
  add_choice(*cmd, "--dtype", a.options.dtype, parse_dtype, "float32 or float64");
  add_choice(*cmd, "--device", a.options.device, parse_device, "cpu, cuda or cuda:N");
  cmd->add_flag("--json", a.json, "print JSON instead of text");
  add_contract_options(*cmd, a.options.contract);
  return cmd;
}

InspectOutcome execute_inspect(const InspectArguments& args) {
  std::optional<std::vector<int64_t>> shape;
  if (args.shape) shape = parse_shape(*args.shape);
  const auto report = inspect(Model::load(args.model, args.options), shape);
  return {to_json(report), describe(report), report.ok() ? 0 : static_cast<int>(ExitCode::kModel)};
}

int run_inspect(const InspectArguments& args) {
  const auto outcome = execute_inspect(args);
  if (args.json) {
    fmt::print("{}\n", outcome.report.dump(2));
  } else {
    fmt::print("{}", outcome.text);
  }
  return outcome.exit_code;
}

}  // namespace flowlik::cli
