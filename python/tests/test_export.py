"""flowlik_export.export: the file round-trips with its manifest, a wrong export is caught, a bad contract is
refused naming its field, and flowlik itself reads what was written."""
import json
import os
import pathlib
import subprocess
import warnings

import numpy as np
import pytest
import torch

from flowlik_export import ContractError, ExportMismatchError, export, validate_contract

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(os.environ.get("FLOWLIK_BIN", ROOT / "build" / "flowlik"))


def load_with_manifest(path):
    extra = {"flowlik.json": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        module = torch.jit.load(str(path), _extra_files=extra)
    return module, json.loads(extra["flowlik.json"])


class MLP(torch.nn.Module):
    """A velocity field v(x, t) on x [B, D], t [B]."""

    def __init__(self, d=3, hidden=16, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.net = torch.nn.Sequential(torch.nn.Linear(d + 1, hidden), torch.nn.SiLU(),
                                       torch.nn.Linear(hidden, d))

    def forward(self, x, t):
        return self.net(torch.cat([x, t[:, None].to(x.dtype)], dim=1))


class TimeFirstScalar(torch.nn.Module):
    """forward(t, x) with t a 0-d tensor; x [B, 2, 2]."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor([[0.5, -1.0], [2.0, 0.25]]))

    def forward(self, t, x):
        return torch.tanh(x @ self.w) * (1.0 + t)


class BranchOnTime(torch.nn.Module):
    """Data-dependent Python control flow: a trace records only the branch its example takes."""

    def forward(self, x, t):
        if bool(t[0] < 0.25):
            return x
        return 2.0 * x


def test_an_eager_mlp_round_trips_with_its_manifest(tmp_path):
    model, x = MLP(), torch.randn(5, 3)
    path = tmp_path / "mlp.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # export hides torch.jit's deprecation warnings
        manifest = export(model, path, {"parameterization": "velocity"}, x, format="torchscript")
    assert manifest == {"parameterization": "velocity", "shape": [3]}
    loaded, embedded = load_with_manifest(path)
    assert embedded == manifest
    t = torch.full((5,), 0.3)
    torch.testing.assert_close(loaded(x, t), model(x, t), rtol=0, atol=1e-6)
    assert not model.training  # export puts the module in eval mode


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")  # the warning is this test's premise
def test_a_trace_that_misses_a_branch_is_caught(tmp_path):
    # Traced at the middle of [0, 1]: the 2x branch; the check at t = 0 and 0.1 takes the other.
    with pytest.raises(ExportMismatchError, match=r"max abs diff [0-9.e+-]+.*method='script'"):
        export(BranchOnTime(), tmp_path / "b.pt", {}, torch.randn(4, 3), format="torchscript", method="trace")
    # Scripted, the branch is kept and the export passes.
    export(BranchOnTime(), tmp_path / "s.pt", {}, torch.randn(4, 3), format="torchscript", method="script")


def _perturb_reloads(monkeypatch, offset):
    """Makes the exporter's reload return the saved module plus `offset`, as a broken export would."""
    real_load = torch.jit.load

    class Perturbed(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x, t):
            return self.inner(x, t) + offset

    monkeypatch.setattr(torch.jit, "load", lambda *a, **k: Perturbed(real_load(*a, **k)))


def test_an_exported_module_that_disagrees_is_caught(tmp_path, monkeypatch):
    _perturb_reloads(monkeypatch, 1e-3)
    with pytest.raises(ExportMismatchError, match=r"max abs diff 0\.001"):
        export(MLP(), tmp_path / "m.pt", {}, torch.randn(4, 3), format="torchscript")


def test_the_tolerance_is_applied(tmp_path, monkeypatch):
    _perturb_reloads(monkeypatch, 1e-7)
    export(MLP(), tmp_path / "ok.pt", {}, torch.randn(4, 3), format="torchscript")  # within atol 1e-5
    with pytest.raises(ExportMismatchError):
        export(MLP(), tmp_path / "tight.pt", {}, torch.randn(4, 3), format="torchscript", atol=1e-9, rtol=0)


def test_time_first_signature_and_scalar_time(tmp_path):
    model, x = TimeFirstScalar(), torch.randn(3, 2, 2)
    contract = {"signature": "(t, x)", "time_input": "scalar"}
    for method in ("script", "trace"):
        path = tmp_path / f"{method}.pt"
        manifest = export(model, path, contract, x, format="torchscript", method=method)
        assert manifest == {**contract, "shape": [2, 2]}
        loaded, embedded = load_with_manifest(path)
        assert embedded == manifest
        t = torch.tensor(0.7)
        torch.testing.assert_close(loaded(t, x), model(t, x), rtol=0, atol=1e-6)


def test_the_wrong_time_form_is_reported(tmp_path):
    # MLP indexes t[:, None]: a 0-d t breaks it, and the error names the call (before any pt2 compile).
    with pytest.raises(ContractError, match=r"forward: fails .* with t a scalar"):
        export(MLP(), tmp_path / "m.pt2", {"time_input": "scalar"}, torch.randn(4, 3))


def test_an_example_t_of_the_wrong_form_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"example_t: time_input 'scalar' needs shape \[\]"):
        export(TimeFirstScalar(), tmp_path / "m.pt", {"signature": "(t, x)", "time_input": "scalar"},
               torch.randn(3, 2, 2), torch.zeros(3), format="torchscript", method="trace")


def test_output_of_the_wrong_shape_is_refused(tmp_path):
    class Halves(torch.nn.Module):
        def forward(self, x, t):
            return x[:, :1]

    with pytest.raises(ContractError, match=r"returns shape \[1, 1\] for x of shape \[1, 3\]"):
        export(Halves(), tmp_path / "h.pt2", {}, torch.randn(4, 3))


def test_integer_output_is_refused(tmp_path):
    class Rounds(torch.nn.Module):
        def forward(self, x, t):
            return x.round().long()

    with pytest.raises(ContractError, match="expected floating point"):
        export(Rounds(), tmp_path / "r.pt2", {}, torch.randn(4, 3))


def test_a_declared_shape_must_match_the_example(tmp_path):
    with pytest.raises(ContractError, match=r"shape: the contract declares \[4\], example_x has .* \[3\]"):
        export(MLP(), tmp_path / "m.pt", {"shape": [4]}, torch.randn(4, 3))
    assert export(MLP(), tmp_path / "m.pt", {"shape": [3]}, torch.randn(4, 3),
                  format="torchscript")["shape"] == [3]


VP_NOISE = {"time": "diffusion", "parameterization": "noise", "schedule": "vp:0.1,20",
            "time_range": [1e-3, 1.0]}


@pytest.mark.parametrize("contract", [
    {},
    VP_NOISE,
    {**VP_NOISE, "schedule": {"name": "vp", "beta_min": 0.1, "beta_max": 20}},
    {**VP_NOISE, "schedule": "cosine:0.008", "parameterization": "v", "time_range": [0, 0.99]},
    {"parameterization": "data", "schedule": {"name": "linear", "sigma_min": 0}, "time_range": [0, 0.999]},
    {"parameterization": "score", "schedule": "ve:0.01,50", "time_range": [0, 1],
     "prior": {"name": "normal", "scale": 50}},
    {"prior": "normal:2.5", "data": {"levels": 256, "scale": "logit:0.05"}, "signature": "(x,t)"},
    {**VP_NOISE, "schedule": "vp:0.1, 20", "time_range": "0.001, 1"},  # text forms, spaced as flowlik allows
])
def test_valid_contracts_are_kept_as_given(contract):
    assert validate_contract(contract) == contract


@pytest.mark.parametrize("contract,field,expected", [
    ({"sigature": "(x, t)"}, "sigature", "not a contract field (valid: signature, time_input"),
    ({"signature": "(x, y)"}, "signature", "unknown value '(x, y)' (valid: (x, t), (t, x))"),
    ({"time_input": "matrix"}, "time_input", "unknown value 'matrix' (valid: vector, scalar)"),
    ({"time": "reverse"}, "time", "unknown value 'reverse' (valid: flow, diffusion)"),
    ({"parameterization": "eps"}, "parameterization",
     "unknown value 'eps' (valid: velocity, data, noise, score, v)"),
    ({**VP_NOISE, "schedule": "edm"}, "schedule", "unknown schedule 'edm' (valid: linear, vp, cosine, ve)"),
    ({**VP_NOISE, "schedule": "vp:0.1"}, "schedule", "takes 2 parameter(s): vp:BETA_MIN,BETA_MAX"),
    ({**VP_NOISE, "schedule": "vp:20,0.1"}, "schedule", "vp needs 0 < beta_min < beta_max"),
    ({**VP_NOISE, "schedule": "vp:0.1,x"}, "schedule", "'x' is not a number"),
    ({**VP_NOISE, "schedule": "vp:0.1,20 "}, "schedule", "'20 ' is not a number"),  # as flowlik
    ({**VP_NOISE, "schedule": "vp:0.1,2_0"}, "schedule", "'2_0' is not a number"),
    ({**VP_NOISE, "schedule": {"name": "vp", "beta_max": 10}}, "schedule",
     "takes beta_min and beta_max together"),
    ({**VP_NOISE, "schedule": {"name": "vp", "beta_mx": 10}}, "schedule", "unknown key(s) beta_mx"),
    ({**VP_NOISE, "schedule": "ve"}, "schedule", "ve needs its range"),
    ({**VP_NOISE, "schedule": "linear:1.5"}, "schedule", "linear sigma_min must be in [0, 1)"),
    ({**VP_NOISE, "time_range": [0.5, 0.5]}, "time_range", "must satisfy 0 <= LO < HI <= 1"),
    ({**VP_NOISE, "time_range": [0, 1.5]}, "time_range", "must satisfy 0 <= LO < HI <= 1"),
    ({**VP_NOISE, "time_range": [0.1]}, "time_range", "expected [LO, HI]"),
    ({"prior": "laplace"}, "prior", "unknown prior 'laplace' (valid: standard, normal:SCALE)"),
    ({"prior": "normal:-1"}, "prior", "prior scale must be positive"),
    ({"prior": {"name": "normal", "scale": "big"}}, "prior", "'scale' must be a positive number"),
    ({"shape": [3, 0]}, "shape", "expected a list of positive integers"),
    ({"data": {"levels": 1000}}, "data", "'levels' must be an integer in [2, 256]"),
    ({"data": {"scale": "minmax"}}, "data", "unknown 'scale' 'minmax' (valid: unit, centered, logit"),
    ({"data": {"bits": 8}}, "data", "unknown key(s) bits"),
    ({"parameterization": "noise", "time_range": [0.001, 1]}, "schedule",
     "required for parameterization 'noise'"),
    ({"parameterization": "noise", "schedule": "vp"}, "time_range",
     "required for parameterization 'noise'"),
    ({**VP_NOISE, "parameterization": "v", "schedule": "linear"}, "parameterization",
     "'v' is defined on variance-preserving paths only (vp, cosine), not linear"),
    ({"parameterization": "noise", "schedule": "linear", "time_range": [0, 1]}, "time_range",
     "reaches flow time t = 0.0 where alpha = 0"),
    ({"parameterization": "data", "schedule": "vp", "time": "diffusion", "time_range": [0, 1]},
     "time_range", "reaches flow time t = 1.0 where sigma = 0"),
    ({"parameterization": "score", "schedule": "ve:0.01,50", "time_range": [0, 1]}, "prior",
     "required with a ve schedule"),
])
def test_a_bad_contract_field_is_named(tmp_path, contract, field, expected):
    with pytest.raises(ValueError) as error:
        export(MLP(), tmp_path / "m.pt", contract, torch.randn(4, 3))
    message = str(error.value)
    assert message.startswith(f"{field}: "), message
    assert expected in message, message
    assert not (tmp_path / "m.pt").exists()  # refused before anything is written


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match="method: unknown value 'compile' .valid: script, trace."):
        export(MLP(), tmp_path / "m.pt", {}, torch.randn(4, 3), method="compile")
    with pytest.raises(TypeError, match="contract: expected a dict"):
        export(MLP(), tmp_path / "m.pt", "velocity", torch.randn(4, 3))


