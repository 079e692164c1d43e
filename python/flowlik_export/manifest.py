"""The manifest flowlik reads from `flowlik.json` in an exported file: the model contract, validated here
with the same rules as flowlik's own loader (likelihood/model/contract.cpp), so a bad contract fails at export
time rather than when the file is scored.

Each error is a ContractError (a ValueError) whose message starts with the field at fault and says what
was expected and what was found.
"""
import math
import numbers
import re

FIELDS = ("signature", "time_input", "time", "parameterization", "schedule", "time_range", "prior",
          "shape", "data", "conditioning")
CONDITIONINGS = ("none", "label")
SIGNATURES = ("(x, t)", "(t, x)")
TIME_INPUTS = ("vector", "scalar")
TIMES = ("flow", "diffusion")
PARAMETERIZATIONS = ("velocity", "data", "noise", "score", "v")
SCHEDULES = ("linear", "vp", "cosine", "ve")
DATA_SCALES = ("unit", "centered", "logit", "logit:LAMBDA")

# Parameters of each schedule, in the order of the text form "name:P1,P2", and how many the text form
# takes when they are given (the object form names them).
_SCHEDULE_PARAMETERS = {
    "linear": ("sigma_min",),
    "vp": ("beta_min", "beta_max"),
    "cosine": ("offset",),
    "ve": ("sigma_min", "sigma_max"),
}
_SCHEDULE_FORMS = {
    "linear": "linear:SIGMA_MIN",
    "vp": "vp:BETA_MIN,BETA_MAX",
    "cosine": "cosine:OFFSET",
    "ve": "ve:SIGMA_MIN,SIGMA_MAX",
}
# A decimal number as flowlik's parser takes it: no spaces, no underscores, no inf or nan.
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


class ContractError(ValueError):
    """A contract field is malformed, missing or contradicts another, or the model breaks the contract."""


def _fail(field, what):
    raise ContractError(f"{field}: {what}")


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _parse_number(text, field, form):
    # Leading spaces are skipped, as C++'s std::stod does in flowlik's parser ("0.1, 20").
    if not _NUMBER.fullmatch(text.lstrip()):
        _fail(field, f"'{text}' is not a number (expected {form})")
    return float(text.lstrip())


def _choice(field, value, valid):
    if not isinstance(value, str):
        _fail(field, f"expected a string (valid: {', '.join(valid)}), got {value!r}")
    if value not in valid:
        _fail(field, f"unknown value '{value}' (valid: {', '.join(valid)})")
    return value


def parse_schedule(value):
    """The schedule's name and parameters {name: float}, defaults filled in, from the text or object form."""
    field = "schedule"
    if isinstance(value, str):
        name, _, rest = value.partition(":")
        if name not in SCHEDULES:
            _fail(field, f"unknown schedule '{name}' (valid: {', '.join(SCHEDULES)})")
        keys = _SCHEDULE_PARAMETERS[name]
        form = _SCHEDULE_FORMS[name]
        given = {}
        if rest or ":" in value:
            items = rest.split(",")
            if len(items) != len(keys):
                _fail(field, f"'{value}' takes {len(keys)} parameter(s): {form}")
            given = {k: _parse_number(item, field, form) for k, item in zip(keys, items)}
    elif isinstance(value, dict):
        name = value.get("name")
        if name not in SCHEDULES:
            _fail(field, f"object needs a \"name\" (valid: {', '.join(SCHEDULES)}), got {name!r}")
        keys = _SCHEDULE_PARAMETERS[name]
        unknown = sorted(set(value) - {"name", *keys})
        if unknown:
            _fail(field, f"unknown key(s) {', '.join(unknown)} for schedule '{name}' "
                         f"(valid: name, {', '.join(keys)})")
        given = {k: value[k] for k in keys if k in value}
        for k, v in given.items():
            if not _is_number(v) or not math.isfinite(v):
                _fail(field, f"'{k}' must be a finite number, got {v!r}")
        # flowlik reads the object as the text form: its parameters come all together or not at all.
        if given and len(given) != len(keys):
            _fail(field, f"schedule '{name}' takes {' and '.join(keys)} together, got only "
                         f"{', '.join(given)}")
    else:
        _fail(field, f"expected a string like \"vp:0.1,20\" or an object with a \"name\", got {value!r}")

    params = {"linear": {"sigma_min": 0.0}, "vp": {"beta_min": 0.1, "beta_max": 20.0},
              "cosine": {"offset": 0.008}, "ve": {}}[name]
    params.update({k: float(v) for k, v in given.items()})
    if name == "linear" and not 0 <= params["sigma_min"] < 1:
        _fail(field, f"linear sigma_min must be in [0, 1), got {params['sigma_min']}")
    if name == "vp" and not 0 < params["beta_min"] < params["beta_max"]:
        _fail(field, f"vp needs 0 < beta_min < beta_max, got {params['beta_min']}, {params['beta_max']}")
    if name == "cosine" and not params["offset"] > 0:
        _fail(field, f"cosine offset must be positive, got {params['offset']}")
    if name == "ve":
        if not given:
            _fail(field, "ve needs its range, ve:SIGMA_MIN,SIGMA_MAX")
        if not 0 < params["sigma_min"] < params["sigma_max"]:
            _fail(field, f"ve needs 0 < sigma_min < sigma_max, got {params['sigma_min']}, "
                         f"{params['sigma_max']}")
    return name, params


