#include "cli/history_command.h"

#include <fmt/format.h>

#include "cli/html_report.h"
#include "flowlik/history.h"
#include "flowlik/output_file.h"

namespace flowlik::cli {

CLI::App* add_history_command(CLI::App& app, HistoryArguments& a) {
  auto* cmd = app.add_subcommand("history", "list and plot the results appended with --history");
  cmd->add_option("database", a.database, "SQLite history file")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--model", a.model, "only this model (path or sha256)");
  cmd->add_option("--html", a.html, "write an HTML page with the trend plot here");
  cmd->add_flag("--json", a.json, "print the rows as JSON");
  return cmd;
}

int run_history(const HistoryArguments& args) {
  const std::vector<NamedFile> inputs = {{"database", args.database}};
  const std::vector<NamedFile> outputs = {{"--html", args.html}};
  check_outputs_distinct(inputs, outputs);
  const auto rows = read_history(args.database, args.model);
  if (args.json) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& r : rows) {
      out.push_back({{"id", r.id},
                     {"time_utc", r.time_utc},
                     {"command", r.command},
                     {"model", r.model_path},
                     {"model_sha256", r.model_sha256},
                     {"data", r.data_path},
                     {"bpd", r.bpd_mean},
                     {"bpd_stderr", std::isfinite(r.bpd_stderr) ? nlohmann::json(r.bpd_stderr)
                                                                : nlohmann::json()},
                     {"log_likelihood", r.log_likelihood_mean},
                     {"samples_ok", r.samples_ok},
                     {"samples_total", r.samples_total}});
    }
    fmt::print("{}\n", out.dump(2));
  } else {
    fmt::print("{:>5}  {:<20}  {:<36}  {:>9}  {:>8}  {:>9}\n", "id", "time (UTC)", "model", "bpd",
               "stderr", "samples");
    for (const auto& r : rows) {
      fmt::print("{:>5}  {:<20}  {:<36}  {:>9.4f}  {:>8.4f}  {:>4}/{:<4}\n", r.id, r.time_utc,
                 r.model_path, r.bpd_mean, r.bpd_stderr, r.samples_ok, r.samples_total);
    }
  }
  if (!args.html.empty()) write_html_report(args.html, {}, {}, {}, {}, rows);
  return 0;
}

}  // namespace flowlik::cli
