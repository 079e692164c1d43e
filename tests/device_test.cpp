// The CUDA backend is loaded when asked for, not at start-up (likelihood/model/device.h).
#include "likelihood/model/device.h"

#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include "tests/expect_error.h"

namespace flowlik {
namespace {

// Read before main(), before any test could have asked for CUDA: this program links LibTorch as
// flowlik does, so this is what every CPU run of flowlik has loaded.
const bool kCudaLoadedAtStart = cuda_backend_loaded();

TEST(DeviceTest, AProgramStartsWithoutTheCudaBackend) { EXPECT_FALSE(kCudaLoadedAtStart); }

TEST(DeviceTest, TheCpuDeviceLoadsNothing) {
  EXPECT_EQ(resolve_device(Device::cpu()), torch::Device(torch::kCPU));
  if (!kCudaLoadedAtStart) {
    EXPECT_FALSE(cuda_backend_loaded());
  }
}

TEST(DeviceTest, AskingForCudaLoadsTheBackendAndRegistersTheDevice) {
  std::string why;
  if (!load_cuda_backend(&why)) GTEST_SKIP() << "this LibTorch has no CUDA backend: " << why;
  EXPECT_TRUE(cuda_backend_loaded());
  // Registered by the backend's static initialisers whether or not a GPU is present.
  EXPECT_TRUE(c10::impl::hasDeviceGuardImpl(c10::DeviceType::CUDA));
  if (torch::cuda::device_count() == 0) {
    test::expect_error<InvalidArgument>(
        [] { resolve_device(Device::cuda()); },
        // Without an NVIDIA driver the request is refused before LibTorch is asked.
        {"device: 'cuda' asked for, but"});
  } else {
    EXPECT_TRUE(resolve_device(Device::cuda()).is_cuda());
    test::expect_error<InvalidArgument>([] { resolve_device(Device::cuda(4096)); },
                                        {"CUDA device(s)"});
  }
}

TEST(DeviceTest, DevicesAreParsedFromTheirNamesAndWrittenBack) {
  EXPECT_EQ(parse_device("cpu"), Device::cpu());
  EXPECT_EQ(parse_device("cuda"), Device::cuda());
  EXPECT_EQ(parse_device("cuda:3"), Device::cuda(3));
  for (const char* name : {"cpu", "cuda", "cuda:0", "cuda:12"}) {
    EXPECT_EQ(to_string(parse_device(name)), name);
  }
}

TEST(DeviceTest, UnknownDevicesAreRefusedByName) {
  for (const char* name : {"tpu", "cuda:x", "cuda:", "cuda:-1", "cuda:99999", "CPU", "cuda:1 "}) {
    test::expect_error<InvalidArgument>(
        [name] { parse_device(name); },
        {fmt::format("device: unknown device '{}' (valid: cpu, cuda, cuda:N)", name)});
  }
  // A library caller's value, not parsed: refused before anything is loaded.
  test::expect_error<InvalidArgument>([] { resolve_device(Device::cuda(-2)); },
                                      {"device: CUDA device index -2 is below 0"});
}

}  // namespace
}  // namespace flowlik
