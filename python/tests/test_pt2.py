"""flowlik_export.export(format="pt2"): the package's compiled functions agree with the network and with
autograd, every parameterization's raw output converts to the closed-form velocity and trace, the metadata
round-trips, a model torch.export cannot take is refused naming the line at fault, the block follows the
model's cost, and a package that fails its check is not left on disk. (The architectures of torchcfm,
diffusers and EDM: test_architectures.py.)

AOTInductor compiles each function for tens of seconds: the compiled functions are cached in
tests/fixtures/pt2_cache.py's folder ($FLOWLIK_PT2_CACHE, else ~/.cache/flowlik/pt2), keyed by a hash of their
graph, weights and torch version, so a rerun compiles only what changed. Ten functions are compiled cold.
"""
import json
import logging
import pathlib
import sys
import warnings

import pytest
import torch

from flowlik_export import ContractError, ExportError, ExportMismatchError, export
from flowlik_export import pt2

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))
sys.path.insert(0, str(ROOT / "examples" / "digits"))

import export_pt2 as digits  # noqa: E402
from make_fixtures import GmmPath  # noqa: E402
from pt2_cache import pt2_cache_dir  # noqa: E402

DEPRECATIONS = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)
MIXTURE = {"weights": [0.5, 0.3, 0.2], "means": [[-2.0, 0.0], [2.0, 1.0], [0.0, -2.5]],
           "scales": [[0.4, 0.6], [0.7, 0.3], [0.5, 0.5]]}


@pytest.fixture(scope="session")
def cache_dir():
    return str(pt2_cache_dir())


def run(path, function, dtype, *inputs, k=None):
    return pt2.load_function(path, function, dtype, k).run(list(inputs))


def metadata_of(path, model_name):
    """The metadata as C++ reads it, without loading the model."""
    return torch._C._aoti.AOTIModelPackageLoader.load_metadata_from_package(str(path), model_name)


# --------------------------------------------------------------------------- the digits model
@pytest.fixture(scope="module")
def digits_package(tmp_path_factory, cache_dir):
    """The digits network exported as pt2 (float32), with the warnings its export raised."""
    scripted, manifest = digits.load_torchscript(str(ROOT / "examples" / "digits" / "model.pt"))
    model = digits.velocity_mlp().eval()
    model.load_state_dict(scripted.state_dict())
    x = digits.test_inputs(manifest)[:16].float()
    path = tmp_path_factory.mktemp("digits") / "model.pt2"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        written = export(model, path, manifest, x, cache_dir=cache_dir)
    return path, model, manifest, written, caught


def test_the_digits_model_exports_with_its_manifest_and_no_deprecation_warning(digits_package):
    path, _, manifest, written, caught = digits_package
    assert written == manifest
    assert [str(w.message) for w in caught if issubclass(w.category, DEPRECATIONS)] == []
    for name in ("velocity_float32", "vjp_k1_float32", "vjp_k8_float32"):
        metadata = metadata_of(path, name)
        assert json.loads(metadata.pop("flowlik.json")) == manifest
        assert {k: v for k, v in metadata.items() if k.startswith("flowlik.")} == {
            "flowlik.format": "2",
            "flowlik.dtype": "float32",
            "flowlik.device": "cpu",
            "flowlik.cpu": "native",  # this machine's instructions (cpu= not given)
            "flowlik.functions": "velocity,vjp",
            "flowlik.block": "32",  # 8192 values per call at D = 64
            "flowlik.blocks": "32",  # a call of 32 rows is cheap (1.5e7 operations): no small block
            "flowlik.probes": "1,8",
            "flowlik.torch_version": torch.__version__,
            "flowlik.parameters": "238656",  # as flowlik reports model.pt's
            "flowlik.parameter_dtype": "Float",
        }
        assert metadata["AOTI_DEVICE_KEY"] == "cpu"


