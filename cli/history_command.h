// `flowlik history FILE.db`: the results appended by --history, as a table, JSON or an HTML trend
// plot.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace flowlik::cli {

struct HistoryArguments {
  std::string database;
  std::string model;  // path or sha256 to keep
  std::string html;
  bool json = false;
};

CLI::App* add_history_command(CLI::App& app, HistoryArguments& args);
int run_history(const HistoryArguments& args);

}  // namespace flowlik::cli
