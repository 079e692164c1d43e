#include "flowlik/output_file.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <vector>

#include "flowlik/error.h"

namespace flowlik {
namespace fs = std::filesystem;

namespace {

fs::path directory_of(const std::string& path) {
  const auto parent = fs::path(path).parent_path();
  return parent.empty() ? fs::path(".") : parent;
}

std::string system_error() { return std::strerror(errno); }

}  // namespace

void write_file_atomically(const std::string& path, std::string_view contents) {
  const auto name = fs::path(path).filename().string();
  std::string temp = (directory_of(path) / ("." + name + ".tmp-XXXXXX")).string();
  const int fd = ::mkstemp(temp.data());
  if (fd < 0) throw OutputError(fmt::format("{}: cannot create file ({})", path, system_error()));
  auto fail = [&](const char* what) {
    const auto reason = system_error();
    ::close(fd);
    ::unlink(temp.c_str());
    throw OutputError(fmt::format("{}: {} ({})", path, what, reason));
  };
  // mkstemp creates the file 0600; a result file gets the permissions any new file would.
  const mode_t mask = ::umask(0);
  ::umask(mask);
  if (::fchmod(fd, 0666 & ~mask) != 0) fail("cannot set permissions");
  size_t written = 0;
  while (written < contents.size()) {
    const auto n = ::write(fd, contents.data() + written, contents.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("write failed");
    }
    written += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) fail("write failed");
  if (::close(fd) != 0) {
    const auto reason = system_error();
    ::unlink(temp.c_str());
    throw OutputError(fmt::format("{}: write failed ({})", path, reason));
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    const auto reason = system_error();
    ::unlink(temp.c_str());
    throw OutputError(fmt::format("{}: cannot replace file ({})", path, reason));
  }
}

void check_can_create(const std::string& path, std::string_view what) {
  std::error_code ec;
  if (fs::is_directory(path, ec))
    throw OutputError(fmt::format("{}: cannot create {}: is a directory", path, what));
  const auto dir = directory_of(path);
  if (!fs::is_directory(dir, ec)) {
    throw OutputError(fmt::format("{}: cannot create {} (directory {} does not exist)", path, what,
                                  dir.string()));
  }
  if (::access(dir.c_str(), W_OK | X_OK) != 0) {
    throw OutputError(
        fmt::format("{}: cannot create {} in {} ({})", path, what, dir.string(), system_error()));
  }
}

bool same_file(const std::string& a, const std::string& b) {
  struct stat sa {};
  struct stat sb {};
  const bool a_exists = ::stat(a.c_str(), &sa) == 0;
  const bool b_exists = ::stat(b.c_str(), &sb) == 0;
  if (a_exists && b_exists) return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
  if (a_exists != b_exists) return false;
  std::error_code ec_a;
  std::error_code ec_b;
  const auto ca = fs::weakly_canonical(fs::absolute(a), ec_a);
  const auto cb = fs::weakly_canonical(fs::absolute(b), ec_b);
  if (ec_a || ec_b) return fs::absolute(a).lexically_normal() == fs::absolute(b).lexically_normal();
  return ca == cb;
}

void check_outputs_distinct(std::span<const NamedFile> inputs, std::span<const NamedFile> outputs) {
  for (size_t i = 0; i < outputs.size(); ++i) {
    const auto& out = outputs[i];
    if (out.path.empty()) continue;
    for (const auto& in : inputs) {
      if (!in.path.empty() && same_file(out.path, in.path)) {
        throw InvalidArgument(
            "",
            fmt::format("{}: {} is the {} this run reads; it would be destroyed (choose another "
                        "output path)",
                        out.option, out.path, in.option));
      }
    }
    for (size_t j = 0; j < i; ++j) {
      if (!outputs[j].path.empty() && same_file(out.path, outputs[j].path)) {
        throw InvalidArgument(
            "", fmt::format("{}: {} is also given to {}; each output needs its own file",
                            out.option, out.path, outputs[j].option));
      }
    }
  }
}

}  // namespace flowlik
