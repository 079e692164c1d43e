#include "likelihood/model/contract.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <set>
#include <utility>

#include "flowlik/error.h"
#include "flowlik/text_number.h"
#include "likelihood/model/preprocessing.h"

namespace flowlik {
namespace {

const std::vector<std::string> kManifestFields = {
    "signature", "time_input", "time", "parameterization", "schedule", "time_range",
    "prior",     "shape",      "data", "conditioning"};

// Where one field's value came from, and how to complain about it: a bad option is a usage error
// that names the option; a bad manifest field is a model error that names the manifest and the
// field.
class Origin {
 public:
  Origin(std::string field, std::string source, bool from_option)
      : field_(std::move(field)), source_(std::move(source)), from_option_(from_option) {}

  [[noreturn]] void fail(const std::string& what) const {
    if (from_option_) throw InvalidArgument(field_, what);
    throw ModelError(fmt::format("{}: field '{}': {}", source_, field_, what));
  }
  const std::string& source() const { return source_; }
  bool from_option() const { return from_option_; }

 private:
  std::string field_;
  std::string source_;
  bool from_option_;
};

template <typename E>
E parse_choice(const std::string& text, const std::vector<std::pair<std::string, E>>& choices,
               const Origin& origin) {
  std::vector<std::string> names;
  for (const auto& [name, value] : choices) {
    if (text == name) return value;
    names.push_back(name);
  }
  origin.fail(fmt::format("unknown value '{}' (valid: {})", text, fmt::join(names, ", ")));
}

std::string strip_spaces(std::string s) {
  std::erase(s, ' ');
  return s;
}

double parse_number(const std::string& text, const Origin& origin) {
  const auto v = parse_finite_double(text);
  if (!v) origin.fail(fmt::format("'{}' is not a number", text));
  return *v;
}

// A manifest value given either as the option's text form or as a JSON object/array: returns the
// text.
std::string manifest_text(const nlohmann::json& value, const Origin& origin) {
  if (!value.is_string()) origin.fail(fmt::format("expected a string, got {}", value.dump()));
  return value.get<std::string>();
}

Schedule schedule_from_json(const nlohmann::json& value, const Origin& origin) {
  if (value.is_string()) {
    try {
      return parse_schedule(value.get<std::string>(), "schedule");
    } catch (const InvalidArgument& e) {
      origin.fail(e.reason());
    }
  }
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
  try {
    return parse_schedule(text, "schedule");
  } catch (const InvalidArgument& e) {
    origin.fail(e.reason());
  }
}

std::pair<double, double> parse_range(const std::string& text, const Origin& origin) {
  const auto comma = text.find(',');
  if (comma == std::string::npos) origin.fail(fmt::format("expected LO,HI, got '{}'", text));
  return {parse_number(text.substr(0, comma), origin),
          parse_number(text.substr(comma + 1), origin)};
}

double parse_prior(const std::string& text, const Origin& origin) {
  if (text == "standard" || text == "standard_normal" || text == "normal") return 1.0;
  if (text.starts_with("normal:")) {
    const double scale = parse_number(text.substr(7), origin);
    if (!(scale > 0)) origin.fail(fmt::format("prior scale must be positive, got {}", scale));
    return scale;
  }
  origin.fail(fmt::format("unknown prior '{}' (valid: standard, normal:SCALE)", text));
}

class Resolver {
 public:
  Resolver(const nlohmann::json* manifest, std::string source, const ContractOptions& options,
           Contract& contract)
      : manifest_(manifest), source_(std::move(source)), options_(options), contract_(contract) {}

  // The option's text if given, else the manifest's value if present; records the origin.
  template <typename Apply>
  bool resolve(const std::string& field, const std::optional<std::string>& text, Apply apply) {
    if (text) {
      const Origin origin(field, source_, true);
      apply(nlohmann::json(*text), origin);
      contract_.sources[field] =
          "option " + (options_.name_argument ? options_.name_argument(field) : field);
      overridden_.insert(field);
      return true;
    }
    if (manifest_ && manifest_->contains(field)) {
      const Origin origin(field, source_, false);
      apply((*manifest_)[field], origin);
      contract_.sources[field] = source_;
      return true;
    }
    return false;
  }

  void mark_overridden(const std::string& field) { overridden_.insert(field); }
  // The fields an option set, for telling the caller's mistakes from the manifest's.
  const std::set<std::string>& overridden() const { return overridden_; }

