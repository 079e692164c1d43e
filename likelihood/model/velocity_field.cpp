#include "likelihood/model/velocity_field.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/script.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <utility>

#include "flowlik/error.h"
#include "io/json_depth.h"
#include "likelihood/model/aoti_network.h"
#include "likelihood/model/model_archive.h"
#include "likelihood/model/schedule.h"
#include "likelihood/model/torch_error.h"
#include "likelihood/model/torchscript_network.h"

namespace flowlik {
namespace {

constexpr const char* kManifestName = "flowlik.json";

std::string first_line(const std::string& message) { return message.substr(0, message.find('\n')); }

std::string shape_string(c10::IntArrayRef sizes) {
  return fmt::format("[{}]", fmt::join(sizes, ", "));
}

// A manifest is a few hundred bytes; these bounds keep a hostile one from exhausting the stack
// (nested values are parsed and compared recursively) or the memory, and keep messages that quote
// it short.
constexpr size_t kMaxManifestBytes = 1 << 20;

}  // namespace

nlohmann::json parse_model_json(const std::string& text, const std::string& where,
                                const std::string& what) {
  if (text.size() > kMaxManifestBytes) {
    throw ModelError(fmt::format("{}: {} is {} bytes, more than the {} it may have", where, what,
                                 text.size(), kMaxManifestBytes));
  }
  if (json_nesting_depth(text) > kMaxJsonDepth) {
    throw ModelError(fmt::format("{}: {} nests arrays or objects deeper than {} levels", where,
                                 what, kMaxJsonDepth));
  }
  try {
    return nlohmann::json::parse(text);
  } catch (
      const nlohmann::json::exception& e) {  // parse errors, and numbers out of a double's range
    throw ModelError(
        fmt::format("{}: {} is not valid JSON ({})", where, what, first_line(e.what())));
  }
}

nlohmann::json parse_manifest(const std::string& text, const std::string& where) {
  return parse_model_json(text, where, "manifest");
}

namespace {

// A model file's format, from its contents: both formats are zip archives written by PyTorch's
// stream writer; an AOTInductor package says "pt2" in archive_format and keeps its compiled
// functions under data/aotinductor/<name>/, an ExportedProgram saved by torch.export.save keeps
// models/ instead, and a TorchScript module has data.pkl and code/.
std::unique_ptr<Network> load_aoti_package(std::shared_ptr<const ModelArchive> archive,
                                           std::string& embedded_manifest) {
  const auto& path = archive->path();
  AotiPackageInfo info;
  const std::string prefix = "data/aotinductor/";
  for (const auto& member : archive->members()) {
    const auto& r = member.record;
    if (!r.starts_with(prefix)) continue;
    const auto name = r.substr(prefix.size(), r.find('/', prefix.size()) - prefix.size());
    if (!name.empty() &&
        std::find(info.models.begin(), info.models.end(), name) == info.models.end()) {
      info.models.push_back(name);
    }
  }
  if (info.models.empty()) {
    const bool exported_program =
        std::any_of(archive->members().begin(), archive->members().end(),
                    [](const ArchiveMember& m) { return m.record.starts_with("models/"); });
    throw ModelError(fmt::format(
        "{}: {}; flowlik runs AOTInductor packages: export the model with "
        "flowlik_export.export(model, "
        "path, contract, example_x, format=\"pt2\"), which compiles the velocity and its Jacobian "
        "products",
        path,
        exported_program
            ? "is a torch.export.save archive (an ExportedProgram), not an AOTInductor package"
            : "is a .pt2 archive with no compiled model in it"));
  }
  std::sort(info.models.begin(), info.models.end());
  info.metadata = read_package_metadata(*archive, info.models.front());
  if (const auto it = info.metadata.find(kManifestName); it != info.metadata.end())
    embedded_manifest = it->second;
  info.archive = std::move(archive);
  return std::make_unique<AotiPackageNetwork>(path, std::move(info));
}

std::unique_ptr<Network> load_torchscript(const std::string& path, std::string& embedded_manifest) {
  torch::jit::ExtraFilesMap extra{{kManifestName, ""}};
  torch::jit::Module module;
  try {
    module = torch::jit::load(path, torch::kCPU, extra);
  } catch (const std::exception& e) {
    throw ModelError(fmt::format("{}: cannot load as a TorchScript module ({})", path,
                                 summarize_torch_error(e.what())));
  }
  embedded_manifest = extra[kManifestName];
  return std::make_unique<TorchScriptNetwork>(path, std::move(module));
}

}  // namespace

ModelFile load_model_file(const std::string& path) {
  ModelFile file;
  file.path = path;
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (!std::filesystem::exists(status))
    throw ModelError(fmt::format("{}: cannot load: no such file", path));
  if (!std::filesystem::is_regular_file(status)) {
    throw ModelError(fmt::format("{}: cannot load: not a regular file", path));
  }
  // Every member's name and size is checked before anything in the archive is read (a package is
  // untrusted input: likelihood/model/model_archive.h).
  auto archive = std::make_shared<const ModelArchive>(path);
  std::string embedded;
  if (archive->has("archive_format")) {
    const auto kind = archive->read("archive_format");
    if (kind.rfind("pt2", 0) != 0) {
      throw ModelError(
          fmt::format("{}: cannot load: an archive of format '{}', expected a TorchScript module "
                      "or an AOTInductor package (pt2)",
                      path, kind.substr(0, 40)));
    }
    file.network = load_aoti_package(std::move(archive), embedded);
  } else {
    archive.reset();
    file.network = load_torchscript(path, embedded);
  }

  const std::string side_path = path + ".json";
  std::optional<nlohmann::json> side;
  const auto side_status = std::filesystem::status(side_path, ec);
  if (std::filesystem::exists(side_status)) {
    // Never open a FIFO (it would block) or a directory; a manifest is a regular file.
    if (!std::filesystem::is_regular_file(side_status)) {
      throw ModelError(fmt::format("{}: side manifest is not a regular file", side_path));
    }
    if (std::filesystem::file_size(side_path, ec) > kMaxManifestBytes) {
      throw ModelError(fmt::format("{}: manifest is larger than the {} bytes a manifest may have",
                                   side_path, kMaxManifestBytes));
    }
    std::ifstream in(side_path, std::ios::binary);
    if (!in) throw ModelError(fmt::format("{}: cannot read side manifest", side_path));
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    side = parse_manifest(text, side_path);
  }
  if (!embedded.empty()) {
    file.manifest = parse_manifest(embedded, path + " (embedded flowlik.json)");
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
  auto contract =
      resolve_contract(file.manifest ? &*file.manifest : nullptr, file.manifest_source, options);
  return {std::move(file), std::move(contract)};
}

VelocityField::VelocityField(ModelFile file, Contract contract, torch::TensorOptions options)
    : path_(std::move(file.path)), network_(), contract_(std::move(contract)), options_(options) {
  CallSpec call;
  call.signature = contract_.signature;
  call.time_input = contract_.time_input;
  call.conditional = contract_.conditional;
  call.conditioning_source = contract_.sources.at("conditioning");
  file.network->prepare(call, options_);
  network_ = std::move(file.network);
}

VelocityField VelocityField::load(const std::string& path, torch::ScalarType dtype) {
  auto file = load_model_file(path);
  auto contract = resolve_contract(nullptr, "", ContractOptions{});
  return VelocityField(std::move(file), std::move(contract), torch::TensorOptions().dtype(dtype));
}

namespace {

// `shape` without its dimensions of size 1: [1, 8, 8] and [8, 8] hold the same values in the same
// order.
std::vector<int64_t> without_ones(const std::vector<int64_t>& shape) {
  std::vector<int64_t> kept;
  for (const auto s : shape) {
    if (s != 1) kept.push_back(s);
  }
  return kept;
}

}  // namespace

std::vector<int64_t> VelocityField::blocks() const {
  auto compiled = network_->blocks();
  if (!compiled.empty()) return compiled;
  constexpr int64_t kValuesPerCall = 8192;
  constexpr int64_t kMaxBlock = 32;
  int64_t block = 1;
  while (block < kMaxBlock && block * dim_ < kValuesPerCall) block *= 2;
  std::vector<int64_t> any;
  for (; block >= 1; block /= 2) any.push_back(block);
  return any;
}

void VelocityField::fit_rows_per_call(int64_t rows) { rows_per_call_ = run_block(blocks(), rows); }

int64_t run_block(const std::vector<int64_t>& blocks, int64_t rows) {
  if (blocks.empty()) throw std::logic_error("run_block: no blocks");
  if (4 * rows > blocks.front()) return blocks.front();
  for (const auto block : blocks) {
    if (2 * rows > block) return block;
  }
  return blocks.back();
}

void VelocityField::bind_shape(const std::vector<int64_t>& data_shape) {
  // Data of the declared shape up to dimensions of size 1 (grey images [N, 8, 8] for a model of one
  // channel [1, 8, 8]) are given to the model in its own shape.
  const bool same = !contract_.shape || *contract_.shape == data_shape ||
                    without_ones(*contract_.shape) == without_ones(data_shape);
  if (!same) {
    throw DataError(fmt::format(
        "{}: data have per-sample shape {}, the model's contract declares {} ({})", path_,
        shape_string(data_shape), shape_string(*contract_.shape), contract_.sources.at("shape")));
  }
  const auto& shape = contract_.shape ? *contract_.shape : data_shape;
  constexpr int64_t kProbeBatch = 2;
  shape_ = shape;
  dim_ = 1;
  for (const auto s : shape) dim_ *= s;
  // Kept, not worked out on each call: every network call reads it.
  rows_per_call_ = blocks().front();
  try {
    const auto x = torch::zeros({kProbeBatch, dim_}, options_);
    const auto labels = contract_.conditional
                            ? torch::zeros({kProbeBatch}, options_.dtype(torch::kInt64))
                            : torch::Tensor();
    network_->output(x, model_time(x, torch::full({kProbeBatch}, 0.5, torch::kFloat64)), labels,
                     shape_, rows_per_call());
  } catch (const ModelError&) {
    shape_.clear();
    throw;
  } catch (const std::exception& e) {
    shape_.clear();
    const auto* torch_error = dynamic_cast<const c10::Error*>(&e);
    throw DataError(fmt::format(
        "{}: forward fails on data of shape {} ({})", path_, shape_string(shape),
        summarize_torch_error(torch_error ? torch_error->what_without_backtrace() : e.what())));
  }
}

torch::Tensor VelocityField::model_time(const torch::Tensor& x, const torch::Tensor& t) const {
  const auto time = contract_.time == TimeConvention::kFlow ? t : 1.0 - t;
  return time.to(x.options().requires_grad(false));
}

AffineVelocity VelocityField::affine_velocity(double t) const {
  if (contract_.parameterization == Parameterization::kVelocity) {
    // A diffusion-time velocity is dx/ds with s = 1 - t: dx/dt = -dx/ds.
    return {0.0, contract_.time == TimeConvention::kFlow ? 1.0 : -1.0};
  }
  // shared/MATH.md section 4, the table of the four parameterizations.
  const auto k = path_coefficients(*contract_.schedule, t);
  switch (contract_.parameterization) {
    case Parameterization::kData:
      return {k.sigma_dot / k.sigma, k.alpha_dot - k.sigma_dot * k.alpha / k.sigma};
    case Parameterization::kNoise:
      return {k.alpha_dot / k.alpha, k.sigma_dot - k.sigma * k.alpha_dot / k.alpha};
    case Parameterization::kScore:
      return {k.alpha_dot / k.alpha,
              k.sigma * k.sigma * k.alpha_dot / k.alpha - k.sigma * k.sigma_dot};
    case Parameterization::kV: {
      // v = alpha E - sigma D and x = alpha D + sigma E with alpha^2 + sigma^2 = 1 give E = sigma x
      // + alpha v; the velocity is then the noise form's (alpha'/alpha) x + c E with c = sigma' -
      // sigma alpha'/alpha.
      const double c = k.sigma_dot - k.sigma * k.alpha_dot / k.alpha;
      return {k.alpha_dot / k.alpha + c * k.sigma, c * k.alpha};
    }
    case Parameterization::kVelocity:
      break;
  }
  return {0.0, 1.0};
}

AffineVelocityRows VelocityField::affine_velocity(const torch::Tensor& t,
                                                  const torch::Tensor& x) const {
  const auto times = t.to(torch::kFloat64).contiguous();
  const auto rows = times.size(0);
  auto a = torch::empty({rows, 1}, torch::kFloat64);
  auto b = torch::empty({rows, 1}, torch::kFloat64);
  const auto* tp = times.data_ptr<double>();
  auto* ap = a.data_ptr<double>();
  auto* bp = b.data_ptr<double>();
  bool a_is_zero = true;
  for (int64_t i = 0; i < rows; ++i) {
    const auto f = affine_velocity(tp[i]);
    ap[i] = f.a;
    bp[i] = f.b;
    a_is_zero = a_is_zero && f.a == 0.0;
  }
  const auto options = x.options().requires_grad(false);
  return {a.to(options), b.to(options), a_is_zero};
}

std::vector<torch::Tensor> VelocityField::call_by_time(
    const torch::Tensor& t, const std::vector<int64_t>& batch_dims,
    const std::function<std::vector<torch::Tensor>(const torch::Tensor& rows)>& call) const {
  // What the network throws is the model's failure on these inputs (a TorchScript `raise`, a native
  // op's error, an AOTInductor run failing), raised as one kind so that a solve can fail just those
  // samples.
  const auto guarded = [&](const torch::Tensor& rows) {
    try {
      return call(rows);
    } catch (const std::exception& e) {
      const auto* native = dynamic_cast<const c10::Error*>(&e);
      throw IntegrationError(
          "model evaluation failed (" +
          summarize_torch_error(native ? native->what_without_backtrace() : e.what()) + ")");
    }
  };
  const auto times = t.to(torch::kFloat64);
  if (contract_.time_input == TimeInput::kVector || times.numel() == 0 ||
      (times == times[0]).all().item<bool>()) {
    return guarded(torch::Tensor());
  }
  // A scalar-time model takes one time per call: one call per distinct time, results put back in
  // order.
  const auto distinct = std::get<0>(torch::_unique2(times, /*sorted=*/true));
  std::vector<torch::Tensor> results;
  for (int64_t i = 0; i < distinct.size(0); ++i) {
    const auto rows = (times == distinct[i]).nonzero().view({-1});
    auto part = guarded(rows);
    if (results.empty()) {
      for (size_t j = 0; j < part.size(); ++j) {
        auto sizes = part[j].sizes().vec();
        sizes[batch_dims[j]] = times.size(0);
        results.push_back(torch::empty(sizes, part[j].options()));
      }
    }
    for (size_t j = 0; j < part.size(); ++j) {
      results[j].index_copy_(batch_dims[j], rows.to(part[j].device()), part[j]);
    }
  }
  return results;
}

namespace {
// The rows of a batch-first tensor (or of dimension `dim`), all of them when `rows` is undefined.
torch::Tensor rows_of(const torch::Tensor& value, const torch::Tensor& rows, int64_t dim = 0) {
  if (!rows.defined() || !value.defined()) return value;
  return value.index_select(dim, rows.to(value.device()));
}
}  // namespace

torch::Tensor VelocityField::evaluate(const torch::Tensor& x, const torch::Tensor& t,
                                      const torch::Tensor& labels) const {
  const auto f = affine_velocity(t, x);
  const auto out = call_by_time(t, {0}, [&](const torch::Tensor& rows) {
    const auto xr = rows_of(x, rows);
    return std::vector<torch::Tensor>{network_->output(
        xr, model_time(xr, rows_of(t, rows)), rows_of(labels, rows), shape_, rows_per_call())};
  })[0];
  return f.a_is_zero ? f.b * out : f.a * x.detach() + f.b * out;
}

std::pair<torch::Tensor, torch::Tensor> VelocityField::velocity_and_vjp(
    const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& probes,
    const torch::Tensor& labels) const {
  const auto f = affine_velocity(t, x);
  const auto parts = call_by_time(t, {0, 1}, [&](const torch::Tensor& rows) {
    const auto xr = rows_of(x, rows);
    auto [out, vjp] =
        network_->output_and_vjp(xr, model_time(xr, rows_of(t, rows)), rows_of(probes, rows, 1),
                                 rows_of(labels, rows), shape_, rows_per_call());
    return std::vector<torch::Tensor>{out, vjp};
  });
  const auto& out = parts[0];  // [B, D]
  const auto& vjp = parts[1];  // [K, B, D]
  if (f.a_is_zero) return {f.b * out, f.b * vjp};
  return {f.a * x.detach() + f.b * out, f.a * probes + f.b * vjp};
}

std::pair<torch::Tensor, torch::Tensor> VelocityField::velocity_and_diagonal(
    const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& idx,
    const torch::Tensor& labels) const {
  const auto f = affine_velocity(t, x);
  const auto parts = call_by_time(t, {0, 0}, [&](const torch::Tensor& rows) {
    const auto xr = rows_of(x, rows);
    auto [out, diagonal] = network_->output_and_diagonal(
        xr, model_time(xr, rows_of(t, rows)), idx, rows_of(labels, rows), shape_, rows_per_call());
    return std::vector<torch::Tensor>{out, diagonal};
  });
  const auto& out = parts[0];       // [B, D]
  const auto& diagonal = parts[1];  // [B, C]
  if (f.a_is_zero) return {f.b * out, f.b * diagonal};
  return {f.a * x.detach() + f.b * out, f.a + f.b * diagonal};
}

namespace {
torch::Tensor same_time(const torch::Tensor& x, double t) {
  return torch::full({x.size(0)}, t, torch::kFloat64);
}
}  // namespace

torch::Tensor VelocityField::evaluate(const torch::Tensor& x, double t,
                                      const torch::Tensor& labels) const {
  return evaluate(x, same_time(x, t), labels);
}

std::pair<torch::Tensor, torch::Tensor> VelocityField::velocity_and_vjp(
    const torch::Tensor& x, double t, const torch::Tensor& probes,
    const torch::Tensor& labels) const {
  return velocity_and_vjp(x, same_time(x, t), probes, labels);
}

std::pair<torch::Tensor, torch::Tensor> VelocityField::velocity_and_diagonal(
    const torch::Tensor& x, double t, const torch::Tensor& idx, const torch::Tensor& labels) const {
  return velocity_and_diagonal(x, same_time(x, t), idx, labels);
}

}  // namespace flowlik
