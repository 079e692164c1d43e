// A seeded mutation fuzzer for the readers of files flowlik did not write itself (or that may have
// been hand-edited): .npy arrays, manifests and the contract they resolve to, per-sample CSVs and
// reports, model archives. Each seed file of tests/corpus/<reader>/ is mutated (bit flips, byte
// changes, insertions, deletions, truncations, splices of interesting bytes) a bounded number of
// times with a fixed seed, so a run is reproducible; every mutant must either read or be refused
// with a flowlik::Error, never crash, hang or escape as another exception. Built with
// FLOWLIK_SANITIZE, AddressSanitizer and UBSan watch every read.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "flowlik/error.h"
#include "io/npy.h"
#include "io/sample_csv.h"
#include "likelihood/model/aoti_network.h"
#include "likelihood/model/contract.h"
#include "likelihood/model/model_archive.h"
#include "likelihood/model/velocity_field.h"
#include "likelihood/report_reader.h"

namespace flowlik {
namespace {

namespace fs = std::filesystem;

constexpr int kMutantsPerSeed = 400;

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string mutate(std::string text, std::mt19937_64& rng) {
  static const std::vector<std::string> kInteresting = {"\0",
                                                        "\xff",
                                                        "-1",
                                                        "1e308",
                                                        "nan",
                                                        "\"",
                                                        ",",
                                                        "\n",
                                                        "{",
                                                        "[",
                                                        "}",
                                                        "]",
                                                        "null",
                                                        "99999999999999999999",
                                                        "'descr': '<f8'",
                                                        "'shape': (",
                                                        "ok",
                                                        "# flowlik-run ",
                                                        "\"shard\"",
                                                        "\"count\"",
                                                        ":"};
  const int edits = 1 + static_cast<int>(rng() % 4);
  for (int e = 0; e < edits; ++e) {
    const size_t n = text.size();
    const size_t at = n == 0 ? 0 : rng() % n;
    switch (rng() % 6) {
      case 0:
        if (n) text[at] = static_cast<char>(text[at] ^ (1u << (rng() % 8)));
        break;
      case 1:
        if (n) text[at] = static_cast<char>(rng() % 256);
        break;
      case 2:
        text.insert(at, kInteresting[rng() % kInteresting.size()]);
        break;
      case 3:
        if (n) text.erase(at, 1 + rng() % std::min<size_t>(16, n - at));
        break;
      case 4:
        text.resize(at);
        break;
      case 5:
        if (n) text.insert(at, text.substr(rng() % n, 1 + rng() % 32));
        break;
    }
  }
  return text;
}

// Runs `read` on every mutant of every seed file of the corpus; flowlik::Error is the only way out.
void fuzz(const std::string& corpus, uint64_t seed,
          const std::function<void(const std::string& path)>& read) {
  const fs::path dir = fs::path(FLOWLIK_SOURCE_DIR) / "tests" / "corpus" / corpus;
  const auto path =
      (fs::temp_directory_path() / ("flowlik_fuzz_" + std::to_string(::getpid()) + "_" + corpus))
          .string();
  std::mt19937_64 rng(seed);
  int seeds = 0;
  int accepted = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    ++seeds;
    const auto original = read_file(entry.path());
    for (int i = 0; i < kMutantsPerSeed; ++i) {
      const auto mutant = i == 0 ? original : mutate(original, rng);
      std::ofstream(path, std::ios::binary | std::ios::trunc) << mutant;
      try {
        read(path);
        ++accepted;
      } catch (const Error&) {
        // refused with a message: what a reader should do
      } catch (const std::exception& e) {
        ADD_FAILURE() << corpus << " mutant " << i << " of " << entry.path().filename()
                      << " escaped as " << typeid(e).name() << ": " << e.what();
      }
    }
  }
  fs::remove(path);
  EXPECT_GT(seeds, 0) << "no seed files in " << dir;
  EXPECT_GT(accepted, 0) << "no mutant of " << corpus
                         << " was read: the seeds themselves must be valid";
}

TEST(FuzzTest, NpyReader) {
  fuzz("npy", 1, [](const std::string& path) { read_npy(path); });
}

TEST(FuzzTest, ManifestAndContract) {
  fuzz("manifest", 2, [](const std::string& path) {
    const auto manifest = parse_manifest(read_file(path), path);
    resolve_contract(&manifest, "manifest (fuzz)", ContractOptions{});
  });
}

TEST(FuzzTest, PerSampleCsvReader) {
  fuzz("csv", 3, [](const std::string& path) { read_sample_csv(path); });
}

// Model archives, the untrusted input of issue 19 (seeds: tests/fixtures/make_package_corpus.py):
// the archive checks, the metadata reader and the extraction into a private folder, never
// LibTorch's loader (a mutated library is not something to run).
TEST(FuzzTest, ModelArchive) {
  fuzz("package", 5, [](const std::string& path) {
    const ModelArchive archive(path);
    if (archive.has("archive_format")) archive.read("archive_format");
    const auto metadata = read_package_metadata(archive, "velocity_float32");
    missing_cpu_features(metadata.contains("AOTI_MACHINE") ? metadata.at("AOTI_MACHINE") : "",
                         metadata.contains("AOTI_CPU_ISA") ? metadata.at("AOTI_CPU_ISA") : "");
    const PackageFolder folder(path);
    archive.extract("data/aotinductor/velocity_float32/", folder.path(),
                    [](const std::filesystem::path&) {});
  });
}

TEST(FuzzTest, ReportReader) {
  fuzz("report", 4, [](const std::string& path) {
    const ReportReader r(path, "report");
    for (const char* key : {"shard.index", "shard.count", "shard.first", "shard.end", "data.N",
                            "data.D", "metrics.bpd.n"}) {
      if (r.contains(key)) r.integer(key);
    }
    for (const char* key : {"metrics.bpd.mean", "metrics.bpd.stderr"}) {
      if (r.contains(key)) r.number_or_null(key);
    }
    if (r.contains("data.sha256")) r.string("data.sha256");
    if (r.contains("options")) r.object("options");
  });
}

}  // namespace
}  // namespace flowlik
