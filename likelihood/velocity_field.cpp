#include "likelihood/velocity_field.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <utility>

#include "likelihood/error.h"

namespace flowlik {
namespace {

// Torch's messages run over many lines (with C++ stack traces); a flowlik error is one line.
std::string first_line(const std::string& message) {
  const auto end = message.find('\n');
  return message.substr(0, end);
}

std::string shape_string(c10::IntArrayRef sizes) { return fmt::format("[{}]", fmt::join(sizes, ", ")); }

}  // namespace

VelocityField::VelocityField(std::string path, torch::jit::Module module, torch::ScalarType dtype)
    : path_(std::move(path)), module_(std::move(module)), dtype_(dtype) {}

VelocityField VelocityField::load(const std::string& path, torch::ScalarType dtype) {
  torch::jit::Module module;
  try {
    module = torch::jit::load(path, torch::kCPU);
  } catch (const std::exception& e) {
    throw ModelError(fmt::format("{}: cannot load as a TorchScript module ({})", path,
                                 first_line(e.what())));
  }
  const auto forward = module.find_method("forward");
  if (!forward) throw ModelError(fmt::format("{}: module has no forward method", path));
  const auto& arguments = forward->function().getSchema().arguments();
  // arguments[0] is self.
  if (arguments.size() != 3) {
    throw ModelError(fmt::format(
        "{}: forward takes {} arguments, expected 2: forward(x, t) with x [B, *shape] and t [B]", path,
        arguments.size() - 1));
  }
  for (size_t i = 1; i < arguments.size(); ++i) {
    if (arguments[i].type()->kind() != c10::TypeKind::TensorType) {
      throw ModelError(fmt::format("{}: forward argument '{}' has type {}, expected Tensor", path,
                                   arguments[i].name(), arguments[i].type()->str()));
    }
  }
  module.eval();
  module.to(dtype);
  int64_t count = 0;
  for (auto parameter : module.parameters()) {
    parameter.requires_grad_(false);
    count += parameter.numel();
  }
  VelocityField field(path, std::move(module), dtype);
  field.parameter_count_ = count;
  return field;
}

void VelocityField::bind_shape(const std::vector<int64_t>& shape) {
  constexpr int64_t kProbeBatch = 2;
  std::vector<int64_t> batch_shape{kProbeBatch};
  batch_shape.insert(batch_shape.end(), shape.begin(), shape.end());
  const auto options = torch::TensorOptions().dtype(dtype_);
  c10::IValue out;
  try {
    torch::NoGradGuard no_grad;
    out = module_.forward({torch::zeros(batch_shape, options), torch::full({kProbeBatch}, 0.5, options)});
  } catch (const std::exception& e) {
    throw DataError(fmt::format("{}: forward fails on data of shape {} ({})", path_,
                                shape_string(shape), first_line(e.what())));
  }
  if (!out.isTensor()) {
    throw ModelError(fmt::format("{}: forward returns {}, expected a Tensor (the velocity)", path_,
                                 out.type()->str()));
  }
  const auto v = out.toTensor();
  if (!v.is_floating_point()) {
    throw ModelError(fmt::format("{}: forward returns a tensor of dtype {}, expected floating point",
                                 path_, c10::toString(v.scalar_type())));
  }
  if (v.sizes() != c10::IntArrayRef(batch_shape)) {
    throw ModelError(fmt::format("{}: forward returns shape {} for input of shape {}, expected the same",
                                 path_, shape_string(v.sizes()), shape_string(batch_shape)));
  }
  shape_ = shape;
  dim_ = 1;
  for (const auto s : shape) dim_ *= s;
}

torch::Tensor VelocityField::evaluate(const torch::Tensor& x, const torch::Tensor& t) const {
  std::vector<int64_t> batch_shape{x.size(0)};
  batch_shape.insert(batch_shape.end(), shape_.begin(), shape_.end());
  auto v = module_.forward({x.view(batch_shape), t}).toTensor();
  return v.reshape({x.size(0), dim_});
}

}  // namespace flowlik
