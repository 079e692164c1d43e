#include "likelihood/model/contract.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <set>
#include <utility>

#include "flowlik/error.h"

namespace flowlik {
namespace {

const std::vector<std::string> kManifestFields = {
    "signature", "time_input", "time", "parameterization", "schedule", "time_range",
    "prior",     "shape",      "data", "conditioning"};

// A manifest field being read, and how to complain about it: a model error that names the manifest
// and the field (the options are values, checked where they are given).
class Origin {
 public:
  Origin(std::string field, std::string source)
      : field_(std::move(field)), source_(std::move(source)) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw ModelError(fmt::format("{}: field '{}': {}", source_, field_, what));
  }

 private:
  std::string field_;
  std::string source_;
};

// A manifest value given in the options' text form: returns the text.
std::string manifest_text(const nlohmann::json& value, const Origin& origin) {
  if (!value.is_string()) origin.fail(fmt::format("expected a string, got {}", value.dump()));
  return value.get<std::string>();
}

// The options' parser applied to a manifest's text, its complaint turned into the manifest's.
template <typename Parse>
auto parse_text(const std::string& text, const Origin& origin, Parse parse) {
  try {
    return parse(text);
  } catch (const InvalidArgument& e) {
    origin.fail(e.reason());
  }
}

Schedule schedule_from_json(const nlohmann::json& value, const Origin& origin) {
  if (value.is_string()) return parse_text(value.get<std::string>(), origin, parse_schedule);
  if (!value.is_object() || !value.contains("name") || !value["name"].is_string()) {
    origin.fail(fmt::format(
        "expected a string like \"vp:0.1,20\" or an object with a \"name\", got {}", value.dump()));
  }
  // The object form names the parameters; it is turned into the text form and checked by the same
  // parser. Parameters are all given or all left to their defaults, and no other key is accepted: a
  // misspelt key silently ignored would change the number.
  const auto name = value["name"].get<std::string>();
  static const std::map<std::string, std::vector<std::string>> kParameters = {
      {"linear", {"sigma_min"}},
      {"vp", {"beta_min", "beta_max"}},
      {"cosine", {"offset"}},
      {"ve", {"sigma_min", "sigma_max"}}};
  const auto known = kParameters.find(name);
  if (known == kParameters.end()) {
    origin.fail(fmt::format("unknown schedule '{}' (valid: linear, vp, cosine, ve)", name));
  }
  std::vector<std::string> numbers;
  for (const auto& [key, v] : value.items()) {
    if (key == "name") continue;
    if (std::find(known->second.begin(), known->second.end(), key) == known->second.end()) {
      origin.fail(fmt::format("'{}' is not a parameter of schedule '{}' (valid: {})", key, name,
                              fmt::join(known->second, ", ")));
    }
  }
  for (const auto& key : known->second) {
    if (!value.contains(key)) continue;
    if (!value[key].is_number()) origin.fail(fmt::format("'{}' must be a number", key));
    numbers.push_back(fmt::format("{}", value[key].get<double>()));
  }
  if (!numbers.empty() && numbers.size() != known->second.size()) {
    origin.fail(
        fmt::format("schedule '{}' takes all of {} or none", name, fmt::join(known->second, ", ")));
  }
  const std::string text =
      numbers.empty() ? name : name + ":" + fmt::format("{}", fmt::join(numbers, ","));
  return parse_text(text, origin, parse_schedule);
}

TimeRange time_range_from_json(const nlohmann::json& v, const Origin& origin) {
  if (!v.is_array()) return parse_text(manifest_text(v, origin), origin, parse_time_range);
  if (v.size() != 2 || !v[0].is_number() || !v[1].is_number()) {
    origin.fail(fmt::format("expected [LO, HI], got {}", v.dump()));
  }
  return {v[0].get<double>(), v[1].get<double>()};  // checked with the rest of the contract
}

double prior_from_json(const nlohmann::json& v, const Origin& origin) {
  if (!v.is_object()) return parse_text(manifest_text(v, origin), origin, parse_prior_scale);
  for (const auto& [key, value] : v.items()) {
    if (key != "name" && key != "scale") {
      origin.fail(fmt::format("'{}' is not a prior key (valid: name, scale)", key));
    }
  }
  if (!v.contains("name") || !v["name"].is_string()) {
    origin.fail("expected {\"name\": \"normal\", \"scale\": S}");
  }
  const auto name = v["name"].get<std::string>();
  if (v.contains("scale") && !v["scale"].is_number()) origin.fail("'scale' must be a number");
  const double scale = v.contains("scale") ? v["scale"].get<double>() : 1.0;
  return parse_text(name == "normal" ? fmt::format("normal:{}", scale) : name, origin,
                    parse_prior_scale);
}

class Resolver {
 public:
  Resolver(const nlohmann::json* manifest, std::string source, Contract& contract)
      : manifest_(manifest), source_(std::move(source)), contract_(contract) {}

