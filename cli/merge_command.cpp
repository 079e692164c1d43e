#include "cli/merge_command.h"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "cli/exit_codes.h"
#include "cli/scoring.h"
#include "cli/shard.h"
#include "io/report_reader.h"
#include "io/sample_csv.h"
#include "likelihood/report.h"
#include "likelihood/score.h"

namespace flowlik::cli {

CLI::App* add_merge_command(CLI::App& app, MergeArguments& a) {
  auto* cmd = app.add_subcommand("merge", "join the outputs of sharded `flowlik score` runs");
  cmd->add_option("reports", a.reports, "the shards' JSON reports")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("-o,--output", a.output, "write the merged report here")->required();
  cmd->add_option("--per-sample", a.per_sample, "write the merged per-sample CSV here");
  return cmd;
}

int run_merge(const MergeArguments& args) {
  std::vector<NamedFile> inputs;
  for (const auto& path : args.reports) inputs.push_back({"shard report", path});
  std::vector<ShardReport> reports;
  for (const auto& path : args.reports) {
    reports.push_back(read_shard_report(path));
    inputs.push_back({"per-sample file of " + path, reports.back().per_sample});
  }
  const std::vector<NamedFile> outputs = {
      {"-o", args.output},
      {"--per-sample", args.per_sample},
      {"--per-sample (its journal)", args.per_sample.empty() ? "" : journal_path(args.per_sample)},
      {"--per-sample (its run identity)",
       args.per_sample.empty() ? "" : identity_path(args.per_sample)}};
  check_run_outputs(inputs, outputs);

  const auto& first = reports.front();
  const auto& first_json = first.report.json();
  const int64_t count = first.count;
  const int64_t n = first.n;
  // By index, in a map: nothing is sized by a shard count, which a hand-edited report could make
  // 2^40.
  std::map<int64_t, const std::string*> by_shard;
  std::vector<SampleResult> rows;
  for (size_t i = 0; i < reports.size(); ++i) {
    const auto& s = reports[i];
    const auto& path = args.reports[i];
    // Shards of one run agree on everything but the shard itself and the options that change no
    // result (threads, batch size and the exact trace's rows per call may differ between machines).
    for (const char* key : {"tool", "model", "data", "preprocessing", "options"}) {
      const bool differ =
          std::string_view(key) == "options"
              ? result_options(s.report.json().at(key)) != result_options(first_json.at(key))
              : s.report.json().at(key) != first_json.at(key);
      if (differ) {
        throw DataError(fmt::format("{}: '{}' differs from {}; these shards are not of one run",
                                    path, key, args.reports.front()));
      }
    }
    if (s.count != count) {
      throw DataError(fmt::format("{}: shard {}/{} does not fit a run of {} shards", path, s.index,
                                  s.count, count));
    }
    if (const auto it = by_shard.find(s.index); it != by_shard.end()) {
      throw DataError(
          fmt::format("{}: shard {} given twice (also {})", path, s.index, *it->second));
    }
    by_shard[s.index] = &path;
    const auto csv = read_sample_csv(s.per_sample);
    if (csv.partial_tail) {
      throw DataError(
          fmt::format("{}: truncated: its last row was cut off mid-write; finish the shard with "
                      "--resume",
                      s.per_sample));
    }
    // Sized by the file's rows, not by the report's range, which a hand-edited report could make
    // huge.
    std::set<int64_t> seen;
    for (const auto& row : csv.rows) {
      if (row.index < s.first || row.index >= s.end || !seen.insert(row.index).second) {
        throw DataError(
            fmt::format("{}: sample {} is repeated or outside the shard's samples [{}, {})",
                        s.per_sample, row.index, s.first, s.end));
      }
      rows.push_back(row);
    }
    if (static_cast<int64_t>(seen.size()) != s.end - s.first) {
      throw DataError(
          fmt::format("{}: holds {} of the shard's {} samples; finish the shard with --resume",
                      s.per_sample, seen.size(), s.end - s.first));
    }
  }
  for (int64_t shard = 0; shard < count;
       ++shard) {  // ends at the first gap: at most one past the reports
    if (!by_shard.contains(shard))
      throw DataError(fmt::format("merge: shard {} of {} is missing", shard, count));
  }
  std::sort(rows.begin(), rows.end(),
            [](const auto& a, const auto& b) { return a.index < b.index; });
  if (static_cast<int64_t>(rows.size()) != n) {
    throw DataError(
        fmt::format("merge: the shards hold {} samples, the data has {}", rows.size(), n));
  }

  const auto summary = summarize_results(rows, first.dim);
  nlohmann::json merged = first_json;
  for (const char* key : {"shard", "per_sample", "resumed_samples", "gates"}) merged.erase(key);
  merged["samples"] = samples_json(summary);
  merged["metrics"] = metrics_json(summary);
  double wall = 0.0;
  for (const auto& s : reports) wall += s.wall_seconds;
  merged["wall_time_s"] = wall;
  merged["merged_from"] = args.reports;
  if (!args.per_sample.empty()) {
    nlohmann::json identity = {{"merged_from", args.reports},
                               {"tool", merged["tool"]},
                               {"model_sha256", merged["model"].value("sha256", "")},
                               {"data_sha256", merged["data"].value("sha256", "")}};
    SampleCsvWriter writer(args.per_sample, identity);
    for (const auto& row : rows) writer.write(row);
    writer.commit();
    merged["per_sample"] = args.per_sample;
  }
  write_report(args.output, merged);
  if (summary.ok == 0 && summary.total > 0) throw all_failed_error(summary.total);
  fmt::print("merged {} shards: {} samples, bpd {:.4f} +- {:.4f}\n", count, summary.total,
             summary.bpd.mean, summary.bpd.std_error);
  return 0;
}

}  // namespace flowlik::cli
