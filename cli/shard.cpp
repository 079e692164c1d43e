#include "cli/shard.h"

#include <fmt/format.h>

#include <charconv>

#include "cli/exit_codes.h"
#include "flowlik/text_number.h"

namespace flowlik::cli {
namespace {

Shard checked(int64_t index, int64_t count, const std::string& source, const std::string& what) {
  if (count < 1 || index < 0 || index >= count) {
    throw UsageError(
        fmt::format("{}: shard {} of {} is out of range (need 0 <= I < N)", what, index, count));
  }
  return {index, count, source};
}

}  // namespace

Shard resolve_shard(const std::optional<std::string>& option, const Environment& env) {
  if (option) {
    const auto slash = option->find('/');
    const auto index =
        slash == std::string::npos ? std::nullopt : parse_int64(option->substr(0, slash));
    const auto count =
        slash == std::string::npos ? std::nullopt : parse_int64(option->substr(slash + 1));
    if (!index || !count) throw UsageError(fmt::format("--shard: expected I/N, got '{}'", *option));
    return checked(*index, *count, "--shard", "--shard");
  }
  auto variable = [&](const char* name) -> std::optional<int64_t> {
    const char* value = env(name);
    if (!value) return std::nullopt;
    const auto parsed = parse_int64(value);
    if (!parsed) throw UsageError(fmt::format("{}: expected an integer, got '{}'", name, value));
    return parsed;
  };
  if (const auto id = variable("SLURM_ARRAY_TASK_ID")) {
    const auto count = variable("SLURM_ARRAY_TASK_COUNT");
    if (!count) throw UsageError("SLURM_ARRAY_TASK_COUNT: not set beside SLURM_ARRAY_TASK_ID");
    return checked(*id - variable("SLURM_ARRAY_TASK_MIN").value_or(0), *count,
                   "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_ID");
  }
  if (const auto rank = variable("RANK")) {
    const auto world = variable("WORLD_SIZE");
    if (!world) throw UsageError("WORLD_SIZE: not set beside RANK");
    return checked(*rank, *world, "RANK", "RANK");
  }
  return {};
}

}  // namespace flowlik::cli
