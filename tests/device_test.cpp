// The CUDA backend is loaded when asked for, not at start-up (likelihood/model/device.h).
#include "likelihood/model/device.h"

#include <c10/core/impl/DeviceGuardImplInterface.h>
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
  EXPECT_EQ(resolve_device("cpu"), torch::Device(torch::kCPU));
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
        [] { resolve_device("cuda"); },
        // Without an NVIDIA driver the request is refused before LibTorch is asked.
        {"device: 'cuda' asked for, but"});
  } else {
    EXPECT_TRUE(resolve_device("cuda").is_cuda());
    test::expect_error<InvalidArgument>([] { resolve_device("cuda:4096"); }, {"CUDA device(s)"});
  }
}

TEST(DeviceTest, UnknownDevicesAreRefusedByName) {
  test::expect_error<InvalidArgument>([] { resolve_device("tpu"); },
                                      {"device: unknown device 'tpu' (valid: cpu, cuda, cuda:N)"});
  test::expect_error<InvalidArgument>([] { resolve_device("cuda:x"); },
                                      {"unknown device 'cuda:x'"});
}

}  // namespace
}  // namespace flowlik
