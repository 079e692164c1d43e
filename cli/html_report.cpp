#include "cli/html_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>

#include "cli/markup.h"
#include "flowlik/error.h"
#include "flowlik/output_file.h"
#include "flowlik/results.h"

namespace flowlik::cli {
namespace {

constexpr int kWidth = 640;
constexpr int kHeight = 240;
constexpr int kMargin = 40;

std::string axes(double x_lo, double x_hi, const std::string& x_label, const std::string& y_label) {
  return fmt::format(
      "<line x1='{m}' y1='{b}' x2='{r}' y2='{b}' stroke='#333'/><line x1='{m}' y1='{t}' x2='{m}' "
      "y2='{b}' "
      "stroke='#333'/><text x='{m}' y='{lb}' font-size='11'>{lo:.3g}</text><text x='{r}' y='{lb}' "
      "font-size='11' text-anchor='end'>{hi:.3g}</text><text x='{c}' y='{lb}' font-size='12' "
      "text-anchor='middle'>{xl}</text><text x='12' y='{cy}' font-size='12' text-anchor='middle' "
      "transform='rotate(-90 12 {cy})'>{yl}</text>",
      fmt::arg("m", kMargin), fmt::arg("b", kHeight - kMargin), fmt::arg("r", kWidth - 10),
      fmt::arg("t", 10), fmt::arg("lb", kHeight - kMargin + 16), fmt::arg("lo", x_lo),
      fmt::arg("hi", x_hi), fmt::arg("c", kWidth / 2), fmt::arg("xl", escape_markup(x_label)),
      fmt::arg("yl", escape_markup(y_label)), fmt::arg("cy", kHeight / 2));
}

std::string svg_histogram(const std::vector<double>& values, const std::string& x_label,
                          const std::string& css_class) {
  if (values.empty()) return "<p>no values</p>";
  constexpr int kBins = 30;
  double lo = *std::min_element(values.begin(), values.end());
  double hi = *std::max_element(values.begin(), values.end());
  if (hi <= lo) {
    lo -= 0.5;
    hi += 0.5;
  }
  std::vector<int> counts(kBins, 0);
  for (const double v : values) {
    counts[std::min(kBins - 1, static_cast<int>((v - lo) / (hi - lo) * kBins))]++;
  }
  const int top = *std::max_element(counts.begin(), counts.end());
  const double bar = static_cast<double>(kWidth - 10 - kMargin) / kBins;
  std::string svg =
      fmt::format("<svg class='{}' width='{}' height='{}' xmlns='http://www.w3.org/2000/svg'>",
                  css_class, kWidth, kHeight);
  for (int i = 0; i < kBins; ++i) {
    const double h = static_cast<double>(counts[i]) / top * (kHeight - kMargin - 10);
    svg += fmt::format(
        "<rect x='{:.1f}' y='{:.1f}' width='{:.1f}' height='{:.1f}' fill='#4a7ab5'><title>{}"
        "</title></rect>",
        kMargin + i * bar, kHeight - kMargin - h, bar - 1, h, counts[i]);
  }
  return svg + axes(lo, hi, x_label, "samples") + "</svg>";
}

std::string svg_trend(const std::vector<HistoryRow>& rows) {
  if (rows.empty()) return "<p>no history</p>";
  double lo = INFINITY, hi = -INFINITY;
  for (const auto& r : rows) {
    const double se = std::isfinite(r.bpd_stderr) ? r.bpd_stderr : 0.0;
    lo = std::min(lo, r.bpd_mean - 2 * se);
    hi = std::max(hi, r.bpd_mean + 2 * se);
  }
  if (hi <= lo) {
    lo -= 0.5;
    hi += 0.5;
  }
  const double step =
      rows.size() > 1 ? static_cast<double>(kWidth - 30 - kMargin) / (rows.size() - 1) : 0;
  auto y = [&](double v) {
    return kHeight - kMargin - (v - lo) / (hi - lo) * (kHeight - kMargin - 10);
  };
  std::string svg =
      fmt::format("<svg class='trend' width='{}' height='{}' xmlns='http://www.w3.org/2000/svg'>",
                  kWidth, kHeight);
  std::string line;
  for (size_t i = 0; i < rows.size(); ++i) {
    const double x = kMargin + 10 + i * step;
    const double se = std::isfinite(rows[i].bpd_stderr) ? rows[i].bpd_stderr : 0.0;
    svg += fmt::format(
        "<line x1='{x:.1f}' y1='{a:.1f}' x2='{x:.1f}' y2='{b:.1f}' stroke='#999'/>"
        "<circle cx='{x:.1f}' cy='{c:.1f}' r='3' fill='#c0392b'><title>{t} {m}: {v:.4f}"
        "</title></circle>",
        fmt::arg("x", x), fmt::arg("a", y(rows[i].bpd_mean - 2 * se)),
        fmt::arg("b", y(rows[i].bpd_mean + 2 * se)), fmt::arg("c", y(rows[i].bpd_mean)),
        fmt::arg("t", rows[i].time_utc), fmt::arg("m", escape_markup(rows[i].model_path)),
        fmt::arg("v", rows[i].bpd_mean));
    line += fmt::format("{}{:.1f},{:.1f}", i ? " " : "", x, y(rows[i].bpd_mean));
  }
  svg += fmt::format("<polyline points='{}' fill='none' stroke='#c0392b'/>", line);
  svg += fmt::format(
      "<text x='{}' y='{:.1f}' font-size='11' text-anchor='end'>{:.3g}</text>"
      "<text x='{}' y='{:.1f}' font-size='11' text-anchor='end'>{:.3g}</text>",
      kMargin - 2, y(lo), lo, kMargin - 2, y(hi) + 8, hi);
  return svg +
         axes(1, static_cast<double>(rows.size()), "run (oldest to newest); bars: +-2 stderr",
              "bpd") +
         "</svg>";
}

}  // namespace

void write_html_report(const std::string& path, const std::vector<const RunReport*>& models,
                       const std::vector<PairedDifference>& paired,
                       const std::vector<std::vector<double>>& paired_values,
                       const std::vector<GateResult>& gates,
                       const std::vector<HistoryRow>& history) {
  std::string html =
      "<!DOCTYPE html><html><head><meta charset='utf-8'><title>flowlik report</title><style>"
      "body{font-family:sans-serif;margin:2em;max-width:60em}table{border-collapse:collapse}"
      "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f4f4f4}"
      ".fail{color:#c0392b;font-weight:bold}.pass{color:#27ae60}</style></head><body><h1>flowlik</"
      "h1>";
  html +=
      "<table><tr><th>#</th><th>model</th><th>bpd</th><th>± stderr</th><th>log-likelihood</th>"
      "<th>samples ok</th><th>NFE mean</th></tr>";
  for (size_t i = 0; i < models.size(); ++i) {
    const auto& s = models[i]->summary;
    html += fmt::format(
        "<tr><td>{}</td><td>{}</td><td>{:.4f}</td><td>{:.4f}</td><td>{:.3f}</td><td>{}/{}</td>"
        "<td>{:.1f}</td></tr>",
        i, escape_markup(models[i]->model.path), s.bpd.mean, s.bpd.std_error, s.log_likelihood.mean,
        s.ok, s.total, s.nfe_mean);
  }
  html += "</table><p>Standard error by source:</p><ul>";
  for (size_t i = 0; i < models.size(); ++i) {
    html += fmt::format("<li>{}: {}</li>", i,
                        escape_markup(describe_error_sources(models[i]->summary)));
  }
  html += "</ul>";
  for (size_t i = 0; i < models.size(); ++i) {
    if (models[i]->check_solve) {
      html += fmt::format("<p>Solve error of {}: {}</p>", i,
                          escape_markup(describe(*models[i]->check_solve)));
    }
  }
  for (const auto& g : gates) {
    html +=
        fmt::format("<p class='{}'>{}</p>", g.passed ? "pass" : "fail", escape_markup(g.message));
  }
  for (const auto& m : models) {
    std::vector<double> bpd;
    for (const auto& r : m->samples) {
      if (r.status == SampleStatus::kOk) bpd.push_back(r.bpd);
    }
    html += fmt::format("<h2>Per-sample bits/dim: {}</h2>", escape_markup(m->model.path));
    html += svg_histogram(bpd, "bits per dimension", "histogram");
  }
  for (size_t i = 0; i < paired.size(); ++i) {
    html += fmt::format(
        "<h2>Paired difference, model {} minus model {}</h2><p>mean {:+.5f} bpd, paired "
        "stderr {:.5f}</p>",
        paired[i].b, paired[i].a, paired[i].bpd_diff.mean, paired[i].bpd_diff.std_error);
    html += svg_histogram(paired_values[i], "Δ bits per dimension", "paired");
  }
  if (!history.empty()) {
    html += "<h2>bits/dim over time</h2>" + svg_trend(history);
  }
  html += "</body></html>\n";
  write_file_atomically(path, html);
}

}  // namespace flowlik::cli
