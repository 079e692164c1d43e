#include "cli/scoring.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

#include <algorithm>
#include <vector>

#include "cli/contract_options.h"
#include "cli/exit_codes.h"
#include "cli/number_options.h"
#include "flowlik/results.h"
#include "flowlik/text_number.h"

namespace flowlik::cli {

void print_summary(const RunReport& r) {
  const auto& s = r.summary;
  fmt::print("flowlik score: {} on {} ({} samples, D = {})\n", r.model.path, r.data.path, r.data.n,
             r.data.dim);
  fmt::print("  data       {}\n", describe(r.preprocessing));
  if (!r.caveat.empty()) fmt::print("  caveat     {}\n", r.caveat);
  fmt::print("  bpd        {:.4f} +- {:.4f} (stderr)  95% CI [{:.4f}, {:.4f}]\n", s.bpd.mean,
             s.bpd.std_error, s.bpd.ci_low, s.bpd.ci_high);
  fmt::print("  log-lik    {:.4f} +- {:.4f} nats per sample\n", s.log_likelihood.mean,
             s.log_likelihood.std_error);
  fmt::print("  stderr     {}\n", describe_error_sources(s));
  fmt::print("  NFE        mean {:.1f}, max {}\n", s.nfe_mean, s.nfe_max);
  fmt::print("  samples    {} ok, {} excluded (failed or not finite)\n", s.ok, s.total - s.ok);
  fmt::print("  time       {:.2f} s\n", r.wall_seconds);
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
  add_choice(cmd, "--dequantization", a.score.data.dequantization, parse_dequantization,
             "noise within each bin: uniform, or truncated-normal[:SIGMA] (a normal of SIGMA bins "
             "truncated to the bin; SIGMA from the model's schedule when not given)");
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
  // The range [2, 256] is checked with the data, which says whether levels apply at all.
  cmd.add_option("--levels", a.score.data.levels,
                 "levels K of discrete data (default 256 for uint8)")
      ->check(integer_in(-kMaxCount, kMaxCount));
  add_parsed(cmd, "--scale", a.score.data.scale, parse_data_map,
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
  add_choice(cmd, "--quadrature", a.score.solver.quadrature, parse_quadrature,
             "how the trace is integrated: augmented (with the state, every stage) or "
             "gauss-legendre (3 points per accepted step on the state's own solve; dopri5)");
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
  add_choice(cmd, "--device", a.model.device, parse_device, "cpu, cuda or cuda:N");
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

RunOptions run_options(const ScoreArguments& args) {
  RunOptions options;
  options.score = args.score;
  if (args.max_rows == "auto") {
    options.fit_rows_to_memory_mb = args.memory_mb;
  } else {
    options.score.trace.max_rows = *parse_int64(args.max_rows);
  }
  options.protocol = {args.protocol, args.protocol_kept};
  if (args.threads > 0) torch::set_num_threads(args.threads);
  return options;
}

Data load_scoring_data(const ScoreArguments& args) { return load_data(args.data, args.labels); }

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

}  // namespace flowlik::cli