def path_alpha_sigma(name, params, t):
    """alpha_t and sigma_t in flow time t (shared/MATH.md section 4, "Schedules"); s = 1 - t."""
    s = 1.0 - t
    if name == "linear":
        return t, 1.0 - (1.0 - params["sigma_min"]) * t
    if name == "ve":
        return 1.0, params["sigma_min"] * (params["sigma_max"] / params["sigma_min"]) ** s
    if name == "vp":
        b0, b1 = params["beta_min"], params["beta_max"]
        alpha = math.exp(-0.5 * (b0 * s + 0.5 * (b1 - b0) * s * s))
    else:  # cosine
        c = params["offset"]
        alpha = math.cos(math.pi / 2 * (s + c) / (1 + c)) / math.cos(math.pi / 2 * c / (1 + c))
    return alpha, math.sqrt(max(0.0, 1.0 - alpha * alpha))


def parse_time_range(value):
    """(LO, HI) from [LO, HI] or "LO,HI"; 0 <= LO < HI <= 1."""
    field = "time_range"
    if isinstance(value, str):
        parts = value.split(",")
        if len(parts) != 2:
            _fail(field, f"expected [LO, HI] or \"LO,HI\", got '{value}'")
        lo, hi = (_parse_number(p, field, "LO,HI") for p in parts)
    elif isinstance(value, (list, tuple)):
        if len(value) != 2 or not all(_is_number(v) and math.isfinite(v) for v in value):
            _fail(field, f"expected [LO, HI], two finite numbers, got {list(value)!r}")
        lo, hi = float(value[0]), float(value[1])
    else:
        _fail(field, f"expected [LO, HI], got {value!r}")
    if not 0 <= lo < hi <= 1:
        _fail(field, f"must satisfy 0 <= LO < HI <= 1, got [{lo}, {hi}]")
    return lo, hi


def _check_prior(value):
    field = "prior"
    if isinstance(value, str):
        if value == "standard":
            return
        if value.startswith("normal:"):
            scale = _parse_number(value[len("normal:"):], field, "normal:SCALE")
            if not scale > 0:
                _fail(field, f"prior scale must be positive, got {scale}")
            return
        _fail(field, f"unknown prior '{value}' (valid: standard, normal:SCALE)")
    if isinstance(value, dict):
        name = value.get("name")
        if name == "standard" and set(value) == {"name"}:
            return
        if name == "normal" and set(value) == {"name", "scale"}:
            scale = value["scale"]
            if not _is_number(scale) or not math.isfinite(scale) or not scale > 0:
                _fail(field, f"'scale' must be a positive number, got {scale!r}")
            return
        _fail(field, f"expected {{\"name\": \"normal\", \"scale\": S}} or {{\"name\": \"standard\"}}, "
                     f"got {value!r}")
    _fail(field, f"expected \"standard\", \"normal:SCALE\" or an object, got {value!r}")


def _check_shape(value):
    if not isinstance(value, (list, tuple)) or not value or not all(
            isinstance(d, numbers.Integral) and not isinstance(d, bool) and d >= 1 for d in value):
        _fail("shape", f"expected a list of positive integers, got {value!r}")


