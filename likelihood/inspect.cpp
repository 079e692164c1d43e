// inspect (flowlik/inspect.h): the contract, a smoke run and the cost of scoring a model.
#include "flowlik/inspect.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "flowlik/error.h"
#include "flowlik/run.h"
#include "likelihood/cost.h"
#include "likelihood/model_run.h"

namespace flowlik {

InspectReport inspect(const Model& model, const std::optional<std::vector<int64_t>>& shape) {
  const auto& state = detail::ModelAccess::state(model);
  VelocityField field(*state.field);  // bound here, a copy of its own
  const auto& contract = field.contract();
  if (shape) {
    field.bind_shape(*shape);
  } else if (contract.shape) {
    field.bind_shape(*contract.shape);
  } else {
    throw InvalidArgument("shape",
                          "the model declares no shape in a manifest; give one, e.g. --shape 8,8");
  }
  const auto options = field.options();

  InspectReport report;
  report.path = field.path();
  report.format = field.format();
  report.parameters = field.parameter_count();
  report.parameter_dtype = field.parameter_dtype();
  report.contract = contract;
  report.dim = field.dim();
  report.device = to_string(state.options.device);
  report.blocks = field.blocks();

  // Smoke run: a batch of prior samples through the velocity at mid-path, drawn from a generator
  // of its own (the process's global one, a library caller's, is left alone).
  constexpr int64_t kBatch = 4;
  const auto generator = at::make_generator<at::CPUGeneratorImpl>(0);
  const auto x = contract.prior_scale *
                 torch::randn({kBatch, field.dim()}, generator, torch::kFloat64).to(options);
  report.smoke_flow_time = 0.5 * (contract.t_data() + contract.t_prior());
  const auto labels =
      contract.conditional ? torch::zeros({kBatch}, options.dtype(torch::kInt64)) : torch::Tensor();
  torch::Tensor v;
  {
    torch::NoGradGuard no_grad;
    v = field.evaluate(x, report.smoke_flow_time, labels);
  }
  report.smoke_input_shape = {kBatch, field.dim()};
  report.smoke_output_shape = v.sizes().vec();
  report.smoke_finite = torch::isfinite(v).all().item<bool>();

  const auto cost =
      measure_cost(field, x.narrow(0, 0, 1), labels.defined() ? labels.narrow(0, 0, 1) : labels);
  report.cost = {cost.velocity_ms,      cost.hutchinson_ms,    cost.exact_ms,
                 cost.exact_rows,       cost.exact_peak_bytes, cost.exact_budget.max_rows,
                 cost.exact_budget.how, cost.solve_status,     cost.nfe,
                 cost.solve_seconds,    cost.log_likelihood};
  return report;
}

nlohmann::json to_json(const InspectReport& r) {
  const auto& c = r.cost;
  return {
      {"model", r.path},
      {"format", r.format},
      {"parameters", {{"count", r.parameters}, {"dtype", r.parameter_dtype}}},
      {"rows_per_call", r.blocks},
      {"contract", to_json(r.contract)},
      {"smoke",
       {{"input_shape", r.smoke_input_shape},
        {"output_shape", r.smoke_output_shape},
        {"device", r.device},
        {"finite", r.smoke_finite},
        {"flow_time", r.smoke_flow_time},
        {"one_sample",
         {{"status", c.solve_status},
          {"nfe", c.nfe},
          {"seconds", c.solve_seconds},
          {"trace", "hutchinson (rademacher, 1 probe)"},
          {"log_likelihood", std::isfinite(c.log_likelihood) ? nlohmann::json(c.log_likelihood)
                                                             : nlohmann::json(nullptr)}}}}},
      {"cost",
       {{"velocity_ms_per_sample", c.velocity_ms},
        {"hutchinson_ms_per_evaluation", c.hutchinson_ms},
        {"exact_ms_per_evaluation", c.exact_ms},
        {"exact_measured_rows", c.exact_rows},
        {"score_seconds_per_sample",
         {{"hutchinson", c.hutchinson_ms * 1e-3 * c.nfe}, {"exact", c.exact_ms * 1e-3 * c.nfe}}},
        {"exact_peak_memory_bytes", c.exact_peak_bytes},
        {"exact_max_rows", c.exact_max_rows},
        {"exact_max_rows_how", "--max-rows auto: " + c.exact_max_rows_how},
        {"assumptions",
         fmt::format(
             "one sample at a time; NFE {} from the Hutchinson solve at rtol = atol = 1e-5 "
             "(dopri5); "
             "exact trace extrapolated from {} rows to D = {} rows per evaluation; peak memory of "
             "the exact trace at --max-rows auto ({}) and --batch-size 32, extrapolated linearly "
             "in rows from the measured chunk",
             c.nfe, c.exact_rows, r.dim, c.exact_max_rows)}}},
  };
}

namespace {

// "16; runs of at most 4 rows: 2": the blocks run_block gives a run, for the console.
std::string describe_blocks(const std::vector<int64_t>& blocks) {
  if (blocks.empty()) return "?";
  const auto large = blocks.front();
  std::vector<int64_t> small;  // largest first, as blocks
  for (int64_t rows = large / 4; rows >= 1; --rows) {
    const auto block = run_block(blocks, rows);
    if (small.empty() || small.back() != block) small.push_back(block);
  }
  if (small.empty() || small.front() == large) return std::to_string(large);
  return fmt::format("{}; runs of at most {} rows: {}", large, large / 4, fmt::join(small, ", "));
}

}  // namespace

std::string describe(const InspectReport& r) {
  const auto& c = r.cost;
  std::string text;
  text += fmt::format("{} ({})\n", r.path, r.format);
  text += fmt::format("  parameters        {} ({})\n", r.parameters, r.parameter_dtype);
  text += fmt::format("  rows per call     {}\n", describe_blocks(r.blocks));
  text += fmt::format("  contract          field = value  [source]\n");
  const auto contract = to_json(r.contract);
  for (const char* key : {"signature", "time_input", "time", "parameterization", "schedule",
                          "time_range", "prior", "shape", "data", "conditioning"}) {
    text += fmt::format("    {:<17} {}  [{}]\n", key, contract[key].dump(),
                        contract["sources"][key].get<std::string>());
  }
  text += fmt::format("    integrated        flow time {} -> {}\n", r.contract.t_data(),
                      r.contract.t_prior());
  text += fmt::format("  smoke: velocity   input [{}] -> output [{}], {}\n",
                      fmt::join(r.smoke_input_shape, ", "), fmt::join(r.smoke_output_shape, ", "),
                      r.smoke_finite ? "all finite" : "NOT FINITE");
  text += fmt::format(
      "  smoke: one sample {}, NFE {}, {:.3f} s (dopri5, rtol = atol = 1e-5, Hutchinson trace)\n",
      c.solve_status, c.nfe, c.solve_seconds);
  text += fmt::format("  cost: velocity    {:.3f} ms per sample\n", c.velocity_ms);
  text += fmt::format(
      "  cost: hutchinson  {:.3f} ms per evaluation, about {:.2f} s per sample to score\n",
      c.hutchinson_ms, c.hutchinson_ms * 1e-3 * c.nfe);
  text += fmt::format(
      "  cost: exact       {:.3f} ms per evaluation, about {:.2f} s per sample to score, peak "
      "memory about {:.0f} MB (estimated from {} of {} rows)\n",
      c.exact_ms, c.exact_ms * 1e-3 * c.nfe, c.exact_peak_bytes / 1e6, c.exact_rows, r.dim);
  text += fmt::format("  memory: exact     --max-rows auto gives {}\n", c.exact_max_rows_how);
  return text;
}

}  // namespace flowlik
