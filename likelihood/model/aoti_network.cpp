#include "likelihood/model/aoti_network.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/utsname.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <utility>

#include "flowlik/error.h"
#include "flowlik/text_number.h"
#include "likelihood/model/device.h"
#include "likelihood/model/torch_error.h"
#include "likelihood/model/velocity_field.h"

namespace flowlik {
namespace {

// The package format this flowlik reads (pt2.py's FORMAT_VERSION), and the largest block or probe
// count it takes from a package's metadata.
constexpr const char* kPackageFormat = "2";
constexpr int64_t kMaxCompiledSize = 4096;

std::string metadata_value(const AotiPackageInfo& info, const std::string& key) {
  const auto it = info.metadata.find(key);
  return it == info.metadata.end() ? std::string() : it->second;
}

// "2.15.0+cu132" -> "2.15.0": a local build suffix (CUDA or CPU wheel) does not change the ABI the
// package's code was compiled against.
std::string public_version(const std::string& version) {
  return version.substr(0, version.find('+'));
}

// The CPU's feature flags, from /proc/cpuinfo (Linux names: avx2, avx512f, avx512_vnni, amx_tile).
std::set<std::string> cpu_flags() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  std::set<std::string> flags;
  while (std::getline(in, line)) {
    if (!line.starts_with("flags")) continue;
    std::istringstream words(line.substr(line.find(':') + 1));
    std::string flag;
    while (words >> flag) flags.insert(flag);
    break;
  }
  return flags;
}

}  // namespace

std::unordered_map<std::string, std::string> read_package_metadata(const ModelArchive& archive,
                                                                   const std::string& model) {
  const std::string folder = "data/aotinductor/" + model + "/";
  std::string record;
  for (const auto& m : archive.members()) {
    if (!m.record.starts_with(folder) || !m.record.ends_with("_metadata.json")) continue;
    // The loader reads the wrapper's (the compiled function's); the kernels' file repeats it.
    if (record.empty() || m.record.ends_with("wrapper_metadata.json")) record = m.record;
  }
  if (record.empty()) {
    throw ModelError(fmt::format("{}: package metadata: no {}*_metadata.json member for '{}'",
                                 archive.path(), folder, model));
  }
  const auto what = fmt::format("package metadata ({}/{})", archive.root(), record);
  const auto json = parse_model_json(archive.read(record), archive.path(), what);
  const auto where = fmt::format("{}: {}", archive.path(), what);
  if (!json.is_object()) throw ModelError(fmt::format("{} is not a JSON object", where));
  std::unordered_map<std::string, std::string> metadata;
  for (const auto& [key, value] : json.items()) {
    if (!value.is_string()) {
      throw ModelError(fmt::format("{}: key '{}' is not a string", where, key.substr(0, 80)));
    }
    metadata[key] = value.get<std::string>();
  }
  return metadata;
}

