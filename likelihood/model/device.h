// The device a model runs on. flowlik links LibTorch's CPU library only: a CPU run does not load
// the CUDA libraries of a CUDA build of LibTorch (about 370 MB of resident memory and a quarter of
// a second of start-up). LibTorch's CUDA backend (libtorch_cuda, and through it the CUDA runtime,
// cuBLAS, cuDNN) is loaded here, once, when a CUDA device is first asked for; its static
// initialisers register the CUDA kernels, hooks and AOTInductor runner as linking it would have.
#pragma once

#include <torch/types.h>

#include <string>

#include "flowlik/options.h"

namespace flowlik {

// Loads the CUDA backend if it is not loaded yet; true when it is loaded. `why`, if given, receives
// the reason it could not be (no CUDA build of LibTorch, a missing library). Must run before
// anything asks LibTorch about CUDA: LibTorch decides once per process whether CUDA exists.
bool load_cuda_backend(std::string* why = nullptr);

// Makes sure a library named libtorch.so, LibTorch's umbrella library, is loaded before a package.
// An AOTInductor package's compiled functions name it as a dependency though they use nothing of it
// but libtorch_cpu (and, on a GPU, libtorch_cuda, which resolve_device loads globally), and in a
// CUDA build the real one maps the CUDA libraries. With use_libtorch_stand_in, flowlik's empty
// stand-in with that soname is loaded instead, and a CPU run with a package does not map them.
// Once per process. Throws ModelError naming `package` when neither can be loaded.
void load_libtorch_for_package(const std::string& package);

// Opts in to the stand-in (libflowlik_libtorch_stub.so, built and installed beside the program):
// process-wide, so the program makes that choice and a library user may. Nothing is loaded from a
// path compiled in: `path` comes from the caller (the program finds it relative to its own
// executable). The stand-in is used only if it carries its marker symbol; otherwise the real
// libtorch.so is. Takes effect at the first package load.
void use_libtorch_stand_in(const std::string& path);

// Whether this process has LibTorch's CUDA backend loaded (read from the loaded libraries, not
// cached).
bool cuda_backend_loaded();

// LibTorch's device; for a CUDA device, loads the backend and checks that the device exists.
// Throws InvalidArgument naming `device`.
torch::Device resolve_device(const Device& device);

}  // namespace flowlik
