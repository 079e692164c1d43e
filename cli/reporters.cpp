#include "cli/reporters.h"

#include "cli/html_report.h"
#include "flowlik/history.h"

namespace flowlik::cli {
namespace {

class JsonReporter final : public Reporter {
 public:
  explicit JsonReporter(std::string path) : path_(std::move(path)) {}
  void write(const RunOutcome& outcome) const override { write_report(path_, outcome.report); }

 private:
  std::string path_;
};

class HistoryReporter final : public Reporter {
 public:
  HistoryReporter(std::string path, std::string command)
      : path_(std::move(path)), command_(std::move(command)) {}
  void write(const RunOutcome& outcome) const override {
    for (const auto& row : outcome.history_rows) append_history(path_, command_, row);
  }

 private:
  std::string path_;
  std::string command_;
};

class HtmlReporter final : public Reporter {
 public:
  HtmlReporter(std::string path, std::string history)
      : path_(std::move(path)), history_(std::move(history)) {}
  void write(const RunOutcome& outcome) const override {
    std::vector<std::vector<double>> paired_values;
    for (const auto& p : outcome.paired) paired_values.push_back(p.bpd_values);
    const auto history = history_.empty() ? std::vector<HistoryRow>{}
                                          : read_history(history_, outcome.history_model);
    write_html_report(path_, outcome.models, outcome.paired, paired_values, outcome.gates, history);
  }

 private:
  std::string path_;
  std::string history_;
};

class JunitReporter final : public Reporter {
 public:
  explicit JunitReporter(std::string path) : path_(std::move(path)) {}
  void write(const RunOutcome& outcome) const override { write_junit(path_, outcome.gates); }

 private:
  std::string path_;
};

class MarkdownReporter final : public Reporter {
 public:
  explicit MarkdownReporter(std::string path) : path_(std::move(path)) {}
  void write(const RunOutcome& outcome) const override {
    write_markdown(path_, outcome.models, outcome.paired, outcome.gates);
  }

 private:
  std::string path_;
};

}  // namespace

std::vector<std::unique_ptr<Reporter>> make_reporters(const ScoreArguments& scoring,
                                                      const GateArguments& gate,
                                                      const std::string& command) {
  std::vector<std::unique_ptr<Reporter>> reporters;
  if (!scoring.output.empty()) reporters.push_back(std::make_unique<JsonReporter>(scoring.output));
  if (!scoring.history.empty())
    reporters.push_back(std::make_unique<HistoryReporter>(scoring.history, command));
  if (!scoring.html.empty())
    reporters.push_back(std::make_unique<HtmlReporter>(scoring.html, scoring.history));
  if (!gate.junit.empty()) reporters.push_back(std::make_unique<JunitReporter>(gate.junit));
  if (!gate.markdown.empty())
    reporters.push_back(std::make_unique<MarkdownReporter>(gate.markdown));
  return reporters;
}

}  // namespace flowlik::cli
