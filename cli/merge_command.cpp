#include "cli/merge_command.h"

#include <fmt/format.h>

#include "cli/scoring.h"
#include "flowlik/per_sample.h"
#include "flowlik/run.h"

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
  const std::vector<NamedFile> outputs = {
      {"-o", args.output},
      {"--per-sample", args.per_sample},
      {"--per-sample (its journal)", args.per_sample.empty() ? "" : journal_path(args.per_sample)},
      {"--per-sample (its run identity)",
       args.per_sample.empty() ? "" : identity_path(args.per_sample)}};
  check_run_outputs(inputs, outputs);
  const auto merged = merge_shards(args.reports, args.per_sample);
  write_report(args.output, to_json(merged));
  check_some_scored(merged.run.summary);
  fmt::print("merged {} shards: {} samples, bpd {:.4f} +- {:.4f}\n", args.reports.size(),
             merged.run.summary.total, merged.run.summary.bpd.mean,
             merged.run.summary.bpd.std_error);
  return 0;
}

}  // namespace flowlik::cli
