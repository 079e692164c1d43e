// The closed choices of flowlik/options.h by name, and back: one table per choice, one parser.
#include "flowlik/options.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <string>
#include <utility>
#include <vector>

#include "flowlik/error.h"

namespace flowlik {
namespace {

template <class Choice>
using Names = std::vector<std::pair<Choice, const char*>>;

const Names<Solver> kSolvers = {{Solver::kDopri5, "dopri5"}, {Solver::kTsit5, "tsit5"},
                                {Solver::kBosh3, "bosh3"},   {Solver::kRkf78, "rkf78"},
                                {Solver::kRk4, "rk4"},       {Solver::kMidpoint, "midpoint"},
                                {Solver::kEuler, "euler"}};
const Names<ErrorNorm> kErrorNorms = {
    {ErrorNorm::kMax, "max"}, {ErrorNorm::kRms, "rms"}, {ErrorNorm::kMixed, "mixed"}};
const Names<Quadrature> kQuadratures = {{Quadrature::kAugmented, "augmented"},
                                        {Quadrature::kGaussLegendre, "gauss-legendre"}};
const Names<Trace> kTraces = {{Trace::kExact, "exact"}, {Trace::kHutchinson, "hutchinson"}};
const Names<ProbeNoise> kNoises = {{ProbeNoise::kRademacher, "rademacher"},
                                   {ProbeNoise::kGaussian, "gaussian"}};
const Names<Dtype> kDtypes = {{Dtype::kFloat32, "float32"}, {Dtype::kFloat64, "float64"}};
const Names<DrawBound> kBounds = {{DrawBound::kImportanceWeighted, "importance-weighted"},
                                  {DrawBound::kMean, "mean"}};

// The value of that name, or an InvalidArgument naming the argument and listing the valid names.
template <class Choice>
Choice parse_name(const std::string& name, const Names<Choice>& names, const char* argument,
                  const char* what) {
  std::vector<std::string> valid;
  for (const auto& [value, text] : names) {
    if (name == text) return value;
    valid.emplace_back(text);
  }
  throw InvalidArgument(
      argument, fmt::format("unknown {} '{}' (valid: {})", what, name, fmt::join(valid, ", ")));
}

template <class Choice>
std::string name_of(Choice value, const Names<Choice>& names) {
  for (const auto& [v, text] : names) {
    if (v == value) return text;
  }
  return "unknown";
}

}  // namespace

Solver parse_solver(const std::string& name) {
  return parse_name(name, kSolvers, "solver", "solver");
}
ErrorNorm parse_error_norm(const std::string& name) {
  return parse_name(name, kErrorNorms, "error_norm", "error norm");
}
Quadrature parse_quadrature(const std::string& name) {
  return parse_name(name, kQuadratures, "quadrature", "quadrature");
}
Trace parse_trace(const std::string& name) {
  return parse_name(name, kTraces, "trace", "trace estimator");
}
ProbeNoise parse_probe_noise(const std::string& name) {
  return parse_name(name, kNoises, "noise", "probe distribution");
}
Dtype parse_dtype(const std::string& name) { return parse_name(name, kDtypes, "dtype", "dtype"); }
DrawBound parse_draw_bound(const std::string& name) {
  return parse_name(name, kBounds, "dequant_bound", "bound");
}

std::string to_string(Solver solver) { return name_of(solver, kSolvers); }
std::string to_string(ErrorNorm norm) { return name_of(norm, kErrorNorms); }
std::string to_string(Quadrature quadrature) { return name_of(quadrature, kQuadratures); }
std::string to_string(Trace trace) { return name_of(trace, kTraces); }
std::string to_string(ProbeNoise noise) { return name_of(noise, kNoises); }
std::string to_string(Dtype dtype) { return name_of(dtype, kDtypes); }
std::string to_string(DrawBound bound) { return name_of(bound, kBounds); }

bool is_adaptive(Solver solver) {
  return solver == Solver::kDopri5 || solver == Solver::kTsit5 || solver == Solver::kBosh3 ||
         solver == Solver::kRkf78;
}

Device parse_device(const std::string& name) {
  if (name == "cpu") return Device::cpu();
  if (name == "cuda") return Device::cuda();
  // cuda:N, N at most four decimal digits (an N beyond the devices there are is refused when a
  // model is loaded on it, with their number).
  const std::string prefix = "cuda:";
  if (name.starts_with(prefix) && name.size() > prefix.size() && name.size() <= prefix.size() + 4 &&
      name.find_first_not_of("0123456789", prefix.size()) == std::string::npos) {
    return Device::cuda(std::stoi(name.substr(prefix.size())));
  }
  throw InvalidArgument("device",
                        fmt::format("unknown device '{}' (valid: cpu, cuda, cuda:N)", name));
}

std::string to_string(const Device& device) {
  if (!device.is_cuda()) return "cpu";
  return device.index < 0 ? "cuda" : fmt::format("cuda:{}", device.index);
}

}  // namespace flowlik
