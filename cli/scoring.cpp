#include "cli/scoring.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

#include <algorithm>
#include <vector>

#include "cli/contract_options.h"
#include "cli/exit_codes.h"
#include "cli/memory.h"
#include "cli/number_options.h"
#include "cli/progress.h"
#include "likelihood/dataset.h"
#include "likelihood/file_digest.h"
#include "likelihood/report.h"
#include "likelihood/score.h"
#include "likelihood/text_number.h"

namespace flowlik::cli {

void print_summary(const ScoreRun& run) {
  const auto& s = run.summary;
  const auto& pre = *run.preprocessing;
  fmt::print("flowlik score: {} on {} ({} samples, D = {})\n", run.field->path(), run.data->path,
             run.data->size, run.data->dim);
  if (pre.discrete) {
    fmt::print(
        "  data       discrete, {} levels [{}], {} dequantization (seed {}, {}), scale {} [{}]\n",
        pre.levels, pre.levels_source, describe_dequantization(pre), pre.seed,
        pre.draws > 1 ? fmt::format("{} draws, {} bound", pre.draws, to_string(pre.bound))
                      : "one draw",
        describe_scale(pre), pre.scale_source);
    if (const auto caveat = bound_caveat(pre, run.options); !caveat.empty()) {
      fmt::print("  caveat     {}\n", caveat);
    }
  } else {
    fmt::print("  data       continuous, scored as given\n");
  }
  fmt::print("  bpd        {:.4f} +- {:.4f} (stderr)  95% CI [{:.4f}, {:.4f}]\n", s.bpd.mean,
             s.bpd.std_error, s.bpd.ci_low, s.bpd.ci_high);
  fmt::print("  log-lik    {:.4f} +- {:.4f} nats per sample\n", s.log_likelihood.mean,
             s.log_likelihood.std_error);
  fmt::print("  stderr     {}\n", describe_error_sources(s));
  fmt::print("  NFE        mean {:.1f}, max {}\n", s.nfe_mean, s.nfe_max);
  fmt::print("  samples    {} ok, {} excluded (failed or not finite)\n", s.ok, s.total - s.ok);
  fmt::print("  time       {:.2f} s\n", run.wall_seconds);
}

void write_report(const std::string& path, const nlohmann::json& report) {
  write_file_atomically(path, report.dump(2) + "\n");
}

// Bounds of counts given on the command line: beyond them a value is a typo, and would end in an
// allocation failure or an OpenMP crash (--threads 100000) rather than a message.
constexpr int64_t kMaxCount = int64_t{1} << 40;
constexpr int64_t kMaxProbes = 1 << 16;
constexpr int64_t kMaxThreads = 1024;

namespace {

// --dequantization, --dequant-draws, --dequant-bound and --protocol, which fills in, once the
// command line is read, the options it lists that were not given.
void add_dequantization_options(CLI::App& cmd, ScoreArguments& a) {
  cmd.add_option("--dequantization", a.score.data.dequantization,
                 "noise within each bin: uniform, or truncated-normal[:SIGMA] (a normal of SIGMA "
                 "bins truncated to the bin; SIGMA from the model's schedule when not given)")
      ->capture_default_str();
  cmd.add_option("--dequant-draws", a.score.data.dequant_draws, "dequantization draws per sample")
      ->capture_default_str()
      ->check(integer_in(1, kMaxProbes));
  add_choice(cmd, "--dequant-bound", a.score.data.dequant_bound, parse_draw_bound,
             "how the draws combine: importance-weighted (logmeanexp) or mean (the dataset scored "
             "once per draw, as score_sde)");
  std::vector<std::string> names;
  for (const auto& p : protocols()) names.push_back(p.name);
  cmd.add_option("--protocol", a.protocol,
                 fmt::format("a published evaluation protocol ({}): sets the options it lists "
                             "(docs/protocols.md); options given here win",
                             fmt::join(names, ", ")))
      ->check(CLI::IsMember(names));
  cmd.parse_complete_callback([&cmd, &a] {
    if (a.protocol.empty()) return;
    std::vector<std::string> given;
    for (const auto* option : cmd.get_options()) {
      if (option->count() == 0) continue;
      for (const auto& name : option->get_lnames()) given.push_back(name);
    }
    // A time range given whole leaves no data end for the protocol's eps to move.
    if (std::ranges::find(given, "time-range") != given.end()) given.push_back("time-eps");
    const auto& protocol = find_protocol(a.protocol);
    a.protocol_kept.clear();
    for (const auto& s : protocol.settings) {
      if (std::ranges::find(given, s.option) != given.end()) a.protocol_kept.push_back(s.option);
    }
    apply_protocol(protocol, a.model, a.score, a.protocol_kept);
  });
}

}  // namespace

void add_scoring_options(CLI::App& cmd, ScoreArguments& a, OptionsFor use) {
  const bool data = use == OptionsFor::kData;
  if (data) {
    cmd.add_option("--data", a.data, ".npy array [N, *shape]: float32/float64 or uint8")
        ->required()
        ->check(CLI::ExistingFile);
    cmd.add_option("--labels", a.labels,
                   "class labels [N] (int64 or uint8) for a class-conditional model")
        ->check(CLI::ExistingFile);
  }
  add_contract_options(cmd, a.model.contract);
  a.score.data.name_argument = option_for;
  // The range [2, 256] is checked with the data, which says whether levels apply at all.
  cmd.add_option("--levels", a.score.data.levels,
                 "levels K of discrete data (default 256 for uint8)")
      ->check(integer_in(-kMaxCount, kMaxCount));
  cmd.add_option("--scale", a.score.data.scale,
                 "map of dequantized data to model space: unit|centered|logit[:lambda]");
  if (data) add_dequantization_options(cmd, a);
  add_choice(cmd, "--solver", a.score.solver.method, parse_solver,
             "dopri5, tsit5, bosh3, rkf78 (adaptive, steps per sample); rk4, midpoint, euler "
             "(fixed step)");
  cmd.add_option("--rtol", a.score.solver.rtol, "relative tolerance (adaptive solvers)")
      ->capture_default_str()
      ->check(positive_finite(1.0));
  cmd.add_option("--atol", a.score.solver.atol, "absolute tolerance (adaptive solvers)")
      ->capture_default_str()
      ->check(positive_finite(1.0));
  add_choice(
      cmd, "--error-norm", a.score.solver.error_norm, parse_error_norm,
      "error norm of adaptive solvers, per sample: rms, max (Odeint's) or mixed (torchdiffeq's)");
  cmd.add_option("--steps", a.score.solver.steps, "steps of a fixed-step solver")
      ->capture_default_str()
      ->check(integer_in(1, kMaxCount));
  cmd.add_option("--max-nfe", a.score.solver.max_nfe,
                 "fail a solve that needs more function evaluations")
      ->capture_default_str()
      ->check(integer_in(1, kMaxCount));
  add_choice(cmd, "--trace", a.score.trace.method, parse_trace, "exact or hutchinson");
  add_choice(cmd, "--noise", a.score.trace.noise, parse_probe_noise,
             "Hutchinson probes: rademacher or gaussian");
  cmd.add_option("--probes", a.score.trace.probes, "Hutchinson probes per sample")
      ->capture_default_str()
      ->check(integer_in(1, kMaxProbes));
  cmd.add_option("--max-rows", a.max_rows,
                 "rows per batched autograd call of the exact trace, or auto: as many as fit in "
                 "--memory, measured on the model")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto"}) | integer_in(1, kMaxCount));
  cmd.add_option("--memory", a.memory_mb,
                 "memory budget in MB of the exact trace's batched calls under --max-rows auto "
                 "(default: half of the memory available)")
      ->check(positive_finite(1e12));
  cmd.add_option("--seed", a.score.seed, "seed of dequantization noise and probes")
      ->capture_default_str()
      ->check(unsigned_integer());
  add_choice(cmd, "--dtype", a.model.dtype, parse_dtype, "float32 or float64");
  cmd.add_option("--device", a.model.device, "cpu, cuda or cuda:N")->capture_default_str();
  cmd.add_option("--batch-size", a.score.batch_size, "samples solved together")
      ->capture_default_str()
      ->check(integer_in(1, kMaxCount));
  cmd.add_option("--threads", a.threads, "intra-op threads (0: LibTorch's default)")
      ->check(integer_in(0, kMaxThreads));
  cmd.add_option("-o,--output", a.output, "write the JSON report here");
  if (data) {
    // Histories and HTML reports are of scored datasets; `sample` writes neither.
    cmd.add_option("--history", a.history,
                   "append the result to this SQLite history (created if absent)");
    cmd.add_option("--html", a.html, "write a self-contained HTML report with plots here");
  }
  cmd.add_flag("-q,--quiet", a.quiet, "no progress and no summary");
}

ScoreSetup parse_run_setup(const ScoreArguments& args) {
  auto options = args.score;
  if (args.max_rows != "auto") options.trace.max_rows = *parse_int64(args.max_rows);
  auto setup = make_score_setup(options);
  tensor_options(args.model);  // --dtype and --device checked (and CUDA loaded) before any work
  if (args.threads > 0) torch::set_num_threads(args.threads);
  return setup;
}

ScoreSetup fit_exact_rows_to_memory(const ScoreArguments& args, const ScoreSetup& setup,
                                    std::span<const PreparedModel> models, std::string* how) {
  if (setup.trace_spec.method != Trace::kExact || args.max_rows != "auto") return setup;
  const auto budget_bytes = static_cast<int64_t>(args.memory_mb * 1e6);
  const auto available = available_memory_bytes();
  RowBudget fewest;
  for (const auto& model : models) {
    const auto fit = rows_for_memory(exact_bytes_per_row(*model.field), budget_bytes, available);
    if (&model == &models.front() || fit.max_rows < fewest.max_rows) fewest = fit;
  }
  if (how) *how = "--max-rows auto: " + fewest.how;
  auto options = setup.options;
  options.trace.max_rows = fewest.max_rows;
  return make_score_setup(options);
}

nlohmann::json result_options(nlohmann::json options) {
  for (const char* key : {"batch_size", "threads", "max_rows"}) options.erase(key);
  return options;
}

nlohmann::json protocol_json(const ScoreArguments& args) {
  if (args.protocol.empty()) return nullptr;
  const auto& protocol = find_protocol(args.protocol);
  nlohmann::json settings = nlohmann::json::array();
  for (const auto& s : protocol.settings) {
    const bool kept = std::ranges::find(args.protocol_kept, s.option) != args.protocol_kept.end();
    settings.push_back(
        {{"option", "--" + s.option},
         {"value", s.value},
         {"applied", !kept},
         {"replaced_by", kept ? nlohmann::json(s.option == "time-eps" ? "option --time-range"
                                                                      : "option --" + s.option)
                              : nlohmann::json(nullptr)}});
  }
  return {{"name", protocol.name},
          {"source", protocol.source},
          {"settings", settings},
          {"note",
           "each setting is an ordinary option; the report's options, preprocessing and contract "
           "record what was in effect"}};
}

Dataset load_scoring_data(const ScoreArguments& args) {
  Dataset data = load_dataset(args.data);
  if (!args.protocol.empty() && !data.is_discrete()) {
    throw UsageError(fmt::format(
        "--protocol {}: defines a bound on the probability of discrete (uint8) data; {} holds {} "
        "values",
        args.protocol, args.data, to_string(data.dtype)));
  }
  if (!args.labels.empty()) {
    data.labels = load_labels(args.labels, data.size);
    data.labels_path = args.labels;
  }
  return data;
}

PreparedModel prepare_for_run(const std::string& model_path, const ScoreArguments& args,
                              const Dataset& data) {
  auto field = load_field(model_path, args.model);
  // A protocol's map is the paper's; a manifest's is the one the model was trained on. When they
  // differ the number would describe another preprocessing than the model's, so the user chooses.
  const auto& declared = field->contract().data_scale;
  const bool scale_from_protocol =
      !args.protocol.empty() &&
      std::ranges::find(args.protocol_kept, "scale") == args.protocol_kept.end();
  if (scale_from_protocol && declared && args.score.data.scale &&
      *declared != *args.score.data.scale) {
    throw UsageError(fmt::format(
        "--protocol {} maps the data with scale {}, but {} declares scale {} ({}), the map it was "
        "trained on; give --scale to choose one",
        args.protocol, *args.score.data.scale, model_path, *declared,
        field->contract().sources.at("data")));
  }
  auto model = prepare_model(field, args.model, args.score, data);
  model.sha256 = sha256_file(model_path);
  return model;
}

std::vector<NamedFile> run_inputs(std::span<const std::string> models, const ScoreArguments& args) {
  std::vector<NamedFile> inputs;
  for (const auto& m : models) {
    inputs.push_back({"model", m});
    inputs.push_back({"the manifest beside the model", m + ".json"});
  }
  inputs.push_back({"--data", args.data});
  inputs.push_back({"--labels", args.labels});
  return inputs;
}

void check_run_outputs(std::span<const NamedFile> inputs, std::span<const NamedFile> outputs) {
  check_outputs_distinct(inputs, outputs);
  for (const auto& out : outputs) {
    if (!out.path.empty()) check_can_create(out.path, out.option == "-o" ? "report" : "file");
  }
}

nlohmann::json run_identity(const PreparedModel& model, const ScoreSetup& setup,
                            const Dataset& data, const std::string& data_sha256) {
  // What does not change the results (docs/reproducibility.md): the batch, the threads, and the
  // exact trace's chunking of its rows.
  const auto options = result_options(options_json(setup, model, 0));
  auto contract = contract_json(model.field->contract());
  contract.erase("sources");  // where a value came from does not change what is measured
  auto preprocessing = preprocessing_json(*model.preprocessing, data.dim);
  if (preprocessing.contains("sources")) preprocessing.erase("sources");
  return {
      {"model_sha256", model.sha256},
      {"data_sha256", data_sha256},
      {"labels_sha256", data.labels_path.empty() ? nlohmann::json(nullptr)
                                                 : nlohmann::json(sha256_file(data.labels_path))},
      {"contract", contract},
      {"preprocessing", preprocessing},
      {"options", options}};
}

std::string identity_difference(const nlohmann::json& recorded, const nlohmann::json& current) {
  // flatten() keys are JSON pointers ("/options/seed"); messages name fields as the report does.
  auto dotted = [](std::string key) {
    if (!key.empty() && key.front() == '/') key.erase(0, 1);
    std::replace(key.begin(), key.end(), '/', '.');
    return key;
  };
  const auto a = recorded.flatten();
  const auto b = current.flatten();
  // A field both runs have but with other values first: it says more than the fields it brings
  // along.
  for (const auto& [key, value] : b.items()) {
    if (a.contains(key) && a.at(key) != value) {
      return fmt::format("'{}' differs (file: {}, this run: {})", dotted(key), a.at(key).dump(),
                         value.dump());
    }
  }
  for (const auto& [key, value] : b.items()) {
    if (!a.contains(key)) {
      return fmt::format("'{}' is missing from the file (this run: {})", dotted(key), value.dump());
    }
  }
  for (const auto& [key, value] : a.items()) {
    if (!b.contains(key))
      return fmt::format("'{}' is not part of this run (file: {})", dotted(key), value.dump());
  }
  return {};
}

ModelRun score_with_progress(const PreparedModel& model, const ScoreArguments& args,
                             const ScoreSetup& setup, const Dataset& data,
                             const std::string& data_sha256, std::span<const int64_t> indices,
                             std::vector<SampleResult> done, const SampleSink& on_sample) {
  Progress progress(Progress::mode_for_stderr(args.quiet), static_cast<int64_t>(indices.size()));
  auto run = score_model(model, setup, data, data_sha256, indices, std::move(done),
                         [&](const SampleResult& r) {
                           if (on_sample) on_sample(r);
                           progress.advance();
                         });
  progress.finish();
  return run;
}

}  // namespace flowlik::cli