def run_flowlik(*args):
    if not BIN.exists():
        pytest.skip(f"flowlik binary not found at {BIN}: build it or set FLOWLIK_BIN")
    proc = subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True, timeout=600,
                          stdin=subprocess.DEVNULL)
    command = " ".join(map(str, args))
    assert proc.returncode == 0, f"flowlik {command} exited {proc.returncode}:\n{proc.stderr}"
    return proc


def test_flowlik_scores_an_exported_model_with_its_embedded_manifest(tmp_path):
    path, data, report = tmp_path / "mlp.pt", tmp_path / "x.npy", tmp_path / "report.json"
    export(MLP(), path, {"parameterization": "velocity", "time": "diffusion"}, torch.randn(4, 3),
           format="torchscript")
    x = np.random.default_rng(0).standard_normal((6, 3)).astype(np.float32)
    np.save(data, x)
    run_flowlik("score", path, "--data", data, "-o", report, "-q")
    r = json.loads(report.read_text())
    contract = r["model"]["contract"]
    assert contract["sources"]["parameterization"] == "manifest (embedded)"
    assert contract["sources"]["time"] == "manifest (embedded)"
    assert contract["sources"]["shape"] == "manifest (embedded)"
    assert contract["time"] == "diffusion" and contract["shape"] == [3]
    assert r["samples"] == {"total": 6, "ok": 6, "excluded": 0}
    assert np.isfinite(r["metrics"]["log_likelihood"]["mean"])


