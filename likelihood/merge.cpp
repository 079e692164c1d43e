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
// (threads, batch size and the exact trace's rows per batched call may differ between machines).
void check_same_run(const RunReport& shard, const std::string& path, const RunReport& first,
                    const std::string& first_path) {
  const std::pair<const char*, bool> differ[] = {
      {"tool", shard.tool_version != first.tool_version},
      {"model", to_json(shard.model) != to_json(first.model)},
      {"data", data_json(shard.data) != data_json(first.data)},
      {"preprocessing", shard.preprocessing != first.preprocessing},
      {"options",
       result_options(to_json(shard.options)) != result_options(to_json(first.options))}};
  for (const auto& [key, different] : differ) {
    if (different) {
      throw DataError(fmt::format("{}: '{}' differs from {}; these shards are not of one run", path,
                                  key, first_path));
    }
  }
  if (shard.shard->count != first.shard->count) {
    throw DataError(fmt::format("{}: shard {}/{} does not fit a run of {} shards", path,
                                shard.shard->index, shard.shard->count, first.shard->count));
  }
}

// The shard's rows from its per-sample file: each of its samples exactly once, none other.
std::vector<SampleResult> shard_rows(const RunReport& shard) {
  const auto csv = read_sample_csv(shard.per_sample);
  if (csv.partial_tail) {
    throw DataError(fmt::format(
        "{}: truncated: its last row was cut off mid-write; finish the shard with --resume",
        shard.per_sample));
  }
  // Sized by the file's rows, not by the report's range, which a hand-edited report could make
  // huge.
  const auto [first, end] = shard.shard->range(shard.data.n);
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
  std::vector<RunReport> shards;
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
  // The sections the shards share, from the first; what is a shard's own is not the run's.
  auto& run = merged.run;
  run = first;
  run.shard.reset();
  run.resumed_samples.reset();
  run.gates.clear();
  run.per_sample.clear();
  run.samples.clear();
  run.wall_seconds = 0.0;
  for (size_t i = 0; i < shards.size(); ++i) {
    const auto& shard = shards[i];
    check_same_run(shard, paths[i], first, paths.front());
    if (const auto it = by_shard.find(shard.shard->index); it != by_shard.end()) {
      throw DataError(fmt::format("{}: shard {} given twice (also {})", paths[i],
                                  shard.shard->index, *it->second));
    }
    by_shard[shard.shard->index] = &paths[i];
    const auto rows = shard_rows(shard);
    run.samples.insert(run.samples.end(), rows.begin(), rows.end());
    run.wall_seconds += shard.wall_seconds;
  }
  // Ends at the first gap: at most one past the reports.
  for (int64_t shard = 0; shard < first.shard->count; ++shard) {
    if (!by_shard.contains(shard)) {
      throw DataError(fmt::format("merge: shard {} of {} is missing", shard, first.shard->count));
    }
  }
  std::sort(run.samples.begin(), run.samples.end(),
            [](const auto& a, const auto& b) { return a.index < b.index; });
  if (static_cast<int64_t>(run.samples.size()) != first.data.n) {
    throw DataError(fmt::format("merge: the shards hold {} samples, the data has {}",
                                run.samples.size(), first.data.n));
  }
  run.summary = summarize_results(run.samples, first.data.dim);
  merged.merged_from.assign(paths.begin(), paths.end());
  if (!per_sample.empty()) {
    const nlohmann::json identity = {{"merged_from", merged.merged_from},
                                     {"tool", tool_json("score", run.tool_version)},
                                     {"model_sha256", run.model.sha256},
                                     {"data_sha256", run.data.sha256}};
    SampleCsvWriter writer(per_sample, identity);
    for (const auto& row : run.samples) writer.write(row);
    writer.commit();
    run.per_sample = per_sample;
  }
  return merged;
}

nlohmann::json to_json(const MergeReport& report) {
  auto j = to_json(report.run);
  j["merged_from"] = report.merged_from;
  return j;
}
void check_some_scored(const ScoreSummary& summary) {
  if (summary.ok == 0 && summary.total > 0) throw all_failed_error(summary.total);
}

}  // namespace flowlik
