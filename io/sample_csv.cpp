#include "io/sample_csv.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "flowlik/error.h"
#include "flowlik/output_file.h"
#include "flowlik/text_number.h"
#include "io/file_digest.h"
#include "io/json_depth.h"

namespace flowlik {
namespace {

constexpr std::string_view kIdentityPrefix = "# flowlik-run ";
constexpr const char* kHeader =
    "index,log_likelihood,bpd,nfe,status,model_log_likelihood,log_det,prior_log_density,"
    "estimator_stderr,dequant_stderr,draws,detail";
// The header of flowlik 0.1, read (by merge and --resume of old journals' rows) but no longer
// written.
constexpr const char* kHeaderV1 =
    "index,log_likelihood,bpd,nfe,status,model_log_likelihood,log_det,prior_log_density,"
    "estimator_stderr,detail";

// Per-draw values, ';'-separated in one field.
std::string csv_draws(const std::vector<double>& values) {
  std::string out;
  for (size_t m = 0; m < values.size(); ++m) {
    if (m > 0) out += ';';
    out += fmt::format("{}", values[m]);
  }
  return out;
}

// Shortest text that reads back as the same double; empty for a value that does not exist.
std::string csv_number(double value) {
  return std::isnan(value) ? std::string() : fmt::format("{}", value);
}

// RFC 4180: quote a field holding a comma, quote or newline, doubling inner quotes.
std::string csv_text(std::string text) {
  std::replace(text.begin(), text.end(), '\n', ' ');  // one row per line, always
  if (text.find_first_of(",\"") == std::string::npos) return text;
  std::string quoted = "\"";
  for (const char c : text) quoted += (c == '"') ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}

std::vector<std::string> split_csv_line(const std::string& line) {
  std::vector<std::string> fields(1);
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        fields.back() += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        fields.back() += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      fields.emplace_back();
    } else {
      fields.back() += c;
    }
  }
  return fields;
}

}  // namespace

std::string journal_path(const std::string& path) { return path + ".partial"; }

std::string identity_path(const std::string& path) { return path + ".run.json"; }

