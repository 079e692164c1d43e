// The JSON report of a scoring run; its schema is documented in docs/reference.md ("The report").
// Each section flowlik reads back (merge, score --baseline) is read here too, by the inverse of the
// function that writes it, so that writer and reader are one schema (tests/report_reader_test.cpp
// holds them to round trips).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "flowlik/run.h"
#include "io/dataset.h"
#include "likelihood/model/preprocessing.h"
#include "likelihood/model/velocity_field.h"
#include "likelihood/score.h"

namespace flowlik {

inline constexpr int kReportSchemaVersion = 1;

// The report's "metrics" and "samples" objects for a summary (also used when merging shards).
nlohmann::json metrics_json(const ScoreSummary& summary);
nlohmann::json samples_json(const ScoreSummary& summary);
// The report's "tool": flowlik, its version (this one's when empty) and the command.
nlohmann::json tool_json(const std::string& command, const std::string& version = "");
// JSON has no NaN: a quantity that does not exist (a standard error of one sample) is null.
nlohmann::json number_or_null(double value);
// A mean with its standard error, 95% interval and count, as every report writes one.
nlohmann::json mean_json(const MeanEstimate& m);
// Empty, or why the figure may not be the bound it is called: an importance-weighted bound over
// M >= 2 draws of Hutchinson estimates (trace: the run's estimator) is biased upward, the
// logmeanexp of noisy estimates exceeding that of the exact ones by about half their variance.
std::string bound_caveat(const Preprocessing& pre, Trace trace);
// How the raw data were mapped into the model's space, as the report states it (dim: the data's
// D, for the offset log_offset_nats).
nlohmann::json preprocessing_json(const Preprocessing& pre, int64_t dim);
// The prior N(0, scale^2 I) in words: "standard normal", "normal, scale 2".
std::string describe_prior(double scale);

class ReportReader;  // likelihood/report_reader.h

// The inverse of metrics_json and samples_json: the summary of a report's "samples" and "metrics".
ScoreSummary read_summary(const ReportReader& report);

// mean_json's inverse: the mean estimate at `key` ("metrics.bpd"); a null reads as NaN.
MeanEstimate read_mean(const ReportReader& report, const std::string& key);
// The report's "data" section, and its inverse.
nlohmann::json data_json(const RunReport::DataRecord& data);
RunReport::DataRecord read_data_record(const ReportReader& report);
// The levels K of discrete data at `key` (the contract's data.levels, the preprocessing's levels):
// from 2 to 256, as a manifest and --levels take them.
int64_t read_levels(const ReportReader& report, const std::string& key);
// preprocessing_json's inverse: the report's "preprocessing" (its caveat is the RunReport's).
Preprocessing read_preprocessing(const ReportReader& report);
// Shard::json's inverse: the report's "shard" of a run of n samples. Refuses a count or index
// that is no shard, and a block [first, end) other than the one its index names.
Shard read_shard(const ReportReader& report, int64_t n);

}  // namespace flowlik
