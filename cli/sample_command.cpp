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
#include "cli/shard.h"
#include "io/sample_csv.h"
#include "likelihood/dataset.h"
#include "likelihood/file_digest.h"
#include "likelihood/npy.h"
#include "likelihood/report.h"
#include "likelihood/sample.h"

namespace flowlik::cli {
namespace {

void write_array(const std::string& path, const torch::Tensor& values,
                 const std::vector<int64_t>& sample_shape) {
  NpyArray array;
  const auto contiguous = values.contiguous();
  array.dtype = contiguous.scalar_type() == torch::kUInt8 ? NpyDtype::kUint8 : NpyDtype::kFloat32;
  const auto typed = array.dtype == NpyDtype::kUint8 ? contiguous : contiguous.to(torch::kFloat32);
  array.shape = {values.size(0)};
  array.shape.insert(array.shape.end(), sample_shape.begin(), sample_shape.end());
  const auto bytes = static_cast<size_t>(typed.numel()) * typed.element_size();
  array.bytes.resize(bytes);
  if (bytes > 0) std::memcpy(array.bytes.data(), typed.data_ptr(), bytes);
  write_npy(path, array);
}

}  // namespace

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
  const auto setup = parse_run_setup(args.scoring);
  const Shard shard = resolve_shard(args.shard, [](const char* name) { return std::getenv(name); });
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

  // Load: the model, bound to the shape its manifest declares.
  const auto loaded = load_field(args.model, args.scoring.model);
  const auto& contract = loaded->contract();
  const auto field = std::make_shared<VelocityField>(bound_for_sampling(*loaded));
  // The map from the model's space back to the data's levels, if the options or manifest give one.
  const auto map = resolve_data_map(args.scoring.score.data, contract);
  if (!args.data_samples.empty() && !map) {
    throw UsageError(fmt::format(
        "--data-samples: {} declares no map to the data (manifest field 'data'); give --scale "
        "unit|centered|logit[:lambda]",
        args.model));
  }
  PreparedModel prepared;
  prepared.path = args.model;
  prepared.field = field;
  prepared.preprocessing = std::make_shared<const Preprocessing>();
  prepared.sha256 = sha256_file(args.model);
  prepared.model_options = args.scoring.model;
  std::string rows_chosen;
  const VelocityField* fields[] = {field.get()};
  const auto fitted = args.scoring.max_rows == "auto"
                          ? fit_exact_rows(setup, fields, args.scoring.memory_mb, &rows_chosen)
                          : setup;
  const auto [first, end] = shard.range(args.count);
  // Every sample's label, read before any work; this shard's block of them.
  const auto labels = args.labels.empty()
                          ? torch::Tensor()
                          : load_labels(args.labels, args.count).narrow(0, first, end - first);
  std::vector<int64_t> indices;
  for (int64_t i = first; i < end; ++i) indices.push_back(i);

  auto options = options_json(fitted, prepared, args.scoring.threads);
  options.erase("dequant_draws");  // no data to dequantize
  const nlohmann::json generated = {
      {"N", args.count},
      {"labels", args.labels.empty()
                     ? nlohmann::json(nullptr)
                     : nlohmann::json(std::filesystem::absolute(args.labels).string())},
      {"seed", args.scoring.score.seed},
      {"prior", contract.prior_scale == 1.0
                    ? std::string("standard normal")
                    : fmt::format("normal, scale {}", contract.prior_scale)},
      {"noise",
       "x0 ~ p0, Philox keyed by (seed, sample index): the same point in any batch or "
       "shard"},
      {"first", first},
      {"end", end}};
  auto contract_report = contract_json(contract);
  auto identity_contract = contract_report;
  identity_contract.erase("sources");
  const nlohmann::json identity = {{"model_sha256", prepared.sha256},
                                   {"generated", generated},
                                   {"contract", identity_contract},
                                   {"options", result_options(options)}};
  std::optional<JournalLock> lock;
  if (!args.per_sample.empty()) lock.emplace(args.per_sample);
  std::optional<SampleCsvWriter> csv;
  if (!args.per_sample.empty()) csv.emplace(args.per_sample, identity);