  // The option's value if given, else the manifest's, read by from_json, if present; records the
  // origin.
  template <typename T, typename FromJson>
  std::optional<T> resolve(const std::string& field, const std::optional<T>& option,
                           FromJson from_json) {
    if (option) {
      contract_.sources[field] = "option " + option_name(field);
      overridden_.insert(field);
      return option;
    }
    if (manifest_ && manifest_->contains(field)) {
      const Origin origin(field, source_);
      T value = from_json((*manifest_)[field], origin);
      contract_.sources[field] = source_;
      return value;
    }
    return std::nullopt;
  }
  // A manifest field in the options' text form, read by their parser.
  template <typename T>
  std::optional<T> resolve_text(const std::string& field, const std::optional<T>& option,
                                T (*parse)(const std::string&)) {
    return resolve(field, option, [&](const nlohmann::json& v, const Origin& o) {
      return parse_text(manifest_text(v, o), o, parse);
    });
  }

  void mark_overridden(const std::string& field) { overridden_.insert(field); }
  // The fields an option set, for telling the caller's mistakes from the manifest's.
  const std::set<std::string>& overridden() const { return overridden_; }

 private:
  const nlohmann::json* manifest_;
  std::string source_;
  Contract& contract_;
  std::set<std::string> overridden_;
};

// Raised for fields that contradict each other: a usage error if an option took part, else a model
// error.
[[noreturn]] void contradiction(const Contract& c, const std::set<std::string>& overridden,
                                std::initializer_list<const char*> fields,
                                const std::string& what) {
  bool from_option = false;
  std::vector<std::string> origins;
  for (const char* f : fields) {
    const auto it = c.sources.find(f);
    const std::string origin = it == c.sources.end() ? "default" : it->second;
    from_option = from_option || overridden.contains(f);
    origins.push_back(fmt::format("{} from {}", f, origin));
  }
  const auto reason = fmt::format("{} ({})", what, fmt::join(origins, "; "));
  if (from_option) throw InvalidArgument(*fields.begin(), reason);
  throw ModelError(fmt::format("{}: {}", *fields.begin(), reason));
}

void check_consistency(Contract& c, const std::set<std::string>& overridden) {
  const auto p = c.parameterization;
  if (p != Parameterization::kVelocity && !c.schedule) {
    contradiction(c, overridden, {"schedule", "parameterization"},
                  fmt::format("required for parameterization '{}': set it in the manifest or "
                              "override it",
                              to_string(p)));
  }
  if (p == Parameterization::kV && !c.schedule->variance_preserving()) {
    contradiction(
        c, overridden, {"parameterization", "schedule"},
        fmt::format("'v' is defined on variance-preserving paths only (vp, cosine), not {}",
                    to_string(*c.schedule)));
  }
  if (!c.sources.contains("time_range") && p != Parameterization::kVelocity) {
    contradiction(
        c, overridden, {"time_range", "parameterization"},
        fmt::format("required for parameterization '{}', whose conversion to a velocity is "
                    "singular at an end of the path (e.g. time range 1e-5,1)",
                    to_string(p)));
  }
  if (!(c.time_lo >= 0.0 && c.time_lo < c.time_hi && c.time_hi <= 1.0)) {
    contradiction(
        c, overridden, {"time_range"},
        fmt::format("must satisfy 0 <= LO < HI <= 1, got [{}, {}]", c.time_lo, c.time_hi));
  }
  if (c.schedule && p != Parameterization::kVelocity) {
    // The conversions divide by alpha (noise, score, v) or by sigma (data): neither may vanish on
    // the interval (shared/MATH.md section 4, "Singular end points"). alpha and sigma are monotone
    // in t.
    for (const double t : {c.t_data(), c.t_prior()}) {
      const auto k = path_coefficients(*c.schedule, t);
      const bool divides_by_alpha = p != Parameterization::kData;
      const double divisor = divides_by_alpha ? k.alpha : k.sigma;
      if (!(std::abs(divisor) > 1e-12)) {
        contradiction(
            c, overridden, {"time_range", "parameterization", "schedule"},
            fmt::format("[{}, {}] reaches flow time t = {} where {} = 0, which parameterization "
                        "'{}' divides by; truncate the interval",
                        c.time_lo, c.time_hi, t, divides_by_alpha ? "alpha" : "sigma",
                        to_string(p)));
      }
    }
  }
  if (c.schedule && c.schedule->kind == ScheduleKind::kVe && !c.sources.contains("prior")) {
    contradiction(
        c, overridden, {"prior"},
        fmt::format("required with a ve schedule, whose prior is N(0, sigma_max^2 I): e.g. "
                    "prior normal:{}",
                    c.schedule->sigma_max));
  }
}

}  // namespace

