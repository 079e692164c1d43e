#include "likelihood/model/device.h"

#include <dlfcn.h>
#include <fmt/format.h>
#include <torch/cuda.h>

#include <filesystem>
#include <fstream>
#include <mutex>

#include "flowlik/error.h"

namespace flowlik {
namespace {

constexpr const char* kCudaBackend = "libtorch_cuda.so";

// LibTorch's libraries sit beside libtorch_cpu in every layout (wheel, archive, install): one is
// looked for there first, then on the loader's search path. RTLD_GLOBAL: its symbols serve
// libraries loaded after it (an AOTInductor package's functions). Returns an empty string, or why
// it could not be loaded.
std::string load_beside_libtorch_cpu(const char* name) {
  Dl_info info{};
  void* handle = nullptr;
  if (dladdr(reinterpret_cast<void*>(&torch::cuda::is_available), &info) != 0 && info.dli_fname) {
    const auto beside = std::filesystem::path(info.dli_fname).parent_path() / name;
    if (std::filesystem::exists(beside)) handle = dlopen(beside.c_str(), RTLD_NOW | RTLD_GLOBAL);
  }
  if (!handle) handle = dlopen(name, RTLD_NOW | RTLD_GLOBAL);
  if (handle) return {};
  const char* error = dlerror();
  return error ? error : "not found";
}

}  // namespace

bool load_cuda_backend(std::string* why) {
  static const std::string failure = load_beside_libtorch_cpu(kCudaBackend);  // once per process
  if (!failure.empty() && why) *why = failure;
  return failure.empty();
}

namespace {

constexpr const char* kStandInMarker = "flowlik_libtorch_stub";

// Set by use_libtorch_stand_in (empty: the real libtorch.so). Function-local, so that a caller's
// static initialiser may set it before this file's globals would have been constructed.
struct StandIn {
  std::mutex mutex;
  std::string path;
};
StandIn& stand_in() {
  static StandIn instance;
  return instance;
}

// The stand-in the caller named, if it loads and carries the stand-in's marker symbol; else the
// real libtorch.so beside libtorch_cpu (correct, and heavier in a CUDA build).
std::string load_libtorch_umbrella() {
  std::string chosen;
  {
    std::lock_guard lock(stand_in().mutex);
    chosen = stand_in().path;
  }
  if (!chosen.empty()) {
    if (void* handle = dlopen(chosen.c_str(), RTLD_NOW | RTLD_GLOBAL)) {
      if (dlsym(handle, kStandInMarker) != nullptr) return {};
      dlclose(handle);
    }
  }
  return load_beside_libtorch_cpu("libtorch.so");
}

}  // namespace

void use_libtorch_stand_in(const std::string& path) {
  std::lock_guard lock(stand_in().mutex);
  stand_in().path = path;
}

void load_libtorch_for_package(const std::string& package) {
  static const std::string failure = load_libtorch_umbrella();  // once per process
  if (!failure.empty()) {
    throw ModelError(
        fmt::format("{}: cannot load libtorch.so, which the package's compiled functions need ({})",
                    package, failure));
  }
}

bool cuda_backend_loaded() {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    if (line.find(kCudaBackend) != std::string::npos) return true;
  }
  return false;
}

torch::Device resolve_device(const Device& wanted) {
  if (!wanted.is_cuda()) return torch::Device(torch::kCPU);
  if (wanted.index < -1) {
    throw InvalidArgument("device", fmt::format("CUDA device index {} is below 0", wanted.index));
  }
  const auto name = to_string(wanted);
  // Without an NVIDIA driver there is no device to find: the backend (and the CUDA libraries it
  // maps, half a gigabyte) is not loaded for nothing.
  std::error_code ec;
  if (!std::filesystem::exists("/dev/nvidiactl", ec) &&
      !std::filesystem::exists("/proc/driver/nvidia/version", ec) &&
      !std::filesystem::exists("/dev/dxg", ec)) {
    throw InvalidArgument("device",
                          fmt::format("'{}' asked for, but this machine has no NVIDIA driver (no "
                                      "/dev/nvidiactl)",
                                      name));
  }
  std::string why;
  if (!load_cuda_backend(&why)) {
    throw InvalidArgument("device",
                          fmt::format("'{}' asked for, but LibTorch's CUDA backend cannot be "
                                      "loaded ({})",
                                      name, why));
  }
  const auto count = torch::cuda::device_count();
  if (count == 0) {
    throw InvalidArgument(
        "device", fmt::format("'{}' asked for, but LibTorch finds no CUDA device here", name));
  }
  if (wanted.index >= static_cast<int>(count)) {
    throw InvalidArgument(
        "device", fmt::format("'{}' asked for, but there are {} CUDA device(s)", name, count));
  }
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(wanted.index));
}

}  // namespace flowlik
