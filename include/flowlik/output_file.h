// Files flowlik writes, written so that nothing is lost: a result file appears whole or not at all,
// and no output may name an input or another output (docs/reproducibility.md, "What flowlik
// guarantees about your files").
#pragma once

#include <span>
#include <string>
#include <string_view>

namespace flowlik {

// Creates or replaces `path` with `contents` as a whole: written to a temporary file in the same
// directory, flushed to disk and renamed into place, so a reader never sees a half-written file and
// a run that fails or is killed leaves an earlier file as it was. Throws OutputError naming the
// file.
void write_file_atomically(const std::string& path, std::string_view contents);

// Throws OutputError naming the file when `path` could not be created at the end of a run: its
// directory is missing or not writable, or it names a directory. Checked before any work, so an
// hours-long run does not fail at its last step. `what` names the file for messages ("report",
// "file").
void check_can_create(const std::string& path, std::string_view what = "file");

// A file a command reads or writes, and the option (or argument) that named it, for messages.
struct NamedFile {
  std::string option;
  std::string path;
};

// True when both paths name the same file: the same device and inode when both exist (hard links
// and symbolic links included), else the same absolute path once symbolic links are resolved.
bool same_file(const std::string& a, const std::string& b);

// Throws InvalidArgument naming both options when an output is the same file as an input or as
// another output. Empty paths (options not given) are skipped.
void check_outputs_distinct(std::span<const NamedFile> inputs, std::span<const NamedFile> outputs);

}  // namespace flowlik
