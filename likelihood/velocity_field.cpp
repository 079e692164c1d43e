#include "likelihood/velocity_field.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <filesystem>
#include <fstream>
#include <utility>

#include "likelihood/error.h"
#include "likelihood/torch_error.h"

namespace flowlik {
namespace {

constexpr const char* kManifestName = "flowlik.json";

std::string first_line(const std::string& message) { return message.substr(0, message.find('\n')); }

std::string shape_string(c10::IntArrayRef sizes) { return fmt::format("[{}]", fmt::join(sizes, ", ")); }

nlohmann::json parse_manifest(const std::string& text, const std::string& where) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw ModelError(fmt::format("{}: manifest is not valid JSON ({})", where, first_line(e.what())));
  }
}

}  // namespace

ModelFile load_model_file(const std::string& path) {
  ModelFile file;
  file.path = path;
  torch::jit::ExtraFilesMap extra{{kManifestName, ""}};
  try {
    file.module = torch::jit::load(path, torch::kCPU, extra);
  } catch (const std::exception& e) {
    throw ModelError(
        fmt::format("{}: cannot load as a TorchScript module ({})", path, summarize_torch_error(e.what())));
  }
  const std::string side_path = path + ".json";
  std::optional<nlohmann::json> side;
  if (std::filesystem::exists(side_path)) {
    std::ifstream in(side_path);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    side = parse_manifest(text, side_path);
  }
  if (!extra[kManifestName].empty()) {
    file.manifest = parse_manifest(extra[kManifestName], path + " (embedded flowlik.json)");
    file.manifest_source = "manifest (embedded)";
    if (side && *side != *file.manifest) {
      throw ModelError(fmt::format("{}: differs from the manifest embedded in {}; keep one of them",
                                   side_path, path));
    }
  } else if (side) {
    file.manifest = side;
    file.manifest_source = fmt::format("manifest ({})", side_path);
  }
  return file;
}

std::pair<ModelFile, Contract> load_model_with_contract(const std::string& path,
                                                        const ContractOptions& options) {
  auto file = load_model_file(path);
  auto contract = resolve_contract(file.manifest ? &*file.manifest : nullptr, file.manifest_source, options);
  return {std::move(file), std::move(contract)};
}

VelocityField::VelocityField(ModelFile file, Contract contract, torch::TensorOptions options)
    : path_(std::move(file.path)), module_(std::move(file.module)), contract_(std::move(contract)),
      options_(options) {
  const auto forward = module_.find_method("forward");
  if (!forward) throw ModelError(fmt::format("{}: module has no forward method", path_));
  const auto& arguments = forward->function().getSchema().arguments();
  // arguments[0] is self; a conditional model takes the label last.
  const size_t expected = contract_.conditional ? 3 : 2;
  if (arguments.size() != expected + 1) {
    const auto signature = to_string(contract_.signature);
    throw ModelError(fmt::format(
        "{}: forward takes {} arguments, expected {}: forward{} with x [B, *shape]{} (conditioning from {})",
        path_, arguments.size() - 1, expected,
        contract_.conditional ? signature.substr(0, signature.size() - 1) + ", y)" : signature,
        contract_.conditional ? " and labels y [B]" : "", contract_.sources.at("conditioning")));
  }
  for (size_t i = 1; i < arguments.size(); ++i) {
    if (arguments[i].type()->kind() != c10::TypeKind::TensorType) {
      throw ModelError(fmt::format("{}: forward argument '{}' has type {}, expected Tensor", path_,
                                   arguments[i].name(), arguments[i].type()->str()));
    }
  }
  module_.eval();
  for (auto parameter : module_.parameters()) {
    if (parameter_count_ == 0) parameter_dtype_ = c10::toString(parameter.scalar_type());
    parameter_count_ += parameter.numel();
  }
  module_.to(options_.device(), options_.dtype().toScalarType());
  for (auto parameter : module_.parameters()) parameter.requires_grad_(false);
}

VelocityField VelocityField::load(const std::string& path, torch::ScalarType dtype) {
  auto file = load_model_file(path);
  auto contract = resolve_contract(nullptr, "", ContractOptions{});
  return VelocityField(std::move(file), std::move(contract), torch::TensorOptions().dtype(dtype));
}

