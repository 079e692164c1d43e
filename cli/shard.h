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

#include "io/report_reader.h"

namespace flowlik::cli {

struct Shard {
  int64_t index = 0;
  int64_t count = 1;
  std::string source = "none";  // "--shard", "SLURM_ARRAY_TASK_ID", "RANK", or "none"

  // Contiguous block [first, end) of n samples; the blocks of all shards cover 0..n-1 once.
  std::pair<int64_t, int64_t> range(int64_t n) const { return shard_block(index, count, n); }
  // The report's "shard": {index, count, source, first, end} of n samples.
  nlohmann::json json(int64_t n) const;
};

using Environment = std::function<const char*(const char*)>;

// --shard I/N (0 <= I < N) wins; else SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN of
// SLURM_ARRAY_TASK_COUNT; else torchrun's RANK of WORLD_SIZE; else the whole dataset. Throws
// UsageError naming the option or variable at fault.
Shard resolve_shard(const std::optional<std::string>& option, const Environment& env);

}  // namespace flowlik::cli
