// flowlik._flowlik: the program's commands as functions of a Python process, over tensors already
// in memory (python/flowlik/_api.py gives them their Python form). Each takes the command's options
// as the program does, parsed by the program's own option definitions (the same names, defaults,
// checks and messages), runs the same code with the GIL released, and returns the report.
#include <pybind11/functional.h>
#include <pybind11/stl.h>
#include <torch/python.h>  // pybind11, and the casters between torch.Tensor and torch::Tensor

#include <optional>
#include <string>
#include <vector>

#include "cli/compare_command.h"
#include "cli/exit_codes.h"
#include "cli/inspect_command.h"
#include "cli/score_command.h"
#include "flowlik/run.h"

namespace py = pybind11;

namespace flowlik::python {
namespace {

// `argv` (the command's options) parsed into `args` by the command's definitions. With the data
// given as a tensor, --data is not required.
template <typename Arguments, typename Add>
void parse(const char* command, Add add, Arguments& args, const std::vector<std::string>& argv,
           bool data_given) {
  CLI::App app{"flowlik"};
  auto* cmd = add(app, args);
  if (data_given) cmd->get_option("--data")->required(false);
  std::vector<const char*> words = {"flowlik", command};
  for (const auto& word : argv) words.push_back(word.c_str());
  try {
    app.parse(static_cast<int>(words.size()), words.data());
  } catch (const CLI::ParseError& e) {
    throw InvalidArgument("", e.what());
  }
}

// The data as the caller gave it in memory; nullopt: by --data in argv.
std::optional<Data> given_data(const std::optional<torch::Tensor>& values,
                               const std::optional<torch::Tensor>& labels,
                               const std::string& name) {
  if (!values) return std::nullopt;
  Data data;
  data.values = *values;
  if (labels) data.labels = *labels;
  data.name = name;
  return data;
}

// progress(done, total) from a thread without the GIL.
cli::ProgressSink progress_sink(const py::object& progress) {
  if (progress.is_none()) return {};
  return [progress](int64_t done, int64_t total) {
    py::gil_scoped_acquire gil;
    progress(done, total);
  };
}

// Each sample's values as columns, for numpy arrays on the Python side.
py::dict columns(const RunReport& report) {
  std::vector<double> log_likelihood;
  std::vector<double> bpd;
  std::vector<int64_t> nfe;
  std::vector<int64_t> index;
  std::vector<std::string> status;
  for (const auto& s : report.samples) {
    const bool ok = s.status == SampleStatus::kOk;
    log_likelihood.push_back(ok ? s.log_likelihood : NAN);
    bpd.push_back(ok ? s.bpd : NAN);
    nfe.push_back(s.nfe);
    index.push_back(s.index);
    status.push_back(to_string(s.status));
  }
  py::dict out;
  out["log_likelihood"] = log_likelihood;
  out["bpd"] = bpd;
  out["nfe"] = nfe;
  out["index"] = index;
  out["status"] = status;
  return out;
}

py::tuple score(const std::vector<std::string>& argv, const std::optional<torch::Tensor>& values,
                const std::optional<torch::Tensor>& labels, const std::string& name,
                const py::object& progress) {
  cli::ScoreCommandArguments args;
  parse("score", cli::add_score_command, args, argv, values.has_value());
  const auto data = given_data(values, labels, name);
  const auto sink = progress_sink(progress);
  cli::ScoreOutcome outcome;
  {
    py::gil_scoped_release release;
    outcome = cli::execute_score(args, data ? &*data : nullptr, sink);
  }
  return py::make_tuple(columns(outcome.report), to_json(outcome.report).dump(), outcome.exit_code);
}

py::tuple compare(const std::vector<std::string>& argv, const std::optional<torch::Tensor>& values,
                  const std::optional<torch::Tensor>& labels, const std::string& name,
                  const py::object& progress) {
  cli::CompareArguments args;
  parse("compare", cli::add_compare_command, args, argv, values.has_value());
  const auto data = given_data(values, labels, name);
  const auto sink = progress_sink(progress);
  cli::CompareOutcome outcome;
  {
    py::gil_scoped_release release;
    outcome = cli::execute_compare(args, data ? &*data : nullptr, sink);
  }
  py::list models;
  for (const auto& m : outcome.report.models) models.append(columns(m));
  return py::make_tuple(models, to_json(outcome.report).dump(), outcome.exit_code);
}

py::tuple inspect(const std::vector<std::string>& argv) {
  cli::InspectArguments args;
  parse("inspect", cli::add_inspect_command, args, argv, false);
  cli::InspectOutcome outcome;
  {
    py::gil_scoped_release release;
    outcome = cli::execute_inspect(args);
  }
  return py::make_tuple(outcome.report.dump(), outcome.text, outcome.exit_code);
}

// flowlik::Error as the exception of flowlik.errors of its kind, with the message the program
// prints.
void translate_errors() {
  py::register_exception_translator([](std::exception_ptr pointer) {
    try {
      if (pointer) std::rethrow_exception(pointer);
    } catch (const Error& e) {
      const char* kind = "Error";
      switch (e.kind()) {
        case ErrorKind::kInvalidArgument:
          kind = "InvalidArgument";
          break;
        case ErrorKind::kData:
          kind = "DataError";
          break;
        case ErrorKind::kModel:
          kind = "ModelError";
          break;
        case ErrorKind::kOutput:
          kind = "OutputError";
          break;
        case ErrorKind::kNoSampleScored:
          kind = "NoSampleScored";
          break;
        case ErrorKind::kIntegration:
          kind = "IntegrationError";
          break;
      }
      const auto type = py::module_::import("flowlik.errors").attr(kind);
      PyErr_SetString(type.ptr(), e.what());
    }
  });
}

}  // namespace
}  // namespace flowlik::python

PYBIND11_MODULE(_flowlik, m) {
  using namespace flowlik::python;
  m.doc() = "flowlik's commands over tensors in memory; use the flowlik package, not this module";
  m.def("version", &flowlik::version);
  m.def("score", &score, py::arg("argv"), py::arg("values"), py::arg("labels"), py::arg("name"),
        py::arg("progress"));
  m.def("compare", &compare, py::arg("argv"), py::arg("values"), py::arg("labels"), py::arg("name"),
        py::arg("progress"));
  m.def("inspect", &inspect, py::arg("argv"));
  translate_errors();
}
