// A stand-in for LibTorch's umbrella library for CPU runs (likelihood/device.h): linked with the
// soname libtorch.so and nothing in it, so that an AOTInductor package's compiled functions, which
// name libtorch.so as a dependency but use only libtorch_cpu, load without the CUDA backend that
// the real libtorch.so of a CUDA build depends on.
extern "C" {
// What this library is, for a reader of its symbol table.
const char flowlik_libtorch_stub[] = "flowlik: libtorch.so stand-in for CPU runs";
}