std::string missing_cpu_features(const std::string& machine, const std::string& isa) {
  struct utsname name {};
  const std::string here = ::uname(&name) == 0 ? name.machine : "";
  if (!machine.empty() && !here.empty() && machine != here)
    return fmt::format("a {} processor (this one is {})", machine, here);
  // AOTInductor's vector ISAs (torch/_inductor/cpu_vec_isa.py) and the compiler flags each is built
  // with, as the Linux CPU flags that name them.
  static const std::map<std::string, std::vector<std::string>> kNeeds = {
      {"AVX2", {"avx2", "fma", "f16c"}},
      {"AVX512", {"avx512f", "avx512dq", "avx512vl", "avx512bw", "fma"}},
      {"AVX512_VNNI", {"avx512_vnni"}},
      {"AMX_TILE", {"amx_tile", "amx_bf16", "amx_int8"}},
      // The x86-64 levels a package exported with cpu="x86-64-v3" or "x86-64-v4" is compiled for
      // (g++ -march=...; the Linux names: abm is LZCNT).
      {"x86-64-v3", {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"}},
      {"x86-64-v4",
       {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave", "avx512f",
        "avx512bw", "avx512cd", "avx512dq", "avx512vl"}}};
  const auto flags = cpu_flags();
  if (flags.empty()) return {};  // not Linux on x86: nothing to check against
  std::vector<std::string> missing;
  std::istringstream words(isa);
  std::string word;
  while (words >> word) {
    const auto it = kNeeds.find(word);
    if (it == kNeeds.end()) continue;  // another architecture's ISA is refused by the machine check
    for (const auto& flag : it->second) {
      if (!flags.contains(flag)) missing.push_back(flag);
    }
  }
  if (missing.empty()) return {};
  return fmt::format("the CPU instruction set {} (this CPU lacks {})", isa,
                     fmt::join(missing, ", "));
}

AotiPackageNetwork::AotiPackageNetwork(std::string path, AotiPackageInfo info)
    : path_(std::move(path)), info_(std::move(info)) {
  if (const auto count = parse_int64(metadata_value(info_, "flowlik.parameters")))
    parameter_count_ = *count;
  if (const auto dtype = metadata_value(info_, "flowlik.parameter_dtype"); !dtype.empty())
    parameter_dtype_ = dtype;
}

void AotiPackageNetwork::prepare(const CallSpec& call, torch::TensorOptions options) {
  call_ = call;
  options_ = options;
  const auto dtype =
      options.dtype() == torch::kFloat64 ? std::string("float64") : std::string("float32");
  const auto format = metadata_value(info_, "flowlik.format");
  if (format != kPackageFormat) {
    throw ModelError(fmt::format(
        "{}: package format '{}' (flowlik.format) is not the format this flowlik reads ({}): "
        "re-export it with this version's flowlik_export.export(..., format=\"pt2\")",
        path_, format.substr(0, 40), kPackageFormat));
  }
  const auto functions = split_on_commas(metadata_value(info_, "flowlik.functions"));
  for (const char* needed : {"velocity", "vjp"}) {
    if (std::find(functions.begin(), functions.end(), needed) == functions.end()) {
      throw ModelError(
          fmt::format("{}: package has no compiled '{}' function (it has: {}); flowlik needs "
                      "velocity and vjp: "
                      "export it with flowlik_export.export(..., format=\"pt2\")",
                      path_, needed, fmt::join(functions, ", ")));
    }
  }
  const auto block = parse_int64(metadata_value(info_, "flowlik.block"));
  if (!block || *block < 1 || *block > kMaxCompiledSize) {
    throw ModelError(
        fmt::format("{}: package metadata flowlik.block '{}' is not a row count from 1 to {}",
                    path_, metadata_value(info_, "flowlik.block").substr(0, 40), kMaxCompiledSize));
  }
  // flowlik.blocks: every block, the largest (flowlik.block) first; absent before it existed.
  std::vector<int64_t> block_sizes = {*block};
  if (const auto listed = metadata_value(info_, "flowlik.blocks"); !listed.empty()) {
    block_sizes.clear();
    for (const auto& text : split_on_commas(listed)) {
      const auto b = parse_int64(text);
      if (!b || *b < 1 || *b > kMaxCompiledSize ||
          (block_sizes.empty() ? *b != *block : *b >= block_sizes.back())) {
        throw ModelError(fmt::format(
            "{}: package metadata flowlik.blocks '{}' is not a list of row counts from 1 to {}, "
            "decreasing from flowlik.block ({})",
            path_, listed.substr(0, 40), kMaxCompiledSize, *block));
      }
      block_sizes.push_back(*b);
    }
  }
  std::vector<int64_t> probe_counts;
  for (const auto& text : split_on_commas(metadata_value(info_, "flowlik.probes"))) {
    const auto k = parse_int64(text);
    if (!k || *k < 1 || *k > kMaxCompiledSize) {
      throw ModelError(fmt::format(
          "{}: package metadata flowlik.probes '{}' is not a list of probe counts from 1 to {}",
          path_, metadata_value(info_, "flowlik.probes").substr(0, 40), kMaxCompiledSize));
    }
    probe_counts.push_back(*k);
  }
  if (probe_counts.empty()) {
    throw ModelError(
        fmt::format("{}: package metadata flowlik.probes names no compiled vjp", path_));
  }
  std::sort(probe_counts.begin(), probe_counts.end());
  probe_counts.erase(std::unique(probe_counts.begin(), probe_counts.end()), probe_counts.end());
  std::vector<std::string> dtypes;
  for (const auto& m : info_.models) {
    // velocity_<dtype>; velocity_b<rows>_<dtype> is another block's.
    if (m.starts_with("velocity_") && !m.starts_with("velocity_b")) dtypes.push_back(m.substr(9));
  }
  if (std::find(dtypes.begin(), dtypes.end(), dtype) == dtypes.end()) {
    throw ModelError(
        fmt::format("{}: package is compiled for {} only, not dtype {}; re-export with "
                    "flowlik_export.export(..., dtypes=(\"{}\",))",
                    path_, fmt::join(dtypes, ", "), dtype, dtype));
  }
  const auto package_device = metadata_value(info_, "flowlik.device");
  const auto wanted = options.device().is_cuda() ? std::string("cuda") : std::string("cpu");
  if (!package_device.empty() && package_device != wanted) {
    throw ModelError(
        fmt::format("{}: package is compiled for {}, not device {}; re-export it with "
                    "flowlik_export.export(..., device=\"{}\") on a machine with that device",
                    path_, package_device, wanted, wanted));
  }
  if (wanted == "cpu") {
    // flowlik.cpu: the export's cpu= ("native", or an x86-64 level; absent before it existed).
    const auto cpu = metadata_value(info_, "flowlik.cpu");
    const bool native = cpu.empty() || cpu == "native";
    if (const auto missing =
            missing_cpu_features(metadata_value(info_, "AOTI_MACHINE"),
                                 metadata_value(info_, "AOTI_CPU_ISA") + (native ? "" : " " + cpu));
        !missing.empty()) {
      throw ModelError(fmt::format(
          "{}: package was compiled for {}: its code would stop the program with an illegal "
          "instruction here; re-export it on this machine{}",
          path_, missing,
          native ? ", or with flowlik_export.export(..., cpu=\"x86-64-v3\") for any CPU with AVX2"
                 : ""));
    }
  }
  const auto device_index =
      options.device().has_index() ? options.device().index() : c10::DeviceIndex(-1);
  load_libtorch_for_package(path_);
  // The functions are extracted by flowlik from the checked archive into a private folder, and the
  // loader loads that folder: it never sees the archive itself.
  folder_ = std::make_unique<PackageFolder>(path_);
  const auto built_with = metadata_value(info_, "flowlik.torch_version");
  auto load = [&](const std::string& name) {
    const auto model = name + "_" + dtype;
    if (std::find(info_.models.begin(), info_.models.end(), model) == info_.models.end()) {
      throw ModelError(fmt::format(
          "{}: package has no compiled function '{}' (its metadata lists it)", path_, model));
    }
    info_.archive->extract("data/aotinductor/" + model + "/", folder_->path(),
                           [&](const std::filesystem::path& p) { folder_->record(p); });
    try {
      return std::make_unique<torch::inductor::AOTIModelPackageLoader>(
          folder_->path().string(), model,
          /*run_single_threaded=*/false,
          /*num_runners=*/1, device_index);
    } catch (const std::exception& e) {
      const auto* native = dynamic_cast<const c10::Error*>(&e);
      throw ModelError(fmt::format(
          "{}: cannot load the compiled '{}' function ({}){}", path_, name,
          summarize_torch_error(native ? native->what_without_backtrace() : e.what()),
          built_with.empty() || public_version(built_with) == public_version(TORCH_VERSION)
              ? std::string()
              : fmt::format("; it was compiled by PyTorch {}, this flowlik uses {}: "
                            "re-export it with PyTorch {}",
                            built_with, TORCH_VERSION, TORCH_VERSION)));
    }
  };
  for (const auto rows : block_sizes) {
    // The first block's functions carry no block in their names.
    const auto suffix = rows == *block ? std::string() : fmt::format("_b{}", rows);
    Block compiled{rows, load("velocity" + suffix), {}};
    for (const auto k : probe_counts)
      compiled.vjps.push_back({k, load(fmt::format("vjp_k{}{}", k, suffix))});
    blocks_.push_back(std::move(compiled));
  }
  // A CPU function is a shared library, mapped once loaded: its files are no longer needed.
  if (!options.device().is_cuda()) folder_.reset();
}

std::vector<torch::Tensor> AotiPackageNetwork::run(torch::inductor::AOTIModelPackageLoader& loader,
                                                   std::vector<torch::Tensor> inputs,
                                                   const torch::Tensor& labels) const {
  for (auto& input : inputs) input = input.contiguous();
  if (call_.conditional) inputs.push_back(labels.contiguous());
  torch::NoGradGuard no_grad;
  return loader.run(inputs);
}

namespace {

// Entries [first, first + count) of `value` along `dim`, padded to `size` entries with `pad` (its
// last entry repeated when `pad` is undefined). Undefined stays undefined.
torch::Tensor piece(const torch::Tensor& value, int64_t dim, int64_t first, int64_t size,
                    const torch::Tensor& pad = {}) {
  if (!value.defined()) return value;
  const int64_t count = std::min(size, value.size(dim) - first);
  auto part = value.narrow(dim, first, count);
  if (count == size) return part;
  std::vector<int64_t> repeats(static_cast<size_t>(value.dim()), 1);
  repeats[static_cast<size_t>(dim)] = size - count;
  const auto fill = pad.defined() ? pad : part.narrow(dim, count - 1, 1);
  return torch::cat({part, fill.repeat(repeats)}, dim);
}

}  // namespace

std::vector<int64_t> AotiPackageNetwork::blocks() const {
  std::vector<int64_t> rows;
  for (const auto& b : blocks_) rows.push_back(b.rows);
  return rows;
}

AotiPackageNetwork::Block& AotiPackageNetwork::compiled(int64_t rows) const {
  for (auto& b : blocks_) {
    if (b.rows == rows) return b;
  }
  throw std::logic_error(
      fmt::format("{}: no function compiled for {} rows (blocks: {})", path_, rows, blocks()));
}

std::vector<std::pair<int64_t, size_t>> AotiPackageNetwork::plan(const std::vector<Vjp>& vjps,
                                                                 int64_t count) {
  std::vector<std::pair<int64_t, size_t>> calls;
  while (count > 0) {
    size_t which = vjps.size() - 1;
    for (size_t i = 0; i < vjps.size(); ++i) {
      if (vjps[i].probes >= count) {
        which = i;
        break;
      }
    }
    const int64_t n = std::min(count, vjps[which].probes);
    calls.emplace_back(n, which);
    count -= n;
  }
  return calls;
}

std::pair<torch::Tensor, torch::Tensor> AotiPackageNetwork::block_vjp(
    Block& block, const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& probes,
    const torch::Tensor& labels) const {
  torch::Tensor out;
  std::vector<torch::Tensor> products;
  int64_t first = 0;
  for (const auto& [count, which] : plan(block.vjps, probes.size(0))) {
    const auto& vjp = block.vjps[which];
    const auto zero = torch::zeros({1, x.size(0), x.size(1)}, probes.options());
    auto result = run(*vjp.loader, {x, t, piece(probes, 0, first, vjp.probes, zero)}, labels);
    if (!out.defined()) out = result.at(0);
    products.push_back(result.at(1).narrow(0, 0, count));
    first += count;
  }
  return {out, torch::cat(products, 0)};
}

torch::Tensor AotiPackageNetwork::output(const torch::Tensor& x, const torch::Tensor& t,
                                         const torch::Tensor& labels, c10::IntArrayRef shape,
                                         int64_t block) const {
  // The compiled functions take x flattened, for the per-sample shape they were exported with
  // (checked by VelocityField::bind_shape through this call).
  if (x.size(1) != c10::multiply_integers(shape)) {
    throw DataError(fmt::format("{}: input has {} values per sample, its shape [{}] has {}", path_,
                                x.size(1), fmt::join(shape, ", "), c10::multiply_integers(shape)));
  }
  auto& functions = compiled(block);
  std::vector<torch::Tensor> outs;
  for (int64_t first = 0; first < x.size(0); first += block) {
    outs.push_back(run(*functions.velocity, {piece(x, 0, first, block), piece(t, 0, first, block)},
                       piece(labels, 0, first, block))
                       .at(0));
  }
  return torch::cat(outs, 0).narrow(0, 0, x.size(0));
}

std::pair<torch::Tensor, torch::Tensor> AotiPackageNetwork::output_and_vjp(
    const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& probes,
    const torch::Tensor& labels, c10::IntArrayRef shape, int64_t block) const {
  auto& functions = compiled(block);
  std::vector<torch::Tensor> outs, products;
  for (int64_t first = 0; first < x.size(0); first += block) {
    auto [out, vjp] = block_vjp(functions, piece(x, 0, first, block), piece(t, 0, first, block),
                                piece(probes, 1, first, block), piece(labels, 0, first, block));
    outs.push_back(out);
    products.push_back(vjp);
  }
  return {torch::cat(outs, 0).narrow(0, 0, x.size(0)),
          torch::cat(products, 1).narrow(1, 0, x.size(0))};
}

std::pair<torch::Tensor, torch::Tensor> AotiPackageNetwork::output_and_diagonal(
    const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& idx,
    const torch::Tensor& labels, c10::IntArrayRef shape, int64_t block) const {
  // d out_i / d x_i is the VJP against e_i read at i: read, not summed against e_i, so that an
  // infinite entry elsewhere in the row cannot make it nan.
  const int64_t rows = x.size(0);
  const int64_t dim = x.size(1);
  const int64_t count = idx.size(0);
  const auto onehot = torch::one_hot(idx, dim).to(x.dtype());  // [C, D]
  auto& functions = compiled(block);
  std::vector<torch::Tensor> outs, diagonals;
  for (int64_t first = 0; first < rows; first += block) {
    const auto probes = onehot.unsqueeze(1).expand({count, block, dim});
    auto [out, vjp] = block_vjp(functions, piece(x, 0, first, block), piece(t, 0, first, block),
                                probes, piece(labels, 0, first, block));
    const auto at = idx.view({count, 1, 1}).expand({count, block, 1});
    outs.push_back(out);
    diagonals.push_back(vjp.gather(2, at).squeeze(2).t());  // [B, C]
  }
  return {torch::cat(outs, 0).narrow(0, 0, rows), torch::cat(diagonals, 0).narrow(0, 0, rows)};
}

}  // namespace flowlik