 private:
  const nlohmann::json* manifest_;
  std::string source_;
  const ContractOptions& options_;
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
                    describe_schedule(*c.schedule)));
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

std::string to_string(Signature v) { return v == Signature::kXT ? "(x, t)" : "(t, x)"; }
std::string to_string(TimeInput v) { return v == TimeInput::kVector ? "vector" : "scalar"; }
std::string to_string(TimeConvention v) {
  return v == TimeConvention::kFlow ? "flow" : "diffusion";
}
std::string to_string(Parameterization v) {
  switch (v) {
    case Parameterization::kVelocity:
      return "velocity";
    case Parameterization::kData:
      return "data";
    case Parameterization::kNoise:
      return "noise";
    case Parameterization::kScore:
      return "score";
    case Parameterization::kV:
      return "v";
  }
  return "unknown";
}

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
  Resolver r(manifest, manifest_source, options, c);
  r.resolve("signature", options.signature, [&](const auto& v, const Origin& o) {
    c.signature =
        parse_choice<Signature>(strip_spaces(manifest_text(v, o)),
                                {{"(x,t)", Signature::kXT}, {"(t,x)", Signature::kTX}}, o);
  });
  r.resolve("time_input", options.time_input, [&](const auto& v, const Origin& o) {
    c.time_input = parse_choice<TimeInput>(
        manifest_text(v, o), {{"vector", TimeInput::kVector}, {"scalar", TimeInput::kScalar}}, o);
  });
  r.resolve("time", options.time, [&](const auto& v, const Origin& o) {
    c.time = parse_choice<TimeConvention>(
        manifest_text(v, o),
        {{"flow", TimeConvention::kFlow}, {"diffusion", TimeConvention::kDiffusion}}, o);
  });
  r.resolve("parameterization", options.parameterization, [&](const auto& v, const Origin& o) {
    c.parameterization = parse_choice<Parameterization>(manifest_text(v, o),
                                                        {{"velocity", Parameterization::kVelocity},
                                                         {"data", Parameterization::kData},
                                                         {"noise", Parameterization::kNoise},
                                                         {"score", Parameterization::kScore},
                                                         {"v", Parameterization::kV}},
                                                        o);
  });
  r.resolve("schedule", options.schedule,
            [&](const auto& v, const Origin& o) { c.schedule = schedule_from_json(v, o); });
  r.resolve("time_range", options.time_range, [&](const auto& v, const Origin& o) {
    if (v.is_array()) {
      if (v.size() != 2 || !v[0].is_number() || !v[1].is_number()) {
        o.fail(fmt::format("expected [LO, HI], got {}", v.dump()));
      }
      c.time_lo = v[0].template get<double>();
      c.time_hi = v[1].template get<double>();
    } else {
      std::tie(c.time_lo, c.time_hi) = parse_range(manifest_text(v, o), o);
    }
  });
  if (options.time_eps) {
    // The data end moved EPS in from the data (score_sde's eps), the other end kept.
    const Origin origin("time_eps", manifest_source, true);
    const double eps = parse_number(*options.time_eps, origin);
    if (!(eps > 0.0 && eps < 0.5)) {
      origin.fail(fmt::format("must be a number in (0, 0.5), got {}", *options.time_eps));
    }
    if (c.time == TimeConvention::kDiffusion) {
      c.time_lo = eps;
    } else {
      c.time_hi = 1.0 - eps;
    }
    const auto named = options.name_argument ? options.name_argument("time_eps") : "time_eps";
    const auto it = c.sources.find("time_range");
    c.sources["time_range"] =
        it == c.sources.end()
            ? fmt::format("option {} (data end; the other end the default)", named)
            : fmt::format("{}, data end by option {}", it->second, named);
    r.mark_overridden("time_range");
  }
  r.resolve("prior", options.prior, [&](const auto& v, const Origin& o) {
    if (v.is_object()) {
      for (const auto& [key, value] : v.items()) {
        if (key != "name" && key != "scale")
          o.fail(fmt::format("'{}' is not a prior key (valid: name, scale)", key));
      }
      if (!v.contains("name") || !v["name"].is_string())
        o.fail("expected {\"name\": \"normal\", \"scale\": S}");
      const auto name = v["name"].template get<std::string>();
      if (v.contains("scale") && !v["scale"].is_number()) o.fail("'scale' must be a number");
      const double scale = v.contains("scale") ? v["scale"].template get<double>() : 1.0;
      c.prior_scale = parse_prior(name == "normal" ? fmt::format("normal:{}", scale) : name, o);
    } else {
      c.prior_scale = parse_prior(manifest_text(v, o), o);
    }
  });
  r.resolve("conditioning", options.conditioning, [&](const auto& v, const Origin& o) {
    c.conditional = parse_choice<bool>(manifest_text(v, o), {{"none", false}, {"label", true}}, o);
  });
  r.resolve("shape", std::nullopt, [&](const auto& v, const Origin& o) {
    if (!v.is_array()) o.fail(fmt::format("expected a list of dimensions, got {}", v.dump()));
    std::vector<int64_t> shape;
    for (const auto& d : v) {
      if (!d.is_number_integer() || d.template get<int64_t>() < 1) {
        o.fail(fmt::format("dimensions must be positive integers, got {}", v.dump()));
      }
      shape.push_back(d.template get<int64_t>());
    }
    c.shape = shape;
  });
  r.resolve("data", std::nullopt, [&](const auto& v, const Origin& o) {
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
      Preprocessing check;
      try {
        parse_scale(v["scale"].template get<std::string>(), check);
      } catch (const InvalidArgument& e) {
        o.fail(e.reason());
      }
      c.data_scale = v["scale"].template get<std::string>();
    }
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

nlohmann::json contract_json(const Contract& c) {
  nlohmann::json j = {
      {"signature", to_string(c.signature)},
      {"time_input", to_string(c.time_input)},
      {"time", to_string(c.time)},
      {"parameterization", to_string(c.parameterization)},
      {"schedule",
       c.schedule ? nlohmann::json(describe_schedule(*c.schedule)) : nlohmann::json(nullptr)},
      {"time_range", {c.time_lo, c.time_hi}},
      {"flow_time_integrated", {c.t_data(), c.t_prior()}},
      {"prior", c.prior_scale == 1.0 ? std::string("standard normal")
                                     : fmt::format("normal, scale {}", c.prior_scale)},
      {"shape", c.shape ? nlohmann::json(*c.shape) : nlohmann::json(nullptr)},
      {"data",
       {{"levels", c.data_levels ? nlohmann::json(*c.data_levels) : nlohmann::json(nullptr)},
        {"scale", c.data_scale ? nlohmann::json(*c.data_scale) : nlohmann::json(nullptr)}}},
      {"conditioning", c.conditional ? "label" : "none"},
      {"sources", c.sources},
  };
  return j;
}

}  // namespace flowlik
