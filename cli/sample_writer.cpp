#include "cli/sample_writer.h"

#include <fmt/format.h>

#include <cerrno>
#include <cmath>
#include <cstring>

#include "likelihood/error.h"

namespace flowlik::cli {
namespace {

// Shortest text that reads back as the same double; empty for a value that does not exist.
std::string csv_number(double value) {
  return std::isnan(value) ? std::string() : fmt::format("{}", value);
}

// RFC 4180: quote a field holding a comma, quote or newline, doubling inner quotes.
std::string csv_text(const std::string& text) {
  if (text.find_first_of(",\"\n") == std::string::npos) return text;
  std::string quoted = "\"";
  for (const char c : text) quoted += (c == '"') ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}

}  // namespace

SampleCsvWriter::SampleCsvWriter(const std::string& path) : path_(path), out_(path) {
  if (!out_) {
    throw OutputError(fmt::format("{}: cannot create per-sample file ({})", path, std::strerror(errno)));
  }
  out_ << "index,log_likelihood,bpd,nfe,status,model_log_likelihood,log_det,prior_log_density,"
          "estimator_stderr,detail\n";
}

void SampleCsvWriter::write(const SampleResult& r) {
  out_ << r.index << ',' << csv_number(r.log_likelihood) << ',' << csv_number(r.bpd) << ',' << r.nfe
       << ',' << to_string(r.status) << ',' << csv_number(r.model_log_likelihood) << ','
       << csv_number(r.log_det) << ',' << csv_number(r.prior_log_density) << ','
       << csv_number(r.estimator_std_error) << ',' << csv_text(r.detail) << '\n';
  out_.flush();
  if (!out_) throw OutputError(fmt::format("{}: write failed ({})", path_, std::strerror(errno)));
}

}  // namespace flowlik::cli
