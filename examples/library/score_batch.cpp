// Scores a batch of images under a flow model through the flowlik library, and prints the result.
//
//   flowlik_library_example MODEL DATA.npy [N]
//
// With the embedded example (examples/digits): the first N (default 16) held-out digits,
// dequantized and scaled as the model's manifest says, solved with dopri5 at 1e-5 per sample, exact
// trace, seed 0 -- the defaults of `flowlik score`, which gives the same number.
#include <flowlik/flowlik.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODEL DATA.npy [N]\n", argv[0]);
    return 2;
  }
  try {
    const auto model =
        flowlik::Model::load(argv[1]);  // float32 on the CPU, the manifest's contract
    auto data = flowlik::load_data(argv[2]);
    const long n = argc > 3 ? std::strtol(argv[3], nullptr, 10) : 16;
    data.values = data.values.narrow(0, 0, std::min<int64_t>(n, data.values.size(0)));

    const auto scores = flowlik::score(model, data, flowlik::ScoreOptions{});
    const auto& s = scores.summary;
    std::printf("%s (%s) on %ld samples of %s\n", model.path().c_str(), model.format().c_str(),
                static_cast<long>(s.total), argv[2]);
    std::printf("bpd %.17g +- %.17g\n", s.bpd.mean, s.bpd.std_error);
    std::printf("log-likelihood %.17g nats, NFE mean %.1f\n", s.log_likelihood.mean, s.nfe_mean);
    for (const auto& r : scores.samples) {
      if (r.status != flowlik::SampleStatus::kOk) {
        std::printf("sample %ld: %s (%s)\n", static_cast<long>(r.index),
                    flowlik::to_string(r.status).c_str(), r.detail.c_str());
      }
    }
    return 0;
  } catch (const flowlik::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