def test_the_digits_package_agrees_with_autograd(digits_package):
    # At the compiled sizes (32 rows, 1 and 8 probes); flowlik's loader splits any other call into these
    # (tests/aoti_network_test.cpp).
    path, model, _, _, _ = digits_package
    g = torch.Generator().manual_seed(5)
    x = torch.randn((32, 64), generator=g)
    t = torch.rand((32,), generator=g)
    (out,) = run(path, "velocity", "float32", x, t)
    # Autograd on the eager network, not torch.func: an independent computation of the same numbers.
    xr = x.clone().requires_grad_(True)
    expected = model(xr.reshape(32, 8, 8), t).reshape(32, 64)
    torch.testing.assert_close(out, expected.detach(), rtol=1e-4, atol=1e-5)
    for k in (1, 8):
        probes = torch.randn((k, 32, 64), generator=g)
        out_v, vjp = run(path, "vjp", "float32", x, t, probes, k=k)
        assert vjp.shape == (k, 32, 64)
        torch.testing.assert_close(out_v, expected.detach(), rtol=1e-4, atol=1e-5)
        for j in range(k):
            (grad,) = torch.autograd.grad(expected, xr, probes[j], retain_graph=True)
            torch.testing.assert_close(vjp[j], grad, rtol=1e-4, atol=1e-5)


def test_the_committed_digits_package_matches_model_pt():
    path = ROOT / "examples" / "digits" / "model.pt2"
    scripted, manifest = digits.load_torchscript(str(ROOT / "examples" / "digits" / "model.pt"))
    worst = digits.check_against_torchscript(str(path), scripted, digits.test_inputs(manifest), digits.ATOL)
    assert worst["float64"] < 1e-10, worst  # the same arithmetic in float64, up to summation order
    for dtype in ("float32", "float64"):
        metadata = metadata_of(path, f"vjp_k8_{dtype}")
        assert json.loads(metadata["flowlik.json"]) == manifest
        assert metadata["flowlik.dtype"] == dtype and metadata["flowlik.functions"] == "velocity,vjp"


# --------------------------------------------------------------------------- parameterizations
def velocity_coefficients(parameterization, alpha, sigma, alpha_dot, sigma_dot):
    """(a, b) with v = a x + b out for a network predicting `parameterization` (shared/MATH.md section 4;
    v-prediction through D = alpha x - sigma v, E = sigma x + alpha v on a variance-preserving path)."""
    if parameterization == "velocity":
        return torch.zeros_like(alpha), torch.ones_like(alpha)
    if parameterization == "data":
        return sigma_dot / sigma, alpha_dot - sigma_dot * alpha / sigma
    if parameterization == "noise":
        return alpha_dot / alpha, sigma_dot - sigma * alpha_dot / alpha
    if parameterization == "score":
        return alpha_dot / alpha, sigma * sigma * alpha_dot / alpha - sigma * sigma_dot
    return alpha_dot * alpha + sigma_dot * sigma, sigma_dot * alpha - alpha_dot * sigma


@pytest.mark.parametrize("parameterization", ["velocity", "data", "noise", "score", "v"])
def test_each_parameterization_converts_outside_the_graph(tmp_path, cache_dir, parameterization):
    # The package holds the network's raw output; v = a x + b out and tr dv/dx = a D + b tr d out/dx must
    # give the closed-form velocity of the mixture and the trace of its Jacobian.
    w, mu, s = MIXTURE["weights"], MIXTURE["means"], MIXTURE["scales"]
    network = GmmPath(w, mu, s, "vp", (0.1, 20.0), parameterization, "flow")
    contract = {"parameterization": parameterization, "schedule": "vp:0.1,20", "time_range": [1e-3, 0.999]}
    path = tmp_path / f"{parameterization}.pt2"
    export(network, path, contract, torch.randn(4, 2, dtype=torch.float64), dtypes=("float64",),
           functions=("vjp",), probes=(2,), block=3, cache_dir=cache_dir)
    metadata = metadata_of(path, "vjp_k2_float64")
    assert (metadata["flowlik.functions"], metadata["flowlik.probes"], metadata["flowlik.block"]) == ("vjp", "2", "3")

    velocity = GmmPath(w, mu, s, "vp", (0.1, 20.0), "velocity", "flow")
    g = torch.Generator().manual_seed(3)
    for t_value in (0.05, 0.5, 0.95):
        x = 2 * torch.randn((3, 2), generator=g, dtype=torch.float64)
        t = torch.full((3,), t_value, dtype=torch.float64)
        out, columns = run(path, "vjp", "float64", x, t, torch.eye(2, dtype=torch.float64)[:, None, :].expand(2, 3, 2).contiguous(),
                           k=2)
        diag = columns.diagonal(dim1=0, dim2=2)  # [B, 2]: e_i^T d out / dx read at i
        torch.testing.assert_close(out, network(x, t), rtol=0, atol=1e-12)
        a, b = velocity_coefficients(parameterization, *network.coefficients(t[:, None]))
        torch.testing.assert_close(a * x + b * out, velocity(x, t), rtol=1e-9, atol=1e-9)
        trace = torch.stack([torch.autograd.functional.jacobian(lambda z: velocity(z[None], t[i:i + 1])[0],
                                                                x[i]).trace() for i in range(3)])
        torch.testing.assert_close(a[:, 0] * 2 + b[:, 0] * diag.sum(1), trace, rtol=1e-9, atol=1e-9)


