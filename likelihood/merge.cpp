// merge_shards (flowlik/run.h): the shards of one run joined, every shard and sample checked.
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>

#include "flowlik/error.h"
#include "flowlik/output_file.h"
#include "flowlik/per_sample.h"
#include "flowlik/run.h"
#include "io/sample_csv.h"
#include "likelihood/report.h"
#include "likelihood/report_reader.h"
#include "likelihood/score.h"

namespace flowlik {
namespace {

// Shards of one run agree on everything but the shard itself and the options that change no result
// (threads, batch size and the exact trace's rows per call may differ between machines).
void check_same_run(const ShardReport& shard, const std::string& path, const ShardReport& first,
                    const std::string& first_path) {
  for (const char* key : {"tool", "model", "data", "preprocessing", "options"}) {
    const auto& mine = shard.report.json().at(key);
    const auto& theirs = first.report.json().at(key);
    const bool differ = std::string_view(key) == "options"
                            ? result_options(mine) != result_options(theirs)
                            : mine != theirs;
    if (differ) {
      throw DataError(fmt::format("{}: '{}' differs from {}; these shards are not of one run", path,
                                  key, first_path));
    }
  }
  if (shard.shard.count != first.shard.count) {
    throw DataError(fmt::format("{}: shard {}/{} does not fit a run of {} shards", path,
                                shard.shard.index, shard.shard.count, first.shard.count));
  }
}

// The shard's rows from its per-sample file: each of its samples exactly once, none other.
std::vector<SampleResult> shard_rows(const ShardReport& shard) {
  const auto csv = read_sample_csv(shard.per_sample);
  if (csv.partial_tail) {
    throw DataError(fmt::format(
        "{}: truncated: its last row was cut off mid-write; finish the shard with --resume",
        shard.per_sample));
  }
  // Sized by the file's rows, not by the report's range, which a hand-edited report could make
  // huge.
  const auto [first, end] = shard.shard.range(shard.n);
  std::set<int64_t> seen;
  for (const auto& row : csv.rows) {
    if (row.index < first || row.index >= end || !seen.insert(row.index).second) {
      throw DataError(
          fmt::format("{}: sample {} is repeated or outside the shard's samples [{}, {})",
                      shard.per_sample, row.index, first, end));
    }
  }
  if (static_cast<int64_t>(seen.size()) != end - first) {
    throw DataError(
        fmt::format("{}: holds {} of the shard's {} samples; finish the shard with --resume",
                    shard.per_sample, seen.size(), end - first));
  }
  return csv.rows;
}

}  // namespace

MergeReport merge_shards(std::span<const std::string> paths, const std::string& per_sample) {
  if (paths.empty()) throw InvalidArgument("reports", "no shard report given");
  std::vector<ShardReport> shards;
  for (const auto& path : paths) shards.push_back(read_shard_report(path));
  if (!per_sample.empty()) {
    // Before anything is read or written: the merged file must not replace one it is made from.
    std::vector<NamedFile> inputs;
    for (size_t i = 0; i < shards.size(); ++i) {
      inputs.push_back({"shard report", paths[i]});
      inputs.push_back({"per-sample file of " + paths[i], shards[i].per_sample});
    }
    const auto per_sample_option = option_name("per_sample");
    const std::vector<NamedFile> outputs = {
        {per_sample_option, per_sample},
        {per_sample_option + " (its journal)", journal_path(per_sample)},
        {per_sample_option + " (its run identity)", identity_path(per_sample)}};
    check_outputs_distinct(inputs, outputs);
  }
  const auto& first = shards.front();
  // By index, in a map: nothing is sized by a shard count, which a hand-edited report could make
  // 2^40.
  std::map<int64_t, const std::string*> by_shard;
  MergeReport merged;
  for (size_t i = 0; i < shards.size(); ++i) {
    const auto& shard = shards[i];
    check_same_run(shard, paths[i], first, paths.front());
    if (const auto it = by_shard.find(shard.shard.index); it != by_shard.end()) {
      throw DataError(fmt::format("{}: shard {} given twice (also {})", paths[i], shard.shard.index,
                                  *it->second));
    }
    by_shard[shard.shard.index] = &paths[i];
    const auto rows = shard_rows(shard);
    merged.samples.insert(merged.samples.end(), rows.begin(), rows.end());
    merged.wall_seconds += shard.wall_seconds;
  }
  // Ends at the first gap: at most one past the reports.
  for (int64_t shard = 0; shard < first.shard.count; ++shard) {
    if (!by_shard.contains(shard)) {
      throw DataError(fmt::format("merge: shard {} of {} is missing", shard, first.shard.count));
    }
  }
  std::sort(merged.samples.begin(), merged.samples.end(),
            [](const auto& a, const auto& b) { return a.index < b.index; });
  if (static_cast<int64_t>(merged.samples.size()) != first.n) {
    throw DataError(fmt::format("merge: the shards hold {} samples, the data has {}",
                                merged.samples.size(), first.n));
  }
  merged.summary = summarize_results(merged.samples, first.dim);
  merged.merged_from.assign(paths.begin(), paths.end());
  merged.run = first.report.json();
  for (const char* key :
       {"shard", "per_sample", "resumed_samples", "gates", "samples", "metrics", "wall_time_s"}) {
    merged.run.erase(key);
  }
  if (!per_sample.empty()) {
    const nlohmann::json identity = {{"merged_from", merged.merged_from},
                                     {"tool", merged.run["tool"]},
                                     {"model_sha256", merged.run["model"].value("sha256", "")},
                                     {"data_sha256", merged.run["data"].value("sha256", "")}};
    SampleCsvWriter writer(per_sample, identity);
    for (const auto& row : merged.samples) writer.write(row);
    writer.commit();
    merged.per_sample = per_sample;
  }
  return merged;
}

nlohmann::json to_json(const MergeReport& report) {
  nlohmann::json j = report.run;
  j["samples"] = samples_json(report.summary);
  j["metrics"] = metrics_json(report.summary);
  j["wall_time_s"] = report.wall_seconds;
  j["merged_from"] = report.merged_from;
  if (!report.per_sample.empty()) j["per_sample"] = report.per_sample;
  return j;
}

void check_some_scored(const ScoreSummary& summary) {
  if (summary.ok == 0 && summary.total > 0) throw all_failed_error(summary.total);
}

}  // namespace flowlik
