#include "cli/merge_command.h"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>

#include <nlohmann/json.hpp>

#include "cli/sample_csv.h"
#include "cli/scoring.h"
#include "likelihood/error.h"
#include "likelihood/report.h"
#include "likelihood/score.h"

namespace flowlik::cli {
namespace {

nlohmann::json read_report(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw DataError(fmt::format("{}: cannot open shard report", path));
  try {
    auto report = nlohmann::json::parse(in);
    for (const char* key : {"shard", "per_sample", "model", "data", "options", "preprocessing", "tool"}) {
      if (!report.contains(key)) {
        throw DataError(fmt::format("{}: not a shard report of flowlik score (no '{}'; run with --shard and "
                                    "--per-sample)",
                                    path, key));
      }
    }
    return report;
  } catch (const nlohmann::json::exception& e) {
    throw DataError(fmt::format("{}: not a JSON report ({})", path, e.what()));
  }
}

}  // namespace

CLI::App* add_merge_command(CLI::App& app, MergeArguments& a) {
  auto* cmd = app.add_subcommand("merge", "join the outputs of sharded `flowlik score` runs");
  cmd->add_option("reports", a.reports, "the shards' JSON reports")->required()->check(CLI::ExistingFile);
  cmd->add_option("-o,--output", a.output, "write the merged report here")->required();
  cmd->add_option("--per-sample", a.per_sample, "write the merged per-sample CSV here");
  return cmd;
}

int run_merge(const MergeArguments& args) {
  auto report_file = open_report(args.output);
  std::vector<nlohmann::json> reports;
  for (const auto& path : args.reports) reports.push_back(read_report(path));
  const auto& first = reports.front();
  const int64_t count = first["shard"]["count"].get<int64_t>();
  const int64_t n = first["data"]["N"].get<int64_t>();
  std::vector<const std::string*> by_shard(static_cast<size_t>(count), nullptr);
  std::vector<SampleResult> rows;
  for (size_t i = 0; i < reports.size(); ++i) {
    const auto& r = reports[i];
    const auto& path = args.reports[i];
    // Shards of one run agree on everything but the shard itself.
    for (const char* key : {"tool", "model", "data", "preprocessing", "options"}) {
      if (r[key] != first[key]) {
        throw DataError(fmt::format("{}: '{}' differs from {}; these shards are not of one run", path, key,
                                    args.reports.front()));
      }
    }
    const auto index = r["shard"]["index"].get<int64_t>();
    if (r["shard"]["count"].get<int64_t>() != count || index < 0 || index >= count) {
      throw DataError(fmt::format("{}: shard {}/{} does not fit a run of {} shards", path, index,
                                  r["shard"]["count"].get<int64_t>(), count));
    }
    if (by_shard[static_cast<size_t>(index)]) {
      throw DataError(fmt::format("{}: shard {} given twice (also {})", path, index, *by_shard[static_cast<size_t>(index)]));
    }
    by_shard[static_cast<size_t>(index)] = &path;
    const auto lo = r["shard"]["first"].get<int64_t>();
    const auto hi = r["shard"]["end"].get<int64_t>();
    const auto csv_path = r["per_sample"].get<std::string>();
    const auto csv = read_sample_csv(csv_path);
    if (csv.partial_tail) {
      throw DataError(fmt::format("{}: truncated: its last row was cut off mid-write; finish the shard with "
                                  "--resume",
                                  csv_path));
    }
    std::vector<bool> seen(static_cast<size_t>(hi - lo), false);
    for (const auto& row : csv.rows) {
      if (row.index < lo || row.index >= hi || seen[static_cast<size_t>(row.index - lo)]) {
        throw DataError(fmt::format("{}: sample {} is repeated or outside the shard's samples [{}, {})",
                                    csv_path, row.index, lo, hi));
      }
      seen[static_cast<size_t>(row.index - lo)] = true;
      rows.push_back(row);
    }
    if (std::count(seen.begin(), seen.end(), true) != hi - lo) {
      throw DataError(fmt::format("{}: holds {} of the shard's {} samples; finish the shard with --resume",
                                  csv_path, std::count(seen.begin(), seen.end(), true), hi - lo));
    }
  }
  for (int64_t s = 0; s < count; ++s) {
    if (!by_shard[static_cast<size_t>(s)]) throw DataError(fmt::format("merge: shard {} of {} is missing", s, count));
  }
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.index < b.index; });
  if (static_cast<int64_t>(rows.size()) != n) {
    throw DataError(fmt::format("merge: the shards hold {} samples, the data has {}", rows.size(), n));
  }

  const auto summary = summarize(rows, first["data"]["D"].get<int64_t>());
  nlohmann::json merged = first;
  for (const char* key : {"shard", "per_sample", "resumed_samples", "gates"}) merged.erase(key);
  merged["samples"] = samples_json(summary);
  merged["metrics"] = metrics_json(summary);
  double wall = 0.0;
  for (const auto& r : reports) wall += r["wall_time_s"].get<double>();
  merged["wall_time_s"] = wall;
  merged["merged_from"] = args.reports;
  if (!args.per_sample.empty()) {
    SampleCsvWriter writer(args.per_sample);
    for (const auto& row : rows) writer.write(row);
    merged["per_sample"] = args.per_sample;
  }
  write_report(*report_file, args.output, merged);
  fmt::print("merged {} shards: {} samples, bpd {:.4f} +- {:.4f}\n", count, summary.total, summary.bpd.mean,
             summary.bpd.std_error);
  return 0;
}

}  // namespace flowlik::cli
