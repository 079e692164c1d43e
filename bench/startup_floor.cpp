// The floor of a LibTorch program's start-up: linked with libtorch_cpu and c10 only (their static
// initialisers run, as in any LibTorch program), it prints LibTorch's version and exits.
// bench/startup.py measures `flowlik --version` against it.
#include <torch/headeronly/version.h>

#include <cstdio>

int main() {
  std::puts(TORCH_VERSION);
  return 0;
}