# --------------------------------------------------------------------------- the wrapper's conventions
class ScalarTimeFirstConditional(torch.nn.Module):
    """forward(t, x, y): t a 0-d tensor, x [B, 2, 2], y [B] class labels."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.linear = torch.nn.Linear(4, 4)
        self.embed = torch.nn.Embedding(3, 4)

    def forward(self, t, x, y):
        if t.dim() != 0:
            raise RuntimeError("expected a scalar t")
        h = torch.tanh(self.linear(x.reshape(x.shape[0], 4))) * (1 + t) + self.embed(y)
        return h.reshape(x.shape)


SCALAR_CONTRACT = {"signature": "(t, x)", "time_input": "scalar", "conditioning": "label"}


def export_scalar_model(path, cache_dir, **options):
    x = torch.randn(4, 2, 2, dtype=torch.float64)
    return export(ScalarTimeFirstConditional().double(), path, SCALAR_CONTRACT, x, dtypes=("float64",),
                  functions=("vjp",), probes=(2,), block=5, num_classes=3, cache_dir=cache_dir, **options)


def test_scalar_time_time_first_signature_and_labels(tmp_path, cache_dir):
    model = ScalarTimeFirstConditional().double()
    path = tmp_path / "scalar.pt2"
    assert export_scalar_model(path, cache_dir) == {**SCALAR_CONTRACT, "shape": [2, 2]}
    x = torch.randn(5, 4, dtype=torch.float64)
    t = torch.full((5,), 0.3, dtype=torch.float64)  # a scalar-time model sees t[0]: all entries equal
    y = torch.tensor([0, 2, 1, 1, 0])
    probes = torch.randn(2, 5, 4, dtype=torch.float64)
    out, vjp = run(path, "vjp", "float64", x, t, probes, y, k=2)
    xr = x.clone().requires_grad_(True)
    expected = model(t[0], xr.reshape(5, 2, 2), y).reshape(5, 4)
    torch.testing.assert_close(out, expected.detach(), rtol=0, atol=1e-12)
    for k in range(2):
        (grad,) = torch.autograd.grad(expected, xr, probes[k], retain_graph=True)
        torch.testing.assert_close(vjp[k], grad, rtol=0, atol=1e-12)


def test_a_second_export_takes_the_compiled_functions_from_the_cache(tmp_path, cache_dir, caplog):
    export_scalar_model(tmp_path / "first.pt2", cache_dir)
    with caplog.at_level(logging.INFO, logger="flowlik_export.pt2"):
        export_scalar_model(tmp_path / "second.pt2", cache_dir)
    assert "vjp_k2_float64: compiled files from the cache" in caplog.text
    assert "compiled in" not in caplog.text


def _has_vector_bits(width):
    from torch._inductor.cpu_vec_isa import valid_vec_isa_list

    return any(isa.bit_width() == width for isa in valid_vec_isa_list())


def test_a_package_for_an_x86_64_level_says_so_and_runs_here(tmp_path, cache_dir):
    # cpu="x86-64-v3": g++ -march=x86-64-v3 and Inductor's 256-bit vector code, whatever this CPU has beyond
    # AVX2 (the shipped examples: a package made on an AVX-512 machine did not run on an AVX2 one).
    if not _has_vector_bits(256):
        pytest.skip("this machine has no AVX2 to run an x86-64-v3 package on")
    path = tmp_path / "v3.pt2"
    export_scalar_model(path, cache_dir, cpu="x86-64-v3")
    metadata = metadata_of(path, "vjp_k2_float64")
    assert (metadata["flowlik.cpu"], metadata["AOTI_CPU_ISA"]) == ("x86-64-v3", "AVX2")
    # And the default is this machine's own, recorded as such.
    export_scalar_model(tmp_path / "native.pt2", cache_dir)
    assert metadata_of(tmp_path / "native.pt2", "vjp_k2_float64")["flowlik.cpu"] == "native"


def test_a_cpu_target_that_cannot_be_compiled_or_checked_here_is_refused(tmp_path, cache_dir):
    with pytest.raises(ValueError, match=r"cpu: unknown value 'skylake' \(valid: native, x86-64-v3, x86-64-v4\)"):
        export_scalar_model(tmp_path / "a.pt2", cache_dir, cpu="skylake")
    with pytest.raises(ValueError, match="cpu: applies to format 'pt2' only"):
        export(ScalarTimeFirstConditional().double(), tmp_path / "a.pt", SCALAR_CONTRACT,
               torch.randn(4, 2, 2, dtype=torch.float64), format="torchscript", num_classes=3, cpu="x86-64-v3")
    if not _has_vector_bits(512):
        with pytest.raises(ValueError, match="cpu: this machine has no 512-bit vector instructions"):
            export_scalar_model(tmp_path / "a.pt2", cache_dir, cpu="x86-64-v4")
    assert not (tmp_path / "a.pt2").exists()


def test_the_compiled_code_checks_its_inputs_when_asked(tmp_path, cache_dir, monkeypatch):
    # flowlik's loader can set AOTI_RUNTIME_CHECK_INPUTS=1: then a wrong dtype, stride or size is an error,
    # not garbage.
    path = tmp_path / "checked.pt2"
    export_scalar_model(path, cache_dir)
    monkeypatch.setenv("AOTI_RUNTIME_CHECK_INPUTS", "1")
    vjp = pt2.load_function(path, "vjp", "float64", 2)
    x, t, y = torch.randn(5, 4, dtype=torch.float64), torch.zeros(5, dtype=torch.float64), torch.tensor([2] * 5)
    out, grads = vjp.run([x, t, torch.randn(2, 5, 4, dtype=torch.float64), y])
    assert out.shape == (5, 4) and grads.shape == (2, 5, 4)
    with pytest.raises(RuntimeError, match="unmatched dtype"):
        vjp.run([x.float(), t.float(), torch.randn(2, 5, 4), y])
    with pytest.raises(RuntimeError, match="unmatched stride"):
        vjp.run([torch.randn(4, 5, dtype=torch.float64).t(), t, torch.randn(2, 5, 4).double(), y])
    with pytest.raises(RuntimeError, match="unmatched dim value"):
        vjp.run([x[:3], t[:3], torch.randn(2, 3, 4).double(), y[:3]])


def _perturb_loads(monkeypatch, offset=0.0, metadata=None):
    """Makes the exporter's reload return the package's functions plus `offset`, with `metadata` changed."""
    real_loader = torch._C._aoti.AOTIModelPackageLoader

    class Perturbed:
        def __init__(self, inner):
            self.inner = inner

        def run(self, inputs):
            return [out + offset for out in self.inner.run(inputs)]

        def get_metadata(self):
            return {**self.inner.get_metadata(), **(metadata or {})}

    monkeypatch.setattr(torch._C._aoti, "AOTIModelPackageLoader", lambda *a: Perturbed(real_loader(*a)))


def test_a_package_that_disagrees_is_caught(tmp_path, cache_dir, monkeypatch):
    _perturb_loads(monkeypatch, offset=1e-3)
    path = tmp_path / "off.pt2"
    with pytest.raises(ExportMismatchError, match=r"vjp_k2_float64 \(out\) differs from eager torch.func "
                                                  r"\(t = 0\): max abs diff 0\.001"):
        export_scalar_model(path, cache_dir)
    assert not path.exists()  # never left to be scored


def test_metadata_that_does_not_read_back_is_caught(tmp_path, cache_dir, monkeypatch):
    _perturb_loads(monkeypatch, metadata={"flowlik.dtype": "float16"})
    with pytest.raises(ExportMismatchError, match=r"metadata of vjp_k2_float64 reads back as "
                                                  r"\{'flowlik.dtype': 'float16'\}"):
        export_scalar_model(tmp_path / "meta.pt2", cache_dir)


# --------------------------------------------------------------------------- static sizes
class DownUp(torch.nn.Module):
    """A strided convolution down, layer norm, a transposed convolution up, scaled by t: the operations whose
    vmap batching rules read sizes as integers, which made torch.export refuse dynamic B, K and C ("Constraints
    violated") or took the forward pass repeated per product."""

    def __init__(self):
        super().__init__()
        self.down = torch.nn.Conv2d(2, 4, 3, stride=2, padding=1)
        self.norm = torch.nn.LayerNorm([4, 3, 3])
        self.up = torch.nn.ConvTranspose2d(4, 2, 4, stride=2, padding=1)

    def forward(self, x, t):
        return self.up(torch.nn.functional.silu(self.norm(self.down(x)))) * t[:, None, None, None]


def count(program, op):
    return sum(1 for n in program.graph.nodes if n.op == "call_function" and n.target == op)


def test_the_vjp_runs_the_forward_once_for_all_probes_with_no_slowdown(recwarn):
    torch.manual_seed(0)
    module = DownUp().eval()
    shape = (2, 6, 6)
    spec = {"shape": shape, "dim": 72, "signature": "(x,t)", "time_input": "vector", "num_classes": None,
            "scale": 1.0, "device": "cpu", "t_mid": 0.5, "block": 3}
    params = pt2._parameters(module, torch.float64, "cpu")
    forward = pt2._export(module, "velocity", None, params, spec, torch.float64, "velocity_float64")
    vjp = pt2._export(module, "vjp", 8, params, spec, torch.float64, "vjp_k8_float64")
    layer_norm = torch.ops.aten.native_layer_norm.default
    assert count(forward, layer_norm) == 1 and count(vjp, layer_norm) == 1  # not 8: one forward pass
    assert count(vjp, torch.ops.aten.native_layer_norm_backward.default) == 1  # batched over the 8 probes
    assert [w for w in recwarn if issubclass(w.category, pt2.SlowdownWarning)] == []

    generator = torch.Generator().manual_seed(1)
    x = torch.randn((3, 72), generator=generator, dtype=torch.float64)
    t = torch.rand((3,), generator=generator, dtype=torch.float64)
    probes = torch.randn((8, 3, 72), generator=generator, dtype=torch.float64)
    got = vjp.module()(x, t, probes)
    xr = x.clone().requires_grad_(True)
    expected = module.double()(xr.reshape(3, *shape), t).reshape(3, 72)
    torch.testing.assert_close(got[0], expected.detach(), rtol=1e-12, atol=1e-12)
    for k in range(8):
        (grad,) = torch.autograd.grad(expected, xr, probes[k], retain_graph=True)
        torch.testing.assert_close(got[1][k], grad, rtol=1e-12, atol=1e-12)


class RunningMax(torch.nn.Module):
    """torch.cummax, whose backward (aten::cummaxmin_backward) has no vmap batching rule in this torch."""

    def forward(self, x, t):
        return torch.cummax(x, dim=1).values * t[:, None]


def test_an_operation_vmap_cannot_batch_is_a_warning_with_its_measured_cost():
    spec = {"shape": (6,), "dim": 6, "signature": "(x,t)", "time_input": "vector", "num_classes": None,
            "scale": 1.0, "device": "cpu", "t_mid": 0.5, "block": 4}
    module = RunningMax()
    with pytest.warns(pt2.SlowdownWarning) as caught:
        program = pt2._export(module, "vjp", 8, {}, spec, torch.float64, "vjp_k8_float64")
    (message,) = [str(w.message) for w in caught if issubclass(w.category, pt2.SlowdownWarning)]
    assert message.startswith("vjp_k8_float64: torch.vmap has no batching rule for aten::cummaxmin_backward, "
                              "so its backward runs once per probe (K = 8) in a loop; measured in eager "
                              "mode: "), message
    assert " ms per call, against " in message and " ms for one forward pass" in message, message
    # Still the right numbers: the loop is slow, not wrong.
    x, t = torch.randn(4, 6, dtype=torch.float64), torch.rand(4, dtype=torch.float64)
    probes = torch.randn(8, 4, 6, dtype=torch.float64)
    out, vjp = program.module()(x, t, probes)
    expected = pt2._vjp(module, (6,), "(x,t)", "vector")({}, x, t, probes)
    torch.testing.assert_close(vjp, expected[1])


@pytest.mark.parametrize("dim, operations, block", [
    (64, 5e5, 32),      # the digits MLP: 32 rows, at most 8192 values per call
    (3072, 1e6, 4),     # 3x32x32: 4 rows, the first to reach 8192 values (as flowlik's own rule)
    (256, 1.3e8, 4),    # the torchcfm UNet at 1x16x16: 4 rows reach 5e8 operations
    (1024, 2e9, 1),     # a UNet of 2 M parameters at 1x32x32: one row is work enough
])
def test_the_block_follows_the_models_size_and_cost(dim, operations, block):
    assert pt2.choose_block(dim, operations) == block


@pytest.mark.parametrize("dim, operations, blocks", [
    (64, 4.75e5, (32,)),     # the digits MLP: a call of 32 rows is 1.5e7 operations, cheap
    (64, 3.3e7, (16, 2)),    # the digits UNet: 16 rows (5.3e8 a call), and 2 for small runs
    (256, 1.3e8, (4, 1)),    # the torchcfm UNet at 1x16x16
    (1024, 2e9, (1,)),       # one row is work enough: nothing smaller
])
def test_a_costly_block_gets_a_small_one_for_small_runs(dim, operations, blocks):
    assert pt2.choose_blocks(dim, operations) == blocks


# --------------------------------------------------------------------------- refusals
class BranchOnTime(torch.nn.Module):
    """Data-dependent Python control flow: torch.export cannot trace it."""

    def forward(self, x, t):
        if bool(t[0] < 0.25):
            return x
        return 2.0 * x


def test_a_model_torch_export_cannot_take_is_named_with_its_line(tmp_path):
    path = tmp_path / "branch.pt2"
    with pytest.raises(ExportError) as error:
        export(BranchOnTime(), path, {}, torch.randn(4, 3))
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("forward: cannot be traced for velocity_float32 ("), message
    assert "test_pt2.py" in message and "in forward: if bool(t[0] < 0.25):" in message, message
    assert "no Python branch on a tensor's value" in message, message
    assert "torchscript" not in message, message  # the way out is in the model, not the deprecated format
    assert not path.exists()


def test_the_exporter_lets_the_models_own_warnings_through(tmp_path):
    class WarnsAndHalves(torch.nn.Module):
        def forward(self, x, t):
            warnings.warn("this model's own deprecation", FutureWarning)
            return x[:, :1]

    with pytest.warns(FutureWarning, match="this model's own deprecation"):
        with pytest.raises(ContractError, match=r"returns shape \[1, 1\] for x of shape \[1, 3\]"):
            export(WarnsAndHalves(), tmp_path / "w.pt2", {}, torch.randn(4, 3))


@pytest.mark.parametrize("options,expected", [
    ({"format": "onnx"}, "format: unknown value 'onnx' (valid: pt2, torchscript)"),
    ({"method": "trace"}, "method: applies to format 'torchscript' only"),
    ({"dtypes": ("float16",)}, "dtypes: expected distinct names from float32, float64, got ('float16',)"),
    ({"dtypes": "float32"}, "dtypes: expected distinct names from float32, float64, got 'float32'"),
    ({"dtypes": ("float64", "float64")}, "dtypes: expected distinct names"),
    ({"device": "tpu"}, "device: unknown value 'tpu' (valid: cpu, cuda)"),
    ({"functions": ("diag",)}, "functions: expected distinct names from velocity, vjp"),
    ({"probes": (0,)}, "probes: expected distinct probe counts from 1 to 4096, got (0,)"),
    ({"probes": 8}, "probes: expected distinct probe counts from 1 to 4096, got 8"),
    ({"block": 0}, "block: expected rows per call from 1 to 4096 (an int, or a tuple of distinct ones), got 0"),
    ({"block": (4, 4)},
     "block: expected rows per call from 1 to 4096 (an int, or a tuple of distinct ones), got (4, 4)"),
    ({"block": ()}, "block: expected rows per call"),
    ({"format": "torchscript", "probes": (1,)}, "probes: applies to format 'pt2' only"),
    ({"format": "torchscript", "dtypes": ("float64",)}, "dtypes: applies to format 'pt2' only"),
    ({"format": "torchscript", "cache_dir": "c"}, "cache_dir: applies to format 'pt2' only"),
])
def test_bad_pt2_arguments_are_named(tmp_path, options, expected):
    path = tmp_path / ("m.pt" if options.get("format") == "torchscript" else "m.pt2")
    with pytest.raises(ValueError) as error:
        export(BranchOnTime(), path, {}, torch.randn(4, 3), **options)
    assert str(error.value).startswith(expected), str(error.value)
    assert not path.exists()


def test_a_pt2_path_and_module_are_checked(tmp_path):
    with pytest.raises(ValueError, match=r"path: a pt2 package's name must end in \.pt2, got '.*m\.pt'"):
        export(BranchOnTime(), tmp_path / "m.pt", {}, torch.randn(4, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script's own deprecation
        scripted = torch.jit.script(BranchOnTime())
    with pytest.raises(ValueError, match="module: a TorchScript module cannot be traced for format 'pt2'"):
        export(scripted, tmp_path / "m.pt2", {}, torch.randn(4, 3))
