#include "likelihood/model/model_archive.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <zip.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <set>
#include <string_view>

#include "flowlik/error.h"
#include "flowlik/flowlik.h"  // remove_package_folders_on_signal

namespace flowlik {
namespace fs = std::filesystem;

struct ModelArchive::Zip {
  zip_t* handle = nullptr;
  ~Zip() {
    if (handle) zip_discard(handle);
  }
};

namespace {

std::string zip_open_error(int code) {
  zip_error_t error;
  zip_error_init_with_code(&error, code);
  std::string message = zip_error_strerror(&error);
  zip_error_fini(&error);
  return message;
}

std::string megabytes(uint64_t bytes) {
  return fmt::format("{:.1f} MB", static_cast<double>(bytes) / 1e6);
}

// A member's name as it may be written below a folder: relative, components other than "", "." and
// "..", printable ASCII or UTF-8 without control characters or backslashes. Returns why not, or
// an empty string.
std::string name_fault(std::string_view name) {
  if (name.empty()) return "an empty name";
  if (name.size() > 1024) return "a name longer than 1024 bytes";
  if (name.front() == '/') return "an absolute path";
  for (const unsigned char c : name) {
    if (c < 0x20 || c == 0x7f) return "a control character in its name";
    if (c == '\\') return "a backslash in its name";
  }
  size_t start = 0;
  while (start <= name.size()) {
    const auto end = std::min(name.find('/', start), name.size());
    const auto part = name.substr(start, end - start);
    const bool last = end == name.size();
    if (part == "..") return "a '..' component";
    if (part == ".") return "a '.' component";
    if (part.empty() && !last) return "an empty path component";
    start = end + 1;
  }
  return {};
}

}  // namespace

ModelArchive::ModelArchive(const std::string& path, const ArchiveLimits& limits)
    : path_(path), limits_(limits), zip_(std::make_unique<Zip>()) {
  int code = 0;
  zip_->handle = zip_open(path.c_str(), ZIP_RDONLY | ZIP_CHECKCONS, &code);
  if (!zip_->handle && code == ZIP_ER_EXISTS) {
    throw ModelError(
        fmt::format("{}: cannot load: two members of the archive have the same name; a "
                    "model package is untrusted input and is refused whole",
                    path));
  }
  if (!zip_->handle) {
    throw ModelError(fmt::format(
        "{}: cannot load as a TorchScript module or an AOTInductor package: not a complete zip "
        "archive ({})",
        path, zip_open_error(code)));
  }
  const auto count = zip_get_num_entries(zip_->handle, 0);
  if (count <= 0) throw ModelError(fmt::format("{}: cannot load: an empty zip archive", path));
  if (count > limits.max_members) {
    throw ModelError(
        fmt::format("{}: cannot load: the archive has {} members, more than the {} a "
                    "model package may have",
                    path, count, limits.max_members));
  }
  std::set<std::string> seen;
  uint64_t total = 0;
  for (zip_int64_t i = 0; i < count; ++i) {
    const auto index = static_cast<zip_uint64_t>(i);
    const char* raw = zip_get_name(zip_->handle, index, ZIP_FL_ENC_RAW);
    if (!raw) {
      throw ModelError(fmt::format("{}: cannot load: member {} has no readable name ({})", path, i,
                                   zip_strerror(zip_->handle)));
    }
    const std::string name = raw;
    // A member is named in messages as the archive has it, cut short: a hostile name can be long.
    const auto shown = name.size() > 200 ? name.substr(0, 200) + "..." : name;
    auto refuse = [&](const std::string& why) {
      throw ModelError(
          fmt::format("{}: cannot load: member '{}' has {}; a model package is "
                      "untrusted input and is refused whole",
                      path, shown, why));
    };
    if (const auto fault = name_fault(name); !fault.empty()) refuse(fault);
    const auto slash = name.find('/');
    if (slash == std::string::npos || slash + 1 == name.size()) {
      if (name.back() == '/') continue;  // the top folder's own entry
      refuse("no folder: every member must be inside the archive's top folder");
    }
    const auto top = name.substr(0, slash);
    if (root_.empty()) root_ = top;
    if (top != root_) {
      refuse(fmt::format("another top folder than '{}': every member must be inside it", root_));
    }
    if (!seen.insert(name).second) refuse("the same name as another member");
    zip_uint8_t system = 0;
    zip_uint32_t attributes = 0;
    if (zip_file_get_external_attributes(zip_->handle, index, 0, &system, &attributes) == 0 &&
        system == ZIP_OPSYS_UNIX) {
      // The file type bits of a Unix mode; 0 when the writer recorded none.
      const auto type = static_cast<mode_t>(attributes >> 16) & S_IFMT;
      if (type == S_IFLNK) refuse("the type of a symbolic link");
      if (type != 0 && type != S_IFREG && type != S_IFDIR) refuse("the type of a special file");
    }
    zip_stat_t stat;
    zip_stat_init(&stat);
    if (zip_stat_index(zip_->handle, index, 0, &stat) != 0 || !(stat.valid & ZIP_STAT_SIZE) ||
        !(stat.valid & ZIP_STAT_COMP_SIZE)) {
      refuse("no readable size");
    }
    if ((stat.valid & ZIP_STAT_ENCRYPTION_METHOD) && stat.encryption_method != ZIP_EM_NONE)
      refuse("encryption");
    if ((stat.valid & ZIP_STAT_COMP_METHOD) &&
        !zip_compression_method_supported(stat.comp_method, 0)) {
      refuse(fmt::format("compression method {}, which cannot be read", stat.comp_method));
    }
    if (stat.size > limits.ratio_floor_bytes &&
        stat.size / std::max<zip_uint64_t>(stat.comp_size, 1) > limits.max_ratio) {
      refuse(
          fmt::format("a compression ratio of {}:1 ({} from {}), more than the {}:1 a model "
                      "package may have (a zip bomb?)",
                      stat.size / std::max<zip_uint64_t>(stat.comp_size, 1), megabytes(stat.size),
                      megabytes(stat.comp_size), limits.max_ratio));
    }
    total += stat.size;
    if (total > limits.max_total_bytes) {
      refuse(
          fmt::format("brought the archive's uncompressed size past {}, the most a model "
                      "package may have",
                      megabytes(limits.max_total_bytes)));
    }
    if (name.back() == '/') continue;  // a folder
    members_.push_back({name.substr(slash + 1), stat.size, index});
  }
}

ModelArchive::~ModelArchive() = default;

bool ModelArchive::has(const std::string& record) const {
  for (const auto& m : members_) {
    if (m.record == record) return true;
  }
  return false;
}

const ArchiveMember& ModelArchive::member(const std::string& record) const {
  for (const auto& m : members_) {
    if (m.record == record) return m;
  }
  throw ModelError(fmt::format("{}: the archive has no member '{}/{}'", path_, root_, record));
}

namespace {

// Streams one member to `sink(data, size)`, refusing more bytes than its stated size. Throws
// ModelError naming the member.
template <typename Sink>
void stream_member(zip_t* zip, const std::string& path, const std::string& name,
                   const ArchiveMember& m, Sink&& sink) {
  zip_file_t* file = zip_fopen_index(zip, m.index, 0);
  if (!file) {
    throw ModelError(
        fmt::format("{}: cannot read member '{}' ({})", path, name, zip_strerror(zip)));
  }
  std::array<char, 1 << 16> buffer;
  uint64_t done = 0;
  while (true) {
    const auto got = zip_fread(file, buffer.data(), buffer.size());
    if (got < 0) {
      const std::string why = zip_file_strerror(file);
      zip_fclose(file);
      throw ModelError(fmt::format("{}: cannot read member '{}' ({})", path, name, why));
    }
    if (got == 0) break;
    done += static_cast<uint64_t>(got);
    if (done > m.size) {
      zip_fclose(file);
      throw ModelError(
          fmt::format("{}: member '{}' inflates past its stated size of {} bytes; refused", path,
                      name, m.size));
    }
    sink(buffer.data(), static_cast<size_t>(got));
  }
  zip_fclose(file);
  if (done != m.size) {
    throw ModelError(fmt::format("{}: member '{}' holds {} bytes, its entry states {}", path, name,
                                 done, m.size));
  }
}

}  // namespace

std::string ModelArchive::read(const std::string& record) const {
  const auto& m = member(record);
  const auto name = root_ + "/" + record;
  if (m.size > limits_.max_read_bytes) {
    throw ModelError(
        fmt::format("{}: member '{}' is {} bytes, more than the {} such a member may "
                    "have",
                    path_, name, m.size, limits_.max_read_bytes));
  }
  std::string out;
  out.reserve(m.size);
  stream_member(zip_->handle, path_, name, m,
                [&](const char* data, size_t size) { out.append(data, size); });
  return out;
}

void ModelArchive::extract(const std::string& prefix, const fs::path& destination,
                           const std::function<void(const fs::path&)>& created) const {
  std::vector<const ArchiveMember*> chosen;
  uint64_t bytes = 0;
  for (const auto& m : members_) {
    if (m.record.starts_with(prefix)) {
      chosen.push_back(&m);
      bytes += m.size;
    }
  }
  struct statvfs space {};
  if (statvfs(destination.c_str(), &space) == 0) {
    const auto free = static_cast<uint64_t>(space.f_bavail) * space.f_frsize;
    if (free < bytes + (uint64_t{1} << 20)) {
      throw ModelError(fmt::format(
          "{}: cannot extract '{}': {} needs {} and its file system has {} free (set TMPDIR to a "
          "folder with room)",
          path_, prefix, destination.parent_path().string(), megabytes(bytes), megabytes(free)));
    }
  }
  auto fail = [&](const fs::path& where, int error) {
    throw ModelError(fmt::format("{}: cannot extract to {} ({}{})", path_, where.string(),
                                 std::strerror(error),
                                 error == ENOSPC ? "; set TMPDIR to a folder with room" : ""));
  };
  for (const auto* m : chosen) {
    const fs::path relative(m->record);
    fs::path folder = destination;
    for (auto part = relative.begin(); std::next(part) != relative.end(); ++part) {
      folder /= *part;
      if (::mkdir(folder.c_str(), 0700) == 0) {
        created(folder);
      } else {
        struct stat st {};
        if (errno != EEXIST || ::lstat(folder.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
          fail(folder, errno == EEXIST ? ENOTDIR : errno);
      }
    }
    const auto target = destination / relative;
    const int fd =
        ::open(target.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) fail(target, errno);
    created(target);
    try {
      stream_member(zip_->handle, path_, root_ + "/" + m->record, *m,
                    [&](const char* data, size_t size) {
                      while (size > 0) {
                        const auto written = ::write(fd, data, size);
                        if (written < 0) {
                          if (errno == EINTR) continue;
                          fail(target, errno);
                        }
                        data += written;
                        size -= static_cast<size_t>(written);
                      }
                    });
    } catch (...) {
      ::close(fd);
      throw;
    }
    if (::close(fd) != 0) fail(target, errno);
  }
}

// ------------------------------------------------------------------------------ private folders

namespace {

// The paths of live package folders, for the signal handler: fixed slots that it reads without
// allocating. A slot is claimed by a compare-exchange from 0 to 1, then written, then published
// (2).
constexpr int kSlots = 1024;
constexpr size_t kSlotBytes = 512;
std::array<std::atomic<int>, kSlots> slot_state{};
std::array<std::array<char, kSlotBytes>, kSlots> slot_path{};

int claim_slot(const std::string& path) {
  if (path.size() + 1 > kSlotBytes) return -1;  // too long to keep: the stale cleanup covers it
  for (int i = 0; i < kSlots; ++i) {
    int expected = 0;
    if (slot_state[i].compare_exchange_strong(expected, 1)) {
      std::memcpy(slot_path[i].data(), path.c_str(), path.size() + 1);
      slot_state[i].store(2);
      return i;
    }
  }
  return -1;
}

void release_slot(int i) {
  if (i >= 0) slot_state[i].store(0);
}

constexpr std::string_view kFolderPrefix = "flowlik-";

}  // namespace

fs::path package_folder_base() {
  const char* tmpdir = std::getenv("TMPDIR");
  return fs::path(tmpdir && *tmpdir ? tmpdir : "/tmp");
}

int remove_stale_package_folders(const fs::path& base) {
  int removed = 0;
  std::error_code ec;
  for (fs::directory_iterator it(base, ec), end; !ec && it != end; it.increment(ec)) {
    const auto name = it->path().filename().string();
    if (!name.starts_with(kFolderPrefix)) continue;
    const auto rest = name.substr(kFolderPrefix.size());
    const auto dash = rest.find('-');
    if (dash == std::string::npos || dash == 0) continue;
    char* stop = nullptr;
    const long pid = std::strtol(rest.c_str(), &stop, 10);
    if (stop != rest.c_str() + dash || pid <= 0 || pid == ::getpid()) continue;
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;  // alive, or unsure
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != ::geteuid())
      continue;
    std::error_code remove_ec;
    fs::remove_all(it->path(), remove_ec);
    if (!remove_ec) ++removed;
  }
  return removed;
}

PackageFolder::PackageFolder(const std::string& package) {
  const auto base = package_folder_base();
  remove_stale_package_folders(base);
  auto pattern = (base / fmt::format("{}{}-XXXXXX", kFolderPrefix, ::getpid())).string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    const int error = errno;
    throw ModelError(fmt::format(
        "{}: cannot make a private folder in {} to extract the package into ({}); set TMPDIR to "
        "an existing, writable folder",
        package, base.string(), std::strerror(error)));
  }
  path_ = pattern;
  slots_.push_back(claim_slot(path_.string()));
}

void PackageFolder::record(const fs::path& created) {
  slots_.push_back(claim_slot(created.string()));
}

void PackageFolder::remove() {
  if (path_.empty()) return;
  std::error_code ec;
  fs::remove_all(path_, ec);
  for (const int slot : slots_) release_slot(slot);
  slots_.clear();
  path_.clear();
}

PackageFolder::~PackageFolder() { remove(); }

void remove_package_folders_on_signal() noexcept {
  // Files first (unlink fails on a folder), then folders, deepest first: a few passes of rmdir
  // empty them from the bottom up whatever the order of the slots.
  for (int i = 0; i < kSlots; ++i) {
    if (slot_state[i].load() == 2) ::unlink(slot_path[i].data());
  }
  for (int pass = 0; pass < 8; ++pass) {
    for (int i = kSlots - 1; i >= 0; --i) {
      if (slot_state[i].load() == 2) ::rmdir(slot_path[i].data());
    }
  }
}

}  // namespace flowlik