def test_flowlik_scores_an_exported_noise_model(tmp_path):
    path, data, report = tmp_path / "eps.pt", tmp_path / "x.npy", tmp_path / "report.json"
    export(MLP(d=2), path, {**VP_NOISE, "schedule": {"name": "vp", "beta_min": 0.1, "beta_max": 20}},
           torch.randn(4, 2), format="torchscript", method="trace")
    np.save(data, np.random.default_rng(1).standard_normal((5, 2)).astype(np.float32))
    run_flowlik("score", path, "--data", data, "-o", report, "-q")
    contract = json.loads(report.read_text())["model"]["contract"]
    assert contract["sources"]["parameterization"] == "manifest (embedded)"
    assert contract["parameterization"] == "noise" and contract["schedule"] == "vp:0.1,20"
    assert contract["time_range"] == [1e-3, 1.0] and contract["flow_time_integrated"] == [0.999, 0.0]


class _ConditionalVelocity(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(3, 4)
        self.linear = torch.nn.Linear(4, 4)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.linear(x)) * t.reshape(-1, 1) + self.embed(y)


def test_class_conditional_export_round_trips(tmp_path):
    torch.manual_seed(0)
    model = _ConditionalVelocity()
    path = tmp_path / "cond.pt"
    manifest = export(model, path, {"conditioning": "label"}, torch.randn(5, 4), format="torchscript",
                      num_classes=3)
    assert manifest["conditioning"] == "label"
    loaded, _ = load_with_manifest(path)
    x, t, y = torch.randn(2, 4), torch.rand(2), torch.tensor([0, 2])
    assert torch.allclose(loaded(x, t, y), model(x, t, y))
    with pytest.raises(ValueError, match="num_classes"):
        export(model, tmp_path / "c2.pt", {"conditioning": "label"}, torch.randn(5, 4), format="torchscript")
    with pytest.raises(ValueError, match="conditioning"):
        export(model, tmp_path / "c3.pt", {"conditioning": "class"}, torch.randn(5, 4), format="torchscript",
               num_classes=3)