  // Run.
  const auto start = std::chrono::steady_clock::now();
  const int64_t n = end - first;
  Progress progress(Progress::mode_for_stderr(args.scoring.quiet), n);
  const auto [x1, results] =
      generate_rows(*field, *fitted.trace, ScoreSpec{fitted.solver, args.scoring.score.batch_size},
                    args.scoring.score.seed, indices, labels, [&](const SampleResult& r) {
                      if (csv) csv->write(r);
                      progress.advance();
                    });
  progress.finish();
  if (csv) csv->commit();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  // Outputs.
  if (!args.samples.empty()) write_array(args.samples, x1, field->shape());
  if (!args.data_samples.empty())
    write_array(args.data_samples, to_levels(x1, *map), field->shape());
  const auto summary = summarize_results(results, field->dim());
  nlohmann::json report = {
      {"schema_version", kReportSchemaVersion},
      {"tool", {{"name", "flowlik"}, {"version", FLOWLIK_VERSION}, {"command", "sample"}}},
      {"model",
       {{"path", field->path()},
        {"format", field->format()},
        {"sha256", prepared.sha256},
        {"parameters", field->parameter_count()},
        {"contract", contract_report}}},
      {"generated", generated},
      {"preprocessing",
       {{"kind", "generated"},
        {"description",
         "log_likelihood = log p1(x1) = log p0(x0) - integral of tr(dv/dx) dt along the forward "
         "solve, the model's density at the sample in its own space; bpd = -log_likelihood / (D "
         "ln 2)"}}},
      {"options", options},
      {"samples", samples_json(summary)},
      {"metrics", metrics_json(summary)},
      {"wall_time_s", seconds}};
  if (map) {
    report["data_map"] = {
        {"scale", describe_scale(*map)},
        {"levels", map->levels},
        {"sources", {{"scale", map->scale_source}, {"levels", map->levels_source}}},
        {"how", "x01 from the map's inverse, level k = floor(K x01) in [0, K-1]"}};
  }
  if (!rows_chosen.empty()) report["exact_trace_rows"] = rows_chosen;
  if (shard.count > 1) report["shard"] = shard.json(args.count);
  for (const auto& [key, path] :
       {std::pair{"samples_file", args.samples}, std::pair{"data_samples_file", args.data_samples},
        std::pair{"per_sample", args.per_sample}}) {
    if (!path.empty()) report[key] = std::filesystem::absolute(path).string();
  }
  if (!args.scoring.output.empty()) write_report(args.scoring.output, report);
  if (summary.ok == 0 && summary.total > 0) throw all_failed_error(summary.total);
  if (!args.scoring.quiet) {
    fmt::print("flowlik sample: {} ({} samples{}, D = {})\n", field->path(), n,
               shard.count > 1
                   ? fmt::format(" of {}, shard {}/{}", args.count, shard.index, shard.count)
                   : "",
               field->dim());
    fmt::print("  log-lik    {:.4f} +- {:.4f} nats per sample (the model's density at each)\n",
               summary.log_likelihood.mean, summary.log_likelihood.std_error);
    fmt::print("  bpd        {:.4f} +- {:.4f} (stderr), in the model's space\n", summary.bpd.mean,
               summary.bpd.std_error);
    fmt::print("  NFE        mean {:.1f}, max {}\n", summary.nfe_mean, summary.nfe_max);
    fmt::print("  samples    {} ok, {} excluded (failed or not finite)\n", summary.ok,
               summary.total - summary.ok);
    fmt::print("  time       {:.2f} s\n", seconds);
  }
  return static_cast<int>(ExitCode::kOk);
}

}  // namespace flowlik::cli