def _check_data(value):
    field = "data"
    if not isinstance(value, dict):
        _fail(field, f"expected an object {{\"levels\": K, \"scale\": MAP}}, got {value!r}")
    unknown = sorted(set(value) - {"levels", "scale"})
    if unknown:
        _fail(field, f"unknown key(s) {', '.join(unknown)} (valid: levels, scale)")
    if "levels" in value:
        k = value["levels"]
        if not isinstance(k, numbers.Integral) or isinstance(k, bool) or not 2 <= k <= 256:
            _fail(field, f"'levels' must be an integer in [2, 256], got {k!r}")
    if "scale" in value:
        scale = value["scale"]
        if not isinstance(scale, str):
            _fail(field, f"'scale' must be a string (valid: {', '.join(DATA_SCALES)}), got {scale!r}")
        if scale.startswith("logit:"):
            lam = _parse_number(scale[len("logit:"):], field, "logit:LAMBDA")
            if not 0 < lam < 0.5:
                _fail(field, f"logit lambda must be in (0, 0.5), got {lam}")
        elif scale not in ("unit", "centered", "logit"):
            _fail(field, f"unknown 'scale' '{scale}' (valid: {', '.join(DATA_SCALES)})")


def _plain(value):
    """The value in JSON's own types: tuples become lists, numbers become int or float."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return value


def validate_contract(contract):
    """Checks `contract` against the manifest schema and returns it as a JSON-ready dict (tuples as lists).

    Raises TypeError if it is not a dict, ContractError (a ValueError) naming the field at fault otherwise.
    """
    if not isinstance(contract, dict):
        raise TypeError(f"contract: expected a dict, got {type(contract).__name__}")
    for key in contract:
        if key not in FIELDS:
            _fail(key, f"not a contract field (valid: {', '.join(FIELDS)})")
    c = _plain(contract)

    if "signature" in c:
        sig = c["signature"]
        # flowlik ignores spaces in the signature: "(x,t)" is "(x, t)".
        if not isinstance(sig, str) or sig.replace(" ", "") not in ("(x,t)", "(t,x)"):
            _fail("signature", f"unknown value {sig!r} (valid: {', '.join(SIGNATURES)})")
    if "time_input" in c:
        _choice("time_input", c["time_input"], TIME_INPUTS)
    if "time" in c:
        _choice("time", c["time"], TIMES)
    parameterization = _choice("parameterization", c.get("parameterization", "velocity"),
                               PARAMETERIZATIONS)
    schedule = parse_schedule(c["schedule"]) if "schedule" in c else None
    lo, hi = parse_time_range(c["time_range"]) if "time_range" in c else (0.0, 1.0)
    if "prior" in c:
        _check_prior(c["prior"])
    if "shape" in c:
        _check_shape(c["shape"])
    if "data" in c:
        _check_data(c["data"])
    if "conditioning" in c:
        _choice("conditioning", c["conditioning"], CONDITIONINGS)

    if parameterization != "velocity":
        if schedule is None:
            _fail("schedule", f"required for parameterization '{parameterization}' "
                              f"(valid: {', '.join(SCHEDULES)}, e.g. \"vp:0.1,20\")")
        if "time_range" not in c:
            _fail("time_range", f"required for parameterization '{parameterization}', whose conversion to "
                                f"a velocity is singular at an end of the path (e.g. [1e-5, 1])")
    if parameterization == "v" and schedule[0] not in ("vp", "cosine"):
        _fail("parameterization", f"'v' is defined on variance-preserving paths only (vp, cosine), "
                                  f"not {schedule[0]}")
    if schedule is not None and parameterization != "velocity":
        # The conversions divide by alpha (noise, score, v) or sigma (data); neither may vanish on the
        # interval (shared/MATH.md section 4, "Singular end points").
        ends = (lo, hi) if c.get("time", "flow") == "flow" else (1.0 - hi, 1.0 - lo)
        by_alpha = parameterization != "data"
        for t in ends:
            alpha, sigma = path_alpha_sigma(*schedule, t)
            if not abs(alpha if by_alpha else sigma) > 1e-12:
                _fail("time_range", f"[{lo}, {hi}] reaches flow time t = {t} where "
                                    f"{'alpha' if by_alpha else 'sigma'} = 0, which parameterization "
                                    f"'{parameterization}' divides by; truncate the interval")
    if schedule is not None and schedule[0] == "ve" and "prior" not in c:
        _fail("prior", f"required with a ve schedule, whose prior is N(0, sigma_max^2 I): e.g. "
                       f"\"normal:{schedule[1]['sigma_max']:g}\"")
    return c
