#include "likelihood/model/torchscript_network.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <utility>

#include "flowlik/error.h"
#include "likelihood/model/vector_jacobian.h"

namespace flowlik {
namespace {

std::string shape_string(c10::IntArrayRef sizes) {
  return fmt::format("[{}]", fmt::join(sizes, ", "));
}

}  // namespace

TorchScriptNetwork::TorchScriptNetwork(std::string path, torch::jit::Module module)
    : path_(std::move(path)), module_(std::move(module)) {
  for (const auto& parameter : module_.parameters()) {
    if (parameter_count_ == 0) parameter_dtype_ = c10::toString(parameter.scalar_type());
    parameter_count_ += parameter.numel();
  }
}

void TorchScriptNetwork::prepare(const CallSpec& call, torch::TensorOptions options) {
  call_ = call;
  const auto forward = module_.find_method("forward");
  if (!forward) throw ModelError(fmt::format("{}: module has no forward method", path_));
  const auto& arguments = forward->function().getSchema().arguments();
  // arguments[0] is self; a conditional model takes the label last.
  const size_t expected = call.conditional ? 3 : 2;
  if (arguments.size() != expected + 1) {
    const auto signature = to_string(call.signature);
    throw ModelError(fmt::format(
        "{}: forward takes {} arguments, expected {}: forward{} with x [B, *shape]{}{}", path_,
        arguments.size() - 1, expected,
        call.conditional ? signature.substr(0, signature.size() - 1) + ", y)" : signature,
        call.conditional ? " and labels y [B]" : "",
        call.conditioning_source.empty()
            ? std::string()
            : fmt::format(" (conditioning from {})", call.conditioning_source)));
  }
  for (size_t i = 1; i < arguments.size(); ++i) {
    if (arguments[i].type()->kind() != c10::TypeKind::TensorType) {
      throw ModelError(fmt::format("{}: forward argument '{}' has type {}, expected Tensor", path_,
                                   arguments[i].name(), arguments[i].type()->str()));
    }
  }
  module_.eval();
  module_.to(options.device(), options.dtype().toScalarType());
  // Gradients are taken with respect to x only.
  for (auto parameter : module_.parameters()) parameter.requires_grad_(false);
}

torch::Tensor TorchScriptNetwork::call(const torch::Tensor& x, const torch::Tensor& t,
                                       const torch::Tensor& labels, c10::IntArrayRef shape) const {
  const int64_t batch = x.size(0);
  std::vector<int64_t> batch_shape{batch};
  batch_shape.insert(batch_shape.end(), shape.begin(), shape.end());
  const auto input = x.view(batch_shape);
  // A scalar-time model takes one t for the whole batch; flowlik's batches share one time.
  const auto time = call_.time_input == TimeInput::kVector ? t : t.select(0, 0);
  std::vector<c10::IValue> inputs = call_.signature == Signature::kXT
                                        ? std::vector<c10::IValue>{input, time}
                                        : std::vector<c10::IValue>{time, input};
  if (call_.conditional) {
    TORCH_CHECK(labels.defined(), "a conditional model needs labels");
    inputs.emplace_back(labels);
  }
  const auto out = module_.forward(inputs);
  if (!out.isTensor()) {
    throw ModelError(
        fmt::format("{}: forward returns {}, expected a Tensor", path_, out.type()->str()));
  }
  const auto v = out.toTensor();
  if (!v.is_floating_point()) {
    throw ModelError(
        fmt::format("{}: forward returns a tensor of dtype {}, expected floating point", path_,
                    c10::toString(v.scalar_type())));
  }
  if (v.sizes() != c10::IntArrayRef(batch_shape)) {
    throw ModelError(
        fmt::format("{}: forward returns shape {} for input of shape {}, expected the same", path_,
                    shape_string(v.sizes()), shape_string(batch_shape)));
  }
  return v.reshape({batch, x.size(1)});
}

torch::Tensor TorchScriptNetwork::output(const torch::Tensor& x, const torch::Tensor& t,
                                         const torch::Tensor& labels, c10::IntArrayRef shape,
                                         int64_t /*block*/) const {
  torch::NoGradGuard no_grad;
  return call(x, t, labels, shape);
}

std::pair<torch::Tensor, torch::Tensor> TorchScriptNetwork::output_and_vjp(
    const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& probes,
    const torch::Tensor& labels, c10::IntArrayRef shape, int64_t /*block*/) const {
  const int64_t probe_count = probes.size(0);
  const int64_t batch = x.size(0);
  const int64_t dim = x.size(1);
  torch::AutoGradMode enable_grad(true);
  // Row k * B + b is sample b under probe k: one forward and one backward for all K probes.
  auto rows = x.detach().repeat({probe_count, 1}).requires_grad_(true);  // [K * B, D]
  const auto row_labels = labels.defined() ? labels.repeat({probe_count}) : labels;
  const auto out = call(rows, t.repeat({probe_count}), row_labels, shape);  // [K * B, D]
  const auto vjp = vector_jacobian_product(out, rows, probes.reshape({probe_count * batch, dim}));
  return {out.detach().narrow(0, 0, batch), vjp.view({probe_count, batch, dim})};
}

std::pair<torch::Tensor, torch::Tensor> TorchScriptNetwork::output_and_diagonal(
    const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& idx,
    const torch::Tensor& labels, c10::IntArrayRef shape, int64_t /*block*/) const {
  const int64_t batch = x.size(0);
  const int64_t count = idx.size(0);
  const int64_t dim = x.size(1);
  torch::AutoGradMode enable_grad(true);
  // Row b * C + c is sample b, probing dimension idx[c]: the forward is repeated C times per sample
  // (a TorchScript module cannot batch the vector-Jacobian products of one forward), one backward
  // for all.
  auto rows = x.detach().repeat_interleave(count, 0).requires_grad_(true);  // [B * C, D]
  const auto row_labels = labels.defined() ? labels.repeat_interleave(count, 0) : labels;
  const auto out = call(rows, t.repeat_interleave(count, 0), row_labels, shape);  // [B * C, D]
  const auto directions =
      torch::one_hot(idx, dim).to(x.options()).repeat({batch, 1});  // [B * C, D]
  const auto vjp = vector_jacobian_product(out, rows, directions).view({batch, count, dim});
  const auto diagonal =
      vjp.gather(2, idx.view({1, count, 1}).expand({batch, count, 1})).squeeze(2);  // [B, C]
  return {out.detach().view({batch, count, dim}).select(1, 0), diagonal};
}

}  // namespace flowlik