JournalLock::JournalLock(const std::string& path) {
  const auto journal = journal_path(path);
  // The run holding the lock renames its journal into place when it finishes: a lock taken on the
  // file it renamed would lock nothing, so the path is checked to still name the locked file.
  for (int attempt = 0; attempt < 100; ++attempt) {
    int fd = ::open(journal.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    const bool created = fd >= 0;
    if (fd < 0 && errno == EEXIST) fd = ::open(journal.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) {
      throw OutputError(
          fmt::format("{}: cannot open per-sample file ({})", journal, std::strerror(errno)));
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int error = errno;
      ::close(fd);
      if (error == EWOULDBLOCK) {
        throw OutputError(fmt::format(
            "{}: another flowlik run is writing this per-sample file (its journal {} is locked); "
            "wait for it to finish, or give this run another --per-sample file",
            path, journal));
      }
      throw OutputError(fmt::format("{}: cannot lock ({})", journal, std::strerror(error)));
    }
    struct stat held {};
    struct stat named {};
    if (::fstat(fd, &held) == 0 && ::stat(journal.c_str(), &named) == 0 &&
        held.st_ino == named.st_ino && held.st_dev == named.st_dev) {
      fd_ = fd;
      journal_ = journal;
      created_ = created;
      was_empty_ = held.st_size == 0;
      return;
    }
    ::close(fd);  // renamed away while we waited for it: take the new one
  }
  throw OutputError(fmt::format("{}: cannot lock: it keeps being replaced", journal));
}

JournalLock::~JournalLock() {
  if (fd_ < 0) return;
  // A journal this lock created and nothing wrote to (the run was refused before its first line)
  // is not left behind; one renamed into place is no longer at the path.
  struct stat held {};
  struct stat named {};
  if (created_ && ::fstat(fd_, &held) == 0 && held.st_size == 0 &&
      ::stat(journal_.c_str(), &named) == 0 && held.st_ino == named.st_ino &&
      held.st_dev == named.st_dev) {
    ::unlink(journal_.c_str());
  }
  ::close(fd_);  // releases the lock
}

SampleCsvWriter::SampleCsvWriter(const std::string& path, const nlohmann::json& identity,
                                 bool append)
    : path_(path),
      journal_(journal_path(path)),
      out_(journal_, append ? std::ios::app : std::ios::trunc) {
  if (!out_) {
    throw OutputError(
        fmt::format("{}: cannot open per-sample file ({})", journal_, std::strerror(errno)));
  }
  if (!append) {
    out_ << kIdentityPrefix << identity.dump() << '\n' << kHeader << '\n';
    out_.flush();
    if (!out_)
      throw OutputError(fmt::format("{}: write failed ({})", journal_, std::strerror(errno)));
  }
}

void SampleCsvWriter::commit() {
  out_.close();
  if (!out_)
    throw OutputError(fmt::format("{}: write failed ({})", journal_, std::strerror(errno)));
  std::ifstream in(journal_, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  if (!in)
    throw OutputError(fmt::format("{}: cannot read back ({})", journal_, std::strerror(errno)));
  const std::string text = buffer.str();
  // The journal's first line is its identity (written by this writer, or by the run it resumes).
  const auto first_end = text.find('\n');
  if (!text.starts_with(kIdentityPrefix) || first_end == std::string::npos)
    throw OutputError(fmt::format("{}: the journal lost its identity line", journal_));
  const std::string_view rows = std::string_view(text).substr(first_end + 1);
  const nlohmann::json sidecar = {
      {"flowlik_run", nlohmann::json::parse(
                          text.substr(kIdentityPrefix.size(), first_end - kIdentityPrefix.size()))},
      {"per_sample_file", std::filesystem::path(path_).filename().string()},
      {"per_sample_sha256", sha256_bytes(rows)}};
  // The identity first: a run killed between the two writes leaves an identity whose digest does
  // not match the rows beside it, which recorded_identity() refuses, and its journal to resume.
  write_file_atomically(identity_path(path_), sidecar.dump(2) + "\n");
  write_file_atomically(path_, rows);
  std::error_code ec;
  std::filesystem::remove(journal_, ec);
  if (ec) throw OutputError(fmt::format("{}: cannot remove ({})", journal_, ec.message()));
}

void SampleCsvWriter::write(const SampleResult& r) {
  out_ << r.index << ',' << csv_number(r.log_likelihood) << ',' << csv_number(r.bpd) << ',' << r.nfe
       << ',' << to_string(r.status) << ',' << csv_number(r.model_log_likelihood) << ','
       << csv_number(r.log_det) << ',' << csv_number(r.prior_log_density) << ','
       << csv_number(r.estimator_std_error) << ',' << csv_number(r.dequant_std_error) << ','
       << csv_draws(r.draw_log_likelihoods) << ',' << csv_text(r.detail) << '\n';
  out_.flush();
  if (!out_)
    throw OutputError(fmt::format("{}: write failed ({})", journal_, std::strerror(errno)));
}

SampleCsv read_sample_csv(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw DataError(
        fmt::format("{}: cannot open per-sample file ({})", path, std::strerror(errno)));
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  SampleCsv csv;
  size_t pos = 0;
  int64_t line_number = 0;
  int64_t header_line = 1;
  size_t fields = 12;
  auto fail = [&](const std::string& what) {
    throw DataError(fmt::format("{}: line {}: {}", path, line_number, what));
  };
  while (pos < text.size()) {
    const auto end = text.find('\n', pos);
    ++line_number;
    if (end == std::string::npos) {  // cut off mid-write
      csv.partial_tail = true;
      break;
    }
    const std::string line = text.substr(pos, end - pos);
    if (line_number == 1 && line.starts_with(kIdentityPrefix)) {
      if (json_nesting_depth(line) > kMaxJsonDepth) fail("the run identity nests too deep");
      try {
        csv.identity = nlohmann::json::parse(line.substr(kIdentityPrefix.size()));
      } catch (const nlohmann::json::exception&) {
        fail("the run identity is not valid JSON");
      }
      if (!csv.identity->is_object()) fail("the run identity is not a JSON object");
      header_line = 2;
    } else if (line_number == header_line) {
      if (line == kHeaderV1) {
        fields = 10;
      } else if (line != kHeader) {
        fail(fmt::format("not a flowlik per-sample header (expected '{}')", kHeader));
      }
      csv.has_header = true;
    } else {
      const auto f = split_csv_line(line);
      if (f.size() != fields) fail(fmt::format("expected {} fields, found {}", fields, f.size()));
      auto number = [&](const std::string& s, const char* column) -> double {
        if (s.empty()) return std::nan("");
        double v = NAN;
        const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (ec != std::errc() || p != s.data() + s.size())
          fail(fmt::format("{} '{}' is not a number", column, s));
        return v;
      };
      auto integer = [&](const std::string& s, const char* column) {
        int64_t v = 0;
        const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (s.empty() || ec != std::errc() || p != s.data() + s.size() || v < 0) {
          fail(fmt::format("{} '{}' is not a non-negative integer", column, s));
        }
        return v;
      };
      SampleResult r;
      r.index = integer(f[0], "index");
      r.log_likelihood = number(f[1], "log_likelihood");
      r.bpd = number(f[2], "bpd");
      r.nfe = integer(f[3], "nfe");
      if (f[4] == "ok") {
        r.status = SampleStatus::kOk;
      } else if (f[4] == "failed") {
        r.status = SampleStatus::kFailed;
      } else if (f[4] == "nonfinite") {
        r.status = SampleStatus::kNonFinite;
      } else {
        fail(fmt::format("unknown status '{}' (valid: ok, failed, nonfinite)", f[4]));
      }
      r.model_log_likelihood = number(f[5], "model_log_likelihood");
      r.log_det = number(f[6], "log_det");
      r.prior_log_density = number(f[7], "prior_log_density");
      r.estimator_std_error = number(f[8], "estimator_stderr");
      if (fields == 12) {
        r.dequant_std_error = number(f[9], "dequant_stderr");
        if (!f[10].empty()) {
          for (const auto& item : split_on(f[10], ';')) {
            r.draw_log_likelihoods.push_back(number(item, "draws"));
          }
        }
      }
      r.detail = f[fields - 1];
      if (r.status == SampleStatus::kOk &&
          !(std::isfinite(r.log_likelihood) && std::isfinite(r.bpd))) {
        fail("status ok without a finite log_likelihood and bpd");
      }
      csv.rows.push_back(r);
    }
    pos = end + 1;
    csv.complete_bytes = pos;
  }
  if (line_number < header_line) fail("no header line");
  return csv;
}

std::optional<nlohmann::json> recorded_identity(const std::string& path, const SampleCsv& csv) {
  if (csv.identity) return csv.identity;
  const auto sidecar = identity_path(path);
  std::error_code ec;
  if (!std::filesystem::exists(sidecar, ec)) return std::nullopt;
  constexpr uintmax_t kMaxBytes = 1 << 20;
  if (!std::filesystem::is_regular_file(sidecar, ec) ||
      std::filesystem::file_size(sidecar, ec) > kMaxBytes) {
    throw DataError(
        fmt::format("{}: not a run identity (a regular file of at most 1 MB)", sidecar));
  }
  std::ifstream in(sidecar, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  const auto text = buffer.str();
  nlohmann::json json;
  if (json_nesting_depth(text) <= kMaxJsonDepth) {
    try {
      json = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception&) {
    }
  }
  if (!json.is_object() || !json.contains("flowlik_run") || !json["flowlik_run"].is_object() ||
      !json.contains("per_sample_sha256") || !json["per_sample_sha256"].is_string()) {
    throw DataError(fmt::format(
        "{}: not a run identity (a JSON object with flowlik_run and per_sample_sha256)", sidecar));
  }
  if (json["per_sample_sha256"].get<std::string>() != sha256_file(path)) {
    throw DataError(fmt::format(
        "{}: describes other rows than {} (its SHA-256 differs: a run replacing the file was "
        "interrupted, or the file was edited); its identity cannot vouch for these rows",
        sidecar, path));
  }
  return json["flowlik_run"];
}

void continue_in_journal(const std::string& path, const SampleCsv& csv,
                         const nlohmann::json& identity) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  auto text = buffer.str();
  text.resize(std::min<size_t>(text.size(), csv.complete_bytes));
  const auto journal = journal_path(path);
  // Truncated, not replaced: the journal is the file the caller's lock holds.
  std::ofstream out(journal, std::ios::binary | std::ios::trunc);
  if (!csv.identity) out << kIdentityPrefix << identity.dump() << '\n';
  out << text;
  out.close();
  if (!in || !out)
    throw OutputError(fmt::format("{}: cannot copy to {} to continue it", path, journal));
}

}  // namespace flowlik
