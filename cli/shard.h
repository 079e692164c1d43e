// Which part of the dataset this process scores: --shard I/N, or what the scheduler already says
// (Slurm job arrays, torchrun). Shards do not talk to each other; `flowlik merge` joins their
// outputs.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>

#include "flowlik/run.h"

namespace flowlik::cli {

using Environment = std::function<const char*(const char*)>;

// --shard I/N (0 <= I < N) wins; else SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN of
// SLURM_ARRAY_TASK_COUNT; else torchrun's RANK of WORLD_SIZE; else the whole dataset. Throws
// UsageError naming the option or variable at fault.
Shard resolve_shard(const std::optional<std::string>& option, const Environment& env);

}  // namespace flowlik::cli