Contract resolve_contract(const nlohmann::json* manifest, const std::string& manifest_source,
                          const ContractOptions& options) {
  if (manifest) {
    if (!manifest->is_object()) {
      throw ModelError(fmt::format("{}: the manifest must be a JSON object", manifest_source));
    }
    for (const auto& [key, value] : manifest->items()) {
      if (std::find(kManifestFields.begin(), kManifestFields.end(), key) == kManifestFields.end()) {
        throw ModelError(fmt::format("{}: field '{}' is not a contract field (valid: {})",
                                     manifest_source, key, fmt::join(kManifestFields, ", ")));
      }
    }
  }
  Contract c;
  Resolver r(manifest, manifest_source, c);
  if (const auto v = r.resolve_text("signature", options.signature, parse_signature)) {
    c.signature = *v;
  }
  if (const auto v = r.resolve_text("time_input", options.time_input, parse_time_input)) {
    c.time_input = *v;
  }
  if (const auto v = r.resolve_text("time", options.time, parse_time_convention)) c.time = *v;
  if (const auto v =
          r.resolve_text("parameterization", options.parameterization, parse_parameterization)) {
    c.parameterization = *v;
  }
  if (options.schedule) check(*options.schedule);
  c.schedule = r.resolve("schedule", options.schedule, schedule_from_json);
  if (const auto v = r.resolve("time_range", options.time_range, time_range_from_json)) {
    c.time_lo = v->lo;
    c.time_hi = v->hi;
  }
  if (options.time_eps) {
    // The data end moved EPS in from the data (score_sde's eps), the other end kept.
    const double eps = *options.time_eps;
    if (!(eps > 0.0 && eps < 0.5)) {
      throw InvalidArgument("time_eps", fmt::format("must be a number in (0, 0.5), got {}", eps));
    }
    if (c.time == TimeConvention::kDiffusion) {
      c.time_lo = eps;
    } else {
      c.time_hi = 1.0 - eps;
    }
    const auto named = option_name("time_eps");
    const auto it = c.sources.find("time_range");
    c.sources["time_range"] =
        it == c.sources.end()
            ? fmt::format("option {} (data end; the other end the default)", named)
            : fmt::format("{}, data end by option {}", it->second, named);
    r.mark_overridden("time_range");
  }
  if (options.prior && !(*options.prior > 0 && std::isfinite(*options.prior))) {
    throw InvalidArgument("prior",
                          fmt::format("prior scale must be positive, got {}", *options.prior));
  }
  if (const auto v = r.resolve("prior", options.prior, prior_from_json)) c.prior_scale = *v;
  if (const auto v = r.resolve_text("conditioning", options.conditioning, parse_conditioning)) {
    c.conditional = *v == Conditioning::kLabel;
  }
  c.shape =
      r.resolve("shape", std::optional<std::vector<int64_t>>(), [](const auto& v, const Origin& o) {
        if (!v.is_array()) o.fail(fmt::format("expected a list of dimensions, got {}", v.dump()));
        std::vector<int64_t> shape;
        for (const auto& d : v) {
          if (!d.is_number_integer() || d.template get<int64_t>() < 1) {
            o.fail(fmt::format("dimensions must be positive integers, got {}", v.dump()));
          }
          shape.push_back(d.template get<int64_t>());
        }
        return shape;
      });
  r.resolve("data", std::optional<bool>(), [&](const auto& v, const Origin& o) {
    if (!v.is_object())
      o.fail(fmt::format("expected an object {{\"levels\": K, \"scale\": MAP}}, got {}", v.dump()));
    for (const auto& [key, value] : v.items()) {
      if (key != "levels" && key != "scale")
        o.fail(fmt::format("'{}' is not a data key (valid: levels, scale)", key));
    }
    if (v.contains("levels")) {
      if (!v["levels"].is_number_integer()) o.fail("'levels' must be an integer");
      const auto levels = v["levels"].template get<int64_t>();
      if (levels < 2 || levels > 256)
        o.fail(fmt::format("'levels' must be in [2, 256], got {}", levels));
      c.data_levels = levels;
    }
    if (v.contains("scale")) {
      if (!v["scale"].is_string()) o.fail("'scale' must be a string such as \"centered\"");
      c.data_scale = parse_text(v["scale"].template get<std::string>(), o, parse_data_map);
    }
    return true;
  });
  for (const auto& field : kManifestFields) c.sources.try_emplace(field, "default");
  if (!c.shape) c.sources["shape"] = "not declared";
  if (!c.data_levels && !c.data_scale) c.sources["data"] = "not declared";
  if (!c.schedule) c.sources["schedule"] = "not declared";
  // check_consistency asks whether a field was given at all; "default" and "not declared" mean no.
  Contract check = c;
  std::erase_if(check.sources, [](const auto& kv) {
    return kv.second == "default" || kv.second == "not declared";
  });
  check_consistency(check, r.overridden());
  return c;
}

}  // namespace flowlik
