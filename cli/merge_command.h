// `flowlik merge SHARD.json...`: the report an unsharded run would have given, from the shards'
// reports and per-sample files. Refuses shards of different runs, missing or repeated samples, and
// truncated files.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

namespace flowlik::cli {

struct MergeArguments {
  std::vector<std::string> reports;
  std::string output;
  std::string per_sample;
};

CLI::App* add_merge_command(CLI::App& app, MergeArguments& args);
int run_merge(const MergeArguments& args);

}  // namespace flowlik::cli
