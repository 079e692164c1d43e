#include "cli/sample_command.h"

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "cli/exit_codes.h"
#include "cli/number_options.h"
#include "cli/progress.h"
#include "cli/scoring.h"
#include "cli/shard.h"
#include "flowlik/per_sample.h"
#include "flowlik/run.h"

namespace flowlik::cli {

CLI::App* add_sample_command(CLI::App& app, SampleArguments& a) {
  auto* cmd = app.add_subcommand(
      "sample",
      "draw samples from the prior, carry them to the data, and give each its log-likelihood");
  cmd->add_option("model", a.model,
                  "model file: an AOTInductor package (.pt2) or a TorchScript module")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("-n,--count", a.count, "samples to draw")
      ->required()
      ->check(integer_in(1, int64_t{1} << 32));
  add_scoring_options(*cmd, a.scoring, OptionsFor::kGenerated);
  cmd->add_option("--samples", a.samples,
                  "write the samples here (.npy [N, *shape] float32, in the model's space)");
  cmd->add_option("--data-samples", a.data_samples,
                  "write the samples in the data's space too (.npy uint8 levels; needs the data's "
                  "map, from the manifest or --scale)");
  cmd->add_option("--per-sample", a.per_sample,
                  "write per-sample results here (CSV, the columns of score), as each completes");
  cmd->add_option("--labels", a.labels,
                  "class labels [N] (int64 or uint8) of the samples, for a class-conditional model")
      ->check(CLI::ExistingFile);
  cmd->add_option(
      "--shard", a.shard,
      "draw block I of N (0 <= I < N); default from SLURM_ARRAY_TASK_ID/COUNT or RANK/WORLD_SIZE");
  return cmd;
}

int run_sample(const SampleArguments& args) {
  // Parse: every option checked before any work is done.
  const auto run = run_options(args.scoring);
  SampleRunOptions options;
  options.score = run.score;
  options.fit_rows_to_memory_mb = run.fit_rows_to_memory_mb;
  options.shard = resolve_shard(args.shard, [](const char* name) { return std::getenv(name); });
  options.labels_path = args.labels;
  options.data_levels = !args.data_samples.empty();
  std::vector<NamedFile> inputs = {{"model", args.model},
                                   {"the manifest beside the model", args.model + ".json"},
                                   {"--labels", args.labels}};
  const std::vector<NamedFile> outputs = {
      {"-o", args.scoring.output},
      {"--samples", args.samples},
      {"--data-samples", args.data_samples},
      {"--per-sample", args.per_sample},
      {"--per-sample (its journal)", args.per_sample.empty() ? "" : journal_path(args.per_sample)},
      {"--per-sample (its run identity)",
       args.per_sample.empty() ? "" : identity_path(args.per_sample)}};
  check_run_outputs(inputs, outputs);
  if (args.scoring.output.empty() && args.samples.empty() && args.per_sample.empty() &&
      args.data_samples.empty() && args.scoring.quiet) {
    throw UsageError("sample: -q with no output (-o, --samples, --data-samples, --per-sample)");
  }

  // Load, then run: each sample to the per-sample file as it completes.
  const auto model = Model::load(args.model, args.scoring.model);
  std::optional<PerSampleFile> per_sample;
  if (!args.per_sample.empty()) {
    per_sample.emplace(args.per_sample);
    options.on_identity = [&](const nlohmann::json& identity) {
      per_sample->open(identity, /*resume=*/false);
    };
    options.on_sample = [&](const SampleResult& r) { per_sample->write(r); };
  }
  Progress progress(Progress::mode_for_stderr(args.scoring.quiet), 0);
  options.on_progress = [&](int64_t done, int64_t total) { progress.advance_to(done, total); };
  auto report = flowlik::run_sample(model, args.count, options);
  progress.finish();
  if (per_sample) per_sample->commit();

  // Outputs.
  if (!args.samples.empty()) save_npy(args.samples, report.points);
  if (!args.data_samples.empty()) save_npy(args.data_samples, report.levels);
  const auto absolute = [](const std::string& path) {
    return path.empty() ? path : std::filesystem::absolute(path).string();
  };
  report.samples_file = absolute(args.samples);
  report.data_samples_file = absolute(args.data_samples);
  report.per_sample = absolute(args.per_sample);
  if (!args.scoring.output.empty()) write_report(args.scoring.output, to_json(report));
  const auto& summary = report.summary;
  check_some_scored(summary);
  if (!args.scoring.quiet) {
    int64_t dim = 1;
    for (int64_t i = 1; i < report.points.dim(); ++i) dim *= report.points.size(i);
    fmt::print("flowlik sample: {} ({} samples{}, D = {})\n", report.model.path,
               report.samples.size(),
               report.shard ? fmt::format(" of {}, shard {}/{}", args.count, report.shard->index,
                                          report.shard->count)
                            : "",
               dim);
    fmt::print("  log-lik    {:.4f} +- {:.4f} nats per sample (the model's density at each)\n",
               summary.log_likelihood.mean, summary.log_likelihood.std_error);
    fmt::print("  bpd        {:.4f} +- {:.4f} (stderr), in the model's space\n", summary.bpd.mean,
               summary.bpd.std_error);
    fmt::print("  NFE        mean {:.1f}, max {}\n", summary.nfe_mean, summary.nfe_max);
    fmt::print("  samples    {} ok, {} excluded (failed or not finite)\n", summary.ok,
               summary.total - summary.ok);
    fmt::print("  time       {:.2f} s\n", report.wall_seconds);
  }
  return static_cast<int>(ExitCode::kOk);
}

}  // namespace flowlik::cli
