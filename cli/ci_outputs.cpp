#include "cli/ci_outputs.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "cli/exit_codes.h"
#include "cli/markup.h"
#include "cli/number_options.h"
#include "flowlik/error.h"
#include "flowlik/output_file.h"

namespace flowlik::cli {

void add_gate_options(CLI::App& cmd, GateArguments& a, const std::string& limit_help) {
  const std::string group = "Regression gate (nightly CI)";
  cmd.add_option("--max-regression", a.max_regression, limit_help)
      ->check(finite_number())
      ->group(group);
  cmd.add_option("--gate-rule", a.rule, "mean, or significant (95% lower bound over the limit)")
      ->capture_default_str()
      ->group(group);
  cmd.add_option("--junit", a.junit, "write the gates as JUnit XML here")->group(group);
  cmd.add_option("--markdown", a.markdown, "write a Markdown summary here")->group(group);
}

int gates_exit_code(const std::vector<GateResult>& gates) {
  const bool failed = std::ranges::any_of(gates, [](const GateResult& g) { return !g.passed; });
  return static_cast<int>(failed ? ExitCode::kGateFailed : ExitCode::kOk);
}

void write_junit(const std::string& path, const std::vector<GateResult>& gates) {
  int failures = 0;
  for (const auto& g : gates) failures += g.passed ? 0 : 1;
  std::string xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  xml += fmt::format("<testsuites name=\"flowlik\" tests=\"{}\" failures=\"{}\">\n", gates.size(),
                     failures);
  xml += fmt::format(
      "  <testsuite name=\"flowlik.regression\" tests=\"{}\" failures=\"{}\" errors=\"0\">\n",
      gates.size(), failures);
  for (const auto& g : gates) {
    xml += fmt::format("    <testcase classname=\"flowlik.regression\" name=\"{}\">\n",
                       escape_markup(g.name));
    if (!g.passed) {
      xml += fmt::format("      <failure message=\"{}\" type=\"regression\"/>\n",
                         escape_markup(g.message));
    }
    xml += fmt::format("      <system-out>{}</system-out>\n", escape_markup(g.message));
    xml += "    </testcase>\n";
  }
  xml += "  </testsuite>\n</testsuites>\n";
  write_file_atomically(path, xml);
}

void write_markdown(const std::string& path, const std::vector<const RunReport*>& models,
                    const std::vector<PairedDifference>& paired,
                    const std::vector<GateResult>& gates) {
  std::string md = "## flowlik\n\n";
  md += "| # | model | bpd | ± stderr | log-likelihood (nats) | samples ok | NFE mean |\n";
  md += "|---|---|---|---|---|---|---|\n";
  for (size_t i = 0; i < models.size(); ++i) {
    const auto& s = models[i]->summary;
    md += fmt::format("| {} | `{}` | {:.4f} | {:.4f} | {:.3f} | {}/{} | {:.1f} |\n", i,
                      models[i]->model.path, s.bpd.mean, s.bpd.std_error, s.log_likelihood.mean,
                      s.ok, s.total, s.nfe_mean);
  }
  md += "\nStandard error by source:\n\n";
  for (size_t i = 0; i < models.size(); ++i) {
    md += fmt::format("- {}: {}\n", i, describe_error_sources(models[i]->summary));
  }
  for (size_t i = 0; i < models.size(); ++i) {
    if (models[i]->check_solve)
      md += fmt::format("\nSolve error of {}: {}\n", i, describe(*models[i]->check_solve));
  }
  if (!paired.empty()) {
    md +=
        "\n| pair | Δ bpd (b − a) | ± paired stderr | 95% interval | n |\n|---|---|---|---|---|\n";
    for (const auto& p : paired) {
      md += fmt::format("| {} → {} | {:+.4f} | {:.4f} | [{:+.4f}, {:+.4f}] | {} |\n", p.a, p.b,
                        p.bpd_diff.mean, p.bpd_diff.std_error, p.bpd_diff.ci_low,
                        p.bpd_diff.ci_high, p.bpd_diff.count);
    }
  }
  if (!gates.empty()) {
    md += "\n";
    for (const auto& g : gates) md += fmt::format("- {} {}\n", g.passed ? "✅" : "❌", g.message);
  }
  write_file_atomically(path, md);
}

}  // namespace flowlik::cli
