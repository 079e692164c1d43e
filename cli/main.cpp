// flowlik: exact log-likelihoods of continuous normalizing flows. main() reads as parse -> run, and
// turns every error into one line on stderr and a documented exit code (docs/reference.md, "Exit
// codes").
#include <fmt/format.h>
#include <malloc.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <new>
#include <string>

#include "cli/compare_command.h"
#include "cli/exit_codes.h"
#include "cli/history_command.h"
#include "cli/inspect_command.h"
#include "cli/merge_command.h"
#include "cli/sample_command.h"
#include "cli/score_command.h"
#include "flowlik/flowlik.h"

namespace {

// Errors are one line of bounded length, whatever they quote: a 10 MB manifest value or a many-line
// torch message must not become a 10 MB or many-line error.
// The cap counts the whole line as printed, the prefix and the note of what was cut included.
std::string one_line(const std::string& prefix, std::string message) {
  const size_t prefix_length = prefix.size();
  constexpr size_t kMaxLength = 1000;
  constexpr size_t kNoteRoom = 32;  // "... (NNNNNNNNNN more characters)"
  for (char& c : message) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  if (prefix_length + message.size() > kMaxLength) {
    const auto keep = kMaxLength - prefix_length - kNoteRoom;
    const auto dropped = message.size() - keep;
    message.resize(keep);
    message += fmt::format("... ({} more characters)", dropped);
  }
  return prefix + message;
}

// flowlik's stand-in for libtorch.so (likelihood/model/device.h), relative to this executable:
// beside it in the build tree, in the install's library folder otherwise; never at a path compiled
// in, so an installed copy does not look where it was built.
void use_libtorch_stand_in_of_this_program() {
  namespace fs = std::filesystem;
  std::error_code ec;
  const auto exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return;
  for (const auto& candidate : {exe.parent_path() / FLOWLIK_STAND_IN_NAME,
                                exe.parent_path() / FLOWLIK_BIN_TO_LIB / FLOWLIK_STAND_IN_NAME}) {
    if (fs::is_regular_file(candidate, ec)) {
      flowlik::use_libtorch_stand_in(candidate.lexically_normal().string());
      return;
    }
  }
}

// On SIGINT, SIGTERM and SIGHUP the folders a package was extracted into are removed, then the
// signal takes its default course (the exit status says which signal ended the run).
void on_termination_signal(int signal) {
  flowlik::remove_package_folders_on_signal();
  ::signal(signal, SIG_DFL);
  ::raise(signal);
}

void remove_extracted_packages_on_signals() {
  struct sigaction action {};
  action.sa_handler = on_termination_signal;
  sigemptyset(&action.sa_mask);
  for (const int s : {SIGINT, SIGTERM, SIGHUP}) sigaction(s, &action, nullptr);
}

// LibTorch's CPU tensors come from malloc. glibc serves a block above its mmap threshold (128 KiB
// to begin with) from a fresh mapping and unmaps it when it is freed, and trims the heap's top
// above 128 KiB, so the megabyte-sized activations a network call allocates are page-faulted in
// anew on every call: 12% of the time of scoring the digits with the .pt2 model on one thread went
// to the kernel's page faults (perf). Blocks up to 32 MiB (glibc's largest threshold) stay in the
// heap and up to 256 MiB of free heap is kept for reuse: the same scoring took 16% less time (9.9
// and 9.4 s against 8.0 and 7.9 s) with the same peak memory (163 vs 166 MB). Process-wide, so the
// program sets it and the library does not (docs/library.md).
void keep_tensor_memory_for_reuse() {
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
}

}  // namespace

int main(int argc, char** argv) {
  keep_tensor_memory_for_reuse();
  use_libtorch_stand_in_of_this_program();
  remove_extracted_packages_on_signals();
  CLI::App app{"flowlik: log-likelihood and bits/dim of exported flow models"};
  app.set_version_flag("--version", FLOWLIK_VERSION);
  app.require_subcommand(1);
  flowlik::cli::ScoreCommandArguments score_args;
  auto* score = flowlik::cli::add_score_command(app, score_args);
  flowlik::cli::InspectArguments inspect_args;
  auto* inspect = flowlik::cli::add_inspect_command(app, inspect_args);
  flowlik::cli::CompareArguments compare_args;
  auto* compare = flowlik::cli::add_compare_command(app, compare_args);
  flowlik::cli::MergeArguments merge_args;
  auto* merge = flowlik::cli::add_merge_command(app, merge_args);
  flowlik::cli::HistoryArguments history_args;
  auto* history = flowlik::cli::add_history_command(app, history_args);
  flowlik::cli::SampleArguments sample_args;
  auto* sample = flowlik::cli::add_sample_command(app, sample_args);

  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);  // --help, --version
  } catch (const CLI::ParseError& e) {
    fmt::print(stderr, "flowlik: error: {}\n", e.what());
    return static_cast<int>(flowlik::cli::ExitCode::kUsage);
  }

  try {
    if (score->parsed()) return flowlik::cli::run_score(score_args);
    if (inspect->parsed()) return flowlik::cli::run_inspect(inspect_args);
    if (compare->parsed()) return flowlik::cli::run_compare(compare_args);
    if (merge->parsed()) return flowlik::cli::run_merge(merge_args);
    if (history->parsed()) return flowlik::cli::run_history(history_args);
    if (sample->parsed()) return flowlik::cli::run_sample(sample_args);
  } catch (const flowlik::Error& e) {
    fmt::print(stderr, "{}\n", one_line("flowlik: error: ", e.what()));
    return static_cast<int>(flowlik::cli::exit_code(e.kind()));
  } catch (const std::bad_alloc&) {
    fmt::print(stderr,
               "flowlik: error: out of memory (try a smaller --batch-size or --max-rows)\n");
    return static_cast<int>(flowlik::cli::ExitCode::kInternal);
  } catch (const std::exception& e) {
    fmt::print(stderr, "{}\n", one_line("flowlik: internal error: ", e.what()));
    return static_cast<int>(flowlik::cli::ExitCode::kInternal);
  }
  return static_cast<int>(flowlik::cli::ExitCode::kInternal);
}