void VelocityField::bind_shape(const std::vector<int64_t>& shape) {
  if (contract_.shape && *contract_.shape != shape) {
    throw DataError(fmt::format("{}: data have per-sample shape {}, the model's contract declares {} ({})",
                                path_, shape_string(shape), shape_string(*contract_.shape),
                                contract_.sources.at("shape")));
  }
  constexpr int64_t kProbeBatch = 2;
  std::vector<int64_t> batch_shape{kProbeBatch};
  batch_shape.insert(batch_shape.end(), shape.begin(), shape.end());
  shape_ = shape;
  dim_ = 1;
  for (const auto s : shape) dim_ *= s;
  c10::IValue out;
  try {
    torch::NoGradGuard no_grad;
    out = call_forward(torch::zeros(batch_shape, options_), 0.5,
                       contract_.conditional
                           ? torch::zeros({kProbeBatch}, options_.dtype(torch::kInt64))
                           : torch::Tensor());
  } catch (const std::exception& e) {
    shape_.clear();
    throw DataError(fmt::format("{}: forward fails on data of shape {} ({})", path_, shape_string(shape),
                                summarize_torch_error(e.what())));
  }
  if (!out.isTensor()) {
    throw ModelError(fmt::format("{}: forward returns {}, expected a Tensor (the {})", path_,
                                 out.type()->str(), to_string(contract_.parameterization)));
  }
  const auto v = out.toTensor();
  if (!v.is_floating_point()) {
    throw ModelError(fmt::format("{}: forward returns a tensor of dtype {}, expected floating point", path_,
                                 c10::toString(v.scalar_type())));
  }
  if (v.sizes() != c10::IntArrayRef(batch_shape)) {
    throw ModelError(fmt::format("{}: forward returns shape {} for input of shape {}, expected the same",
                                 path_, shape_string(v.sizes()), shape_string(batch_shape)));
  }
}

c10::IValue VelocityField::call_forward(const torch::Tensor& x, double t,
                                       const torch::Tensor& labels) const {
  const double model_time = contract_.time == TimeConvention::kFlow ? t : 1.0 - t;
  const auto options = x.options().requires_grad(false);
  const auto time = contract_.time_input == TimeInput::kVector ? torch::full({x.size(0)}, model_time, options)
                                                               : torch::scalar_tensor(model_time, options);
  std::vector<c10::IValue> inputs = contract_.signature == Signature::kXT
                                        ? std::vector<c10::IValue>{x, time}
                                        : std::vector<c10::IValue>{time, x};
  if (contract_.conditional) {
    TORCH_CHECK(labels.defined(), "a conditional model needs labels");
    inputs.emplace_back(labels);
  }
  return module_.forward(inputs);
}

torch::Tensor VelocityField::network_output(const torch::Tensor& x, double t,
                                           const torch::Tensor& labels) const {
  const int64_t batch = x.size(0);
  std::vector<int64_t> batch_shape{batch};
  batch_shape.insert(batch_shape.end(), shape_.begin(), shape_.end());
  return call_forward(x.view(batch_shape), t, labels).toTensor().reshape({batch, dim_});
}

torch::Tensor VelocityField::evaluate(const torch::Tensor& x, double t, const torch::Tensor& labels) const {
  const auto out = network_output(x, t, labels);
  if (contract_.parameterization == Parameterization::kVelocity) {
    // A diffusion-time velocity is dx/ds with s = 1 - t: dx/dt = -dx/ds.
    return contract_.time == TimeConvention::kFlow ? out : -out;
  }
  // shared/MATH.md section 4, the table of the four parameterizations.
  const auto k = path_coefficients(*contract_.schedule, t);
  switch (contract_.parameterization) {
    case Parameterization::kData:
      return (k.sigma_dot / k.sigma) * x + (k.alpha_dot - k.sigma_dot * k.alpha / k.sigma) * out;
    case Parameterization::kNoise:
      return (k.alpha_dot / k.alpha) * x + (k.sigma_dot - k.sigma * k.alpha_dot / k.alpha) * out;
    case Parameterization::kScore:
      return (k.alpha_dot / k.alpha) * x +
             (k.sigma * k.sigma * k.alpha_dot / k.alpha - k.sigma * k.sigma_dot) * out;
    case Parameterization::kV: {
      // v = alpha E - sigma D and x = alpha D + sigma E with alpha^2 + sigma^2 = 1 give E = sigma x + alpha v.
      const auto noise = k.sigma * x + k.alpha * out;
      return (k.alpha_dot / k.alpha) * x + (k.sigma_dot - k.sigma * k.alpha_dot / k.alpha) * noise;
    }
    case Parameterization::kVelocity:
      break;
  }
  return out;
}

}  // namespace flowlik
