// A model file's zip archive, listed and checked before anything in it is read or extracted. Both
// formats flowlik loads (a TorchScript module, an AOTInductor package) are zip archives written by
// PyTorch's stream writer, and a package holds native code that flowlik extracts and loads: the
// file is untrusted input. Every member must lie in the archive's one top folder under a plain
// relative name (no absolute path, no "." or ".." component, no backslash, no link, no duplicate),
// and the archive must stay within ArchiveLimits (members, total size, compression ratio), so that
// neither a hostile name nor a zip bomb reaches the disk or the memory. Read with libzip.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace flowlik {

// The documented limits (docs/models.md, "Model packages are untrusted input").
struct ArchiveLimits {
  int64_t max_members = 10000;
  uint64_t max_total_bytes = uint64_t{64} << 30;  // uncompressed, all members together
  uint64_t max_read_bytes = uint64_t{1} << 20;    // a member read into memory (metadata, format)
  // Uncompressed over compressed size, for members of more than ratio_floor_bytes: PyTorch stores
  // members uncompressed (ratio 1); a bomb's ratio is in the hundreds or thousands.
  uint64_t max_ratio = 100;
  uint64_t ratio_floor_bytes = uint64_t{1} << 20;
};

struct ArchiveMember {
  std::string record;  // the name below the top folder, as PyTorchStreamReader names it
  uint64_t size = 0;   // uncompressed
  uint64_t index = 0;  // in the archive
};

class ModelArchive {
 public:
  // Opens `path` and checks every member's name and size. Throws ModelError naming the file and the
  // member at fault.
  explicit ModelArchive(const std::string& path, const ArchiveLimits& limits = {});
  ~ModelArchive();
  ModelArchive(const ModelArchive&) = delete;
  ModelArchive& operator=(const ModelArchive&) = delete;

  const std::string& path() const { return path_; }
  // The top folder every member is in.
  const std::string& root() const { return root_; }
  const std::vector<ArchiveMember>& members() const { return members_; }
  bool has(const std::string& record) const;
  // A member's contents, at most limits.max_read_bytes. Throws ModelError naming the member.
  std::string read(const std::string& record) const;
  // Writes every member whose record starts with `prefix` under `destination` (an existing private
  // folder), at the member's record path, creating its folders; files are created afresh (never
  // through an existing file or link) with mode 0600. Checks the free space first. Calls `created`
  // with each file and folder as it is made. Throws ModelError naming the member or the folder.
  void extract(const std::string& prefix, const std::filesystem::path& destination,
               const std::function<void(const std::filesystem::path&)>& created) const;

 private:
  const ArchiveMember& member(const std::string& record) const;

  std::string path_;
  ArchiveLimits limits_;
  struct Zip;
  std::unique_ptr<Zip> zip_;
  std::string root_;
  std::vector<ArchiveMember> members_;
};

// A private folder for an extracted package: created under TMPDIR (or /tmp) with an unpredictable
// name and mode 0700, named flowlik-PID-XXXXXX so that folders of flowlik processes that died
// without removing theirs (kill -9) are found and removed by the next one. Removed by the
// destructor; the paths recorded with it are also removed by remove_package_folders_on_signal().
class PackageFolder {
 public:
  // Throws ModelError naming `package` and TMPDIR when the folder cannot be made (TMPDIR missing,
  // not a folder, not writable).
  explicit PackageFolder(const std::string& package);
  ~PackageFolder();
  PackageFolder(const PackageFolder&) = delete;
  PackageFolder& operator=(const PackageFolder&) = delete;

  const std::filesystem::path& path() const { return path_; }
  // Records a path created inside the folder, for the signal-time cleanup.
  void record(const std::filesystem::path& created);
  // Removes the folder now (idempotent).
  void remove();

 private:
  std::filesystem::path path_;
  std::vector<int> slots_;
};

// Removes the folders of flowlik processes that no longer run from `base` (TMPDIR or /tmp), those
// owned by this user. Returns how many were removed.
int remove_stale_package_folders(const std::filesystem::path& base);

// The folder packages are extracted under: $TMPDIR, or /tmp.
std::filesystem::path package_folder_base();

// remove_package_folders_on_signal() (flowlik/flowlik.h) removes every live PackageFolder's
// recorded files and folders.

}  // namespace flowlik
