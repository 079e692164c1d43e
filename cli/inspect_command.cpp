#include "cli/inspect_command.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <string>

#include "cli/contract_options.h"
#include "cli/exit_codes.h"
#include "cli/number_options.h"
#include "likelihood/cost.h"
#include "likelihood/model_run.h"
#include "likelihood/text_number.h"
#include "likelihood/velocity_field.h"

namespace flowlik::cli {
namespace {

std::vector<int64_t> parse_shape(const std::string& text) {
  std::vector<int64_t> shape;
  for (const auto& item : split_on_commas(text)) {
    const auto value = parse_int64(item);
    if (!value || *value < 1) {
      throw UsageError(fmt::format("--shape: expected positive integers like 8,8, got '{}'", text));
    }
    shape.push_back(*value);
  }
  return shape;
}

}  // namespace

CLI::App* add_inspect_command(CLI::App& app, InspectArguments& a) {
  auto* cmd = app.add_subcommand("inspect", "show a model's contract and run it once");
  cmd->add_option("model", a.model,
                  "model file: an AOTInductor package (.pt2) or a TorchScript module")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--shape", a.shape, "per-sample shape, e.g. 8,8 (default: the manifest's)");
  add_choice(*cmd, "--dtype", a.options.dtype, parse_dtype, "float32 or float64");
  cmd->add_option("--device", a.options.device, "cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_flag("--json", a.json, "print JSON instead of text");
  add_contract_options(*cmd, a.options.contract);
  return cmd;
}

InspectOutcome execute_inspect(const InspectArguments& args) {
  const auto loaded = load_field(args.model, args.options);
  VelocityField& field = *loaded;
  const auto options = field.options();
  std::vector<int64_t> shape;
  if (args.shape) {
    shape = parse_shape(*args.shape);
  } else if (field.contract().shape) {
    shape = *field.contract().shape;
  } else {
    throw UsageError(
        "--shape: the model declares no shape in a manifest; give one, e.g. --shape 8,8");
  }
  field.bind_shape(shape);

  // Smoke run 1: a batch of prior samples through the velocity at mid-path.
  constexpr int64_t kBatch = 4;
  // Drawn from a generator of its own: the process's global one (a library caller's) is left alone.
  const auto generator = at::make_generator<at::CPUGeneratorImpl>(0);
  const auto x = field.contract().prior_scale *
                 torch::randn({kBatch, field.dim()}, generator, torch::kFloat64).to(options);
  const double t_mid = 0.5 * (field.contract().t_data() + field.contract().t_prior());
  // A conditional model is run with label 0.
  const auto labels = field.contract().conditional
                          ? torch::zeros({kBatch}, options.dtype(torch::kInt64))
                          : torch::Tensor();
  torch::Tensor v;
  {
    torch::NoGradGuard no_grad;
    v = field.evaluate(x, t_mid, labels);
  }
  const bool finite = torch::isfinite(v).all().item<bool>();

  // Cost, in seconds at any model size: one evaluation of each estimator is timed, and one sample
  // is solved with the cheap Hutchinson trace; the exact trace is never run over a whole solve here
  // (a 3x32x32 model would take minutes and gigabytes), its cost is extrapolated from a chunk of
  // rows.
  const auto cost =
      measure_cost(field, x.narrow(0, 0, 1), labels.defined() ? labels.narrow(0, 0, 1) : labels);
  const std::string solve_status = cost.solve_status;
  const int64_t nfe = cost.nfe;
  const double seconds = cost.solve_seconds;
  const double log_likelihood = cost.log_likelihood;

  nlohmann::json report = {
      {"model", field.path()},
      {"format", field.format()},
      {"parameters", {{"count", field.parameter_count()}, {"dtype", field.parameter_dtype()}}},
      {"contract", contract_json(field.contract())},
      {"smoke",
       {{"input_shape", std::vector<int64_t>{kBatch, field.dim()}},
        {"output_shape", v.sizes().vec()},
        {"device", args.options.device},
        {"finite", finite},
        {"flow_time", t_mid},
        {"one_sample",
         {{"status", solve_status},
          {"nfe", nfe},
          {"seconds", seconds},
          {"trace", "hutchinson (rademacher, 1 probe)"},
          {"log_likelihood", std::isfinite(log_likelihood) ? nlohmann::json(log_likelihood)
                                                           : nlohmann::json(nullptr)}}}}},
      {"cost",
       {{"velocity_ms_per_sample", cost.velocity_ms},
        {"hutchinson_ms_per_evaluation", cost.hutchinson_ms},
        {"exact_ms_per_evaluation", cost.exact_ms},
        {"exact_measured_rows", cost.exact_rows},
        {"score_seconds_per_sample",
         {{"hutchinson", cost.hutchinson_ms * 1e-3 * nfe}, {"exact", cost.exact_ms * 1e-3 * nfe}}},
        {"exact_peak_memory_bytes", cost.exact_peak_bytes},
        {"exact_max_rows", cost.exact_budget.max_rows},
        {"exact_max_rows_how", "--max-rows auto: " + cost.exact_budget.how},
        {"assumptions",
         fmt::format(
             "one sample at a time; NFE {} from the Hutchinson solve at rtol = atol = 1e-5 "
             "(dopri5); "
             "exact trace extrapolated from {} rows to D = {} rows per evaluation; peak memory of "
             "the exact trace at --max-rows auto ({}) and --batch-size 32, extrapolated linearly "
             "in rows from the measured chunk",
             nfe, cost.exact_rows, field.dim(), cost.exact_budget.max_rows)}}},
  };
  std::string text;
  {
    const auto& c = field.contract();
    text += fmt::format("{} ({})\n", field.path(), field.format());
    text += fmt::format("  parameters        {} ({})\n", field.parameter_count(),
                        field.parameter_dtype());
    text += fmt::format("  contract          field = value  [source]\n");
    const auto j = contract_json(c);
    for (const char* key : {"signature", "time_input", "time", "parameterization", "schedule",
                            "time_range", "prior", "shape", "data", "conditioning"}) {
      text += fmt::format("    {:<17} {}  [{}]\n", key, j[key].dump(), c.sources.at(key));
    }
    text += fmt::format("    integrated        flow time {} -> {}\n", c.t_data(), c.t_prior());
    text +=
        fmt::format("  smoke: velocity   input [{}, {}] -> output [{}], {}\n", kBatch, field.dim(),
                    fmt::join(v.sizes(), ", "), finite ? "all finite" : "NOT FINITE");
    text += fmt::format(
        "  smoke: one sample {}, NFE {}, {:.3f} s (dopri5, rtol = atol = 1e-5, Hutchinson trace)\n",
        solve_status, nfe, seconds);
    text += fmt::format("  cost: velocity    {:.3f} ms per sample\n", cost.velocity_ms);
    text += fmt::format(
        "  cost: hutchinson  {:.3f} ms per evaluation, about {:.2f} s per sample to score\n",
        cost.hutchinson_ms, cost.hutchinson_ms * 1e-3 * nfe);
    text += fmt::format(
        "  cost: exact       {:.3f} ms per evaluation, about {:.2f} s per sample to score, peak "
        "memory "
        "about {:.0f} MB (estimated from {} of {} rows)\n",
        cost.exact_ms, cost.exact_ms * 1e-3 * nfe, cost.exact_peak_bytes / 1e6, cost.exact_rows,
        field.dim());
    text += fmt::format("  memory: exact     --max-rows auto gives {}\n", cost.exact_budget.how);
  }
  return {report, text, finite && solve_status == "ok" ? 0 : static_cast<int>(ExitCode::kModel)};
}

int run_inspect(const InspectArguments& args) {
  const auto outcome = execute_inspect(args);
  if (args.json) {
    fmt::print("{}\n", outcome.report.dump(2));
  } else {
    fmt::print("{}", outcome.text);
  }
  return outcome.exit_code;
}

}  // namespace flowlik::cli
