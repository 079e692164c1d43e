// A stand-in for LibTorch's umbrella library for CPU runs (likelihood/model/device.h): linked with
// the soname libtorch.so and nothing in it, so that an AOTInductor package's compiled functions,
// which name libtorch.so as a dependency but use only libtorch_cpu, load without the CUDA backend
// that the real libtorch.so of a CUDA build depends on.
//
// The marker flowlik checks (dlsym) before relying on a library as the stand-in. `extern`: a const
// variable at namespace scope would otherwise have internal linkage and not be in the symbol table.
extern "C" {
__attribute__((visibility("default"))) extern const char flowlik_libtorch_stub[];
const char flowlik_libtorch_stub[] = "flowlik: libtorch.so stand-in for CPU runs";
}
