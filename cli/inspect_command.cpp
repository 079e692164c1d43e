#include "cli/inspect_command.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <chrono>

#include "cli/contract_options.h"
#include "cli/tensor_options.h"
#include "estimators/exact_trace.h"
#include "likelihood/cnf_solver.h"
#include "likelihood/error.h"
#include "likelihood/text_number.h"
#include "likelihood/prior.h"
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
  cmd->add_option("model", a.model, "TorchScript model")->required()->check(CLI::ExistingFile);
  cmd->add_option("--shape", a.shape, "per-sample shape, e.g. 8,8 (default: the manifest's)");
  cmd->add_option("--dtype", a.dtype, "float32 or float64")->capture_default_str();
  cmd->add_option("--device", a.device, "cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_flag("--json", a.json, "print JSON instead of text");
  add_contract_options(*cmd, a.contract);
  return cmd;
}

int run_inspect(const InspectArguments& args) {
  const auto options = parse_tensor_options(args.dtype, args.device);
  auto [file, contract] = load_model_with_contract(args.model, args.contract);
  std::vector<int64_t> shape;
  if (args.shape) {
    shape = parse_shape(*args.shape);
  } else if (contract.shape) {
    shape = *contract.shape;
  } else {
    throw UsageError("--shape: the model declares no shape in a manifest; give one, e.g. --shape 8,8");
  }
  VelocityField field(std::move(file), std::move(contract), options);
  field.bind_shape(shape);

  // Smoke run 1: a batch of prior samples through the velocity at mid-path.
  constexpr int64_t kBatch = 4;
  torch::manual_seed(0);
  const auto x = field.contract().prior_scale * torch::randn({kBatch, field.dim()}, options);
  const double t_mid = 0.5 * (field.contract().t_data() + field.contract().t_prior());
  // A conditional model is run with label 0.
  const auto labels = field.contract().conditional ? torch::zeros({kBatch}, options.dtype(torch::kInt64))
                                                   : torch::Tensor();
  torch::Tensor v;
  {
    torch::NoGradGuard no_grad;
    v = field.evaluate(x, t_mid, labels);
  }
  const bool finite = torch::isfinite(v).all().item<bool>();

  // Smoke run 2: one sample integrated with the defaults of `flowlik score`.
  SolverSpec spec;
  spec.t_data = field.contract().t_data();
  spec.t_prior = field.contract().t_prior();
  const auto start = std::chrono::steady_clock::now();
  std::string solve_status = "ok";
  int64_t nfe = 0;
  double log_likelihood = NAN;
  try {
    const auto solution = integrate_to_prior(field, ExactTrace(1 << 14), x.narrow(0, 0, 1), {}, spec,
                                             labels.defined() ? labels.narrow(0, 0, 1) : labels);
    nfe = solution.nfe;
    log_likelihood = (normal_log_density(solution.x_prior.cpu(), field.contract().prior_scale) +
                      solution.log_density_change.select(1, 0).to(torch::kCPU, torch::kFloat64)).cpu()
                         .item<double>();
  } catch (const IntegrationFailure& e) {
    solve_status = std::string("failed: ") + e.what();
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  nlohmann::json report = {
      {"model", field.path()},
      {"parameters", {{"count", field.parameter_count()}, {"dtype", field.parameter_dtype()}}},
      {"contract", contract_json(field.contract())},
      {"smoke",
       {{"input_shape", std::vector<int64_t>{kBatch, field.dim()}},
        {"output_shape", v.sizes().vec()},
        {"device", args.device},
        {"finite", finite},
        {"flow_time", t_mid},
        {"one_sample", {{"status", solve_status}, {"nfe", nfe}, {"seconds", seconds},
                        {"log_likelihood", std::isfinite(log_likelihood) ? nlohmann::json(log_likelihood)
                                                                         : nlohmann::json(nullptr)}}}}},
  };
  if (args.json) {
    fmt::print("{}\n", report.dump(2));
  } else {
    const auto& c = field.contract();
    fmt::print("{}\n", field.path());
    fmt::print("  parameters        {} ({})\n", field.parameter_count(), field.parameter_dtype());
    fmt::print("  contract          field = value  [source]\n");
    const auto j = contract_json(c);
    for (const char* key : {"signature", "time_input", "time", "parameterization", "schedule",
                            "time_range", "prior", "shape", "data", "conditioning"}) {
      fmt::print("    {:<17} {}  [{}]\n", key, j[key].dump(), c.sources.at(key));
    }
    fmt::print("    integrated        flow time {} -> {}\n", c.t_data(), c.t_prior());
    fmt::print("  smoke: velocity   input [{}, {}] -> output [{}], {}\n", kBatch, field.dim(),
               fmt::join(v.sizes(), ", "), finite ? "all finite" : "NOT FINITE");
    fmt::print("  smoke: one sample {}, NFE {}, {:.3f} s (dopri5, rtol = atol = 1e-5, exact trace)\n",
               solve_status, nfe, seconds);
  }
  return finite && solve_status == "ok" ? 0 : static_cast<int>(ExitCode::kModel);
}

}  // namespace flowlik::cli
