"""export(): a trained model to an AOTInductor package (format "pt2", see pt2.py) or a TorchScript file, with
its contract embedded as `flowlik.json`, checked against the original on random inputs before it is handed
back."""
import contextlib
import json
import os
import warnings

import torch

from flowlik_export.manifest import ContractError, parse_time_range, validate_contract

MANIFEST_NAME = "flowlik.json"
METHODS = ("script", "trace")
FORMATS = ("pt2", "torchscript")
PT2_DTYPES = ("float32", "float64")
PT2_DEVICES = ("cpu", "cuda")
PT2_FUNCTIONS = ("velocity", "vjp")
# Fractions of the time range at which the exported module is checked: both ends, where conversions are
# most delicate, and points between.
_CHECK_TIMES = (0.0, 0.1, 0.37, 0.5, 0.81, 1.0)
_SEED = 20240531


class ExportMismatchError(AssertionError):
    """The exported module's output differs from the original's."""


class ExportError(RuntimeError):
    """torch.export cannot trace the model, or AOTInductor cannot compile it (format "pt2")."""


@contextlib.contextmanager
def _quiet_jit():
    """Hides torch.jit's deprecation FutureWarnings (its script, trace, save and load); others still show."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated",
                                category=FutureWarning)
        yield


def _time_tensor(value, batch, time_input, like):
    """t as the contract declares it: [batch] (vector) or 0-d (scalar), in x's dtype and device."""
    if time_input == "vector":
        return torch.full((batch,), value, dtype=like.dtype, device=like.device)
    return torch.tensor(value, dtype=like.dtype, device=like.device)


def _arguments(x, t, signature, labels=None):
    """forward's arguments in the contract's order; a class-conditional model takes the labels last."""
    args = (x, t) if signature == "(x,t)" else (t, x)
    return args if labels is None else args + (labels,)


def _check_example_t(example_t, example_x, time_input):
    if not isinstance(example_t, torch.Tensor):
        raise ContractError(f"example_t: expected a tensor, got {type(example_t).__name__}")
    expected = (example_x.shape[0],) if time_input == "vector" else ()
    if tuple(example_t.shape) != expected:
        raise ContractError(f"example_t: time_input '{time_input}' needs shape {list(expected)}, "
                            f"got {list(example_t.shape)}")


def _pt2_options(dtypes, device, functions, probes, block):
    """dtypes, device, functions, probes and block for format "pt2", defaults filled in, each checked."""
    dtypes = ("float32",) if dtypes is None else dtypes
    if (isinstance(dtypes, str) or not dtypes or len(set(dtypes)) != len(dtypes)
            or not all(d in PT2_DTYPES for d in dtypes)):
        raise ValueError(f"dtypes: expected distinct names from {', '.join(PT2_DTYPES)}, got {dtypes!r}")
    device = "cpu" if device is None else device
    if device not in PT2_DEVICES:
        raise ValueError(f"device: unknown value '{device}' (valid: {', '.join(PT2_DEVICES)})")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: cuda is not available, and AOTInductor compiles for a device it sees")
    functions = PT2_FUNCTIONS if functions is None else functions
    if (isinstance(functions, str) or not functions or len(set(functions)) != len(functions)
            or not all(f in PT2_FUNCTIONS for f in functions)):
        raise ValueError(f"functions: expected distinct names from {', '.join(PT2_FUNCTIONS)}, "
                         f"got {functions!r}")
    probes = (1, 8) if probes is None else probes
    if (isinstance(probes, (str, int)) or not probes or len(set(probes)) != len(probes)
            or not all(isinstance(k, int) and not isinstance(k, bool) and 1 <= k <= 4096 for k in probes)):
        raise ValueError(f"probes: expected distinct probe counts from 1 to 4096, got {probes!r}")
    blocks = None
    if block is not None:
        blocks = (block,) if isinstance(block, int) and not isinstance(block, bool) else block
        if (isinstance(blocks, (str, bytes)) or not hasattr(blocks, "__len__") or not blocks
                or len(set(blocks)) != len(blocks)
                or not all(isinstance(b, int) and not isinstance(b, bool) and 1 <= b <= 4096 for b in blocks)):
            raise ValueError(f"block: expected rows per call from 1 to 4096 (an int, or a tuple of distinct "
                             f"ones), got {block!r}")
        blocks = tuple(sorted(blocks, reverse=True))
    # In the package's order, whatever the order given: the metadata lists them so.
    return (tuple(dtypes), device, tuple(f for f in PT2_FUNCTIONS if f in functions), tuple(sorted(probes)),
            blocks)


def _to_torchscript(module, method, example_args):
    if isinstance(module, torch.jit.ScriptModule):
        return module
    if method == "script":
        return torch.jit.script(module)
    # The trace's own checker reruns the same inputs only; _check_agreement below uses fresh ones.
    return torch.jit.trace(module, example_args, check_trace=False)


def _check_output(out, x, where):
    if not isinstance(out, torch.Tensor):
        raise ContractError(f"forward: returns {type(out).__name__} {where}, expected a tensor of x's shape")
    if not out.is_floating_point():
        raise ContractError(f"forward: returns a tensor of dtype {out.dtype} {where}, "
                            f"expected floating point")
    if out.shape != x.shape:
        raise ContractError(f"forward: returns shape {list(out.shape)} for x of shape {list(x.shape)} "
                            f"{where}, expected the same")


def _call(module, x, t, signature, time_input, where, labels=None):
    try:
        with torch.no_grad():
            return module(*_arguments(x.clone(), t.clone(), signature, labels))
    except Exception as e:  # the model's own error, whatever its type: name the call that failed
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ContractError(f"forward: fails {where}, called as forward{signature.replace(',', ', ')} with "
                            f"t a {time_input} ({first})") from e


def _input_scale(example_x):
    """The std of example_x, the scale of the random check inputs; 1 where it is not a positive number."""
    scale = example_x.detach().double().std().item() if example_x.numel() > 1 else 1.0
    return scale if 0 < scale < float("inf") else 1.0


def _check_points(manifest, example_x, check_batches, num_classes=None):
    """(x, labels, t value, where) at which an export is checked: random x [batch, *shape] scaled like example_x
    for each batch size, at times across the time range."""
    lo, hi = parse_time_range(manifest.get("time_range", [0.0, 1.0]))
    scale = _input_scale(example_x)
    generator = torch.Generator().manual_seed(_SEED)
    for batch in check_batches:
        x = torch.randn((batch, *example_x.shape[1:]), generator=generator, dtype=torch.float64) * scale
        x = x.to(dtype=example_x.dtype, device=example_x.device)
        labels = (None if num_classes is None else
                  torch.randint(0, num_classes, (batch,), generator=generator).to(example_x.device))
        for fraction in _CHECK_TIMES:
            value = lo + fraction * (hi - lo)
            yield x, labels, value, f"(batch {batch}, t = {value:g})"


def _check_finite(out, where):
    if not torch.isfinite(out).all():
        raise ContractError(f"forward: returns non-finite values {where}; flowlik cannot integrate "
                            f"it there (declare a time_range that avoids the singular end)")


def _check_eager(module, manifest, example_x, check_batches, num_classes=None):
    """Calls `module` as flowlik will at the check points: the contract's checks, before a long compile."""
    signature = manifest.get("signature", "(x, t)").replace(" ", "")
    time_input = manifest.get("time_input", "vector")
    for x, labels, value, where in _check_points(manifest, example_x, check_batches, num_classes):
        t = _time_tensor(value, x.shape[0], time_input, x)
        out = _call(module, x, t, signature, time_input, where, labels)
        _check_output(out, x, where)
        _check_finite(out, where)


def _check_agreement(original, exported, manifest, example_x, method, check_batches, atol, rtol,
                     num_classes=None):
    """Calls both modules as flowlik will on random x at times across the time range; raises on a mismatch."""
    signature = manifest.get("signature", "(x, t)").replace(" ", "")
    time_input = manifest.get("time_input", "vector")
    hint = ("; a trace records one path through data-dependent control flow: try method='script'"
            if method == "trace" else "")
    for x, labels, value, where in _check_points(manifest, example_x, check_batches, num_classes):
        t = _time_tensor(value, x.shape[0], time_input, x)
        expected = _call(original, x, t, signature, time_input, where + " by the original module", labels)
        got = _call(exported, x, t, signature, time_input, where + " by the exported module", labels)
        _check_output(expected, x, where + " by the original module")
        _check_output(got, x, where + " by the exported module")
        _check_finite(got, where)
        diff = (got.double() - expected.double()).abs()
        allowed = atol + rtol * expected.double().abs()
        if not (diff <= allowed).all():
            raise ExportMismatchError(
                f"the exported module differs from the original {where}: max abs diff "
                f"{diff.max().item():.3g} (atol {atol:g}, rtol {rtol:g})" + hint)


def export(module, path, contract, example_x, example_t=None, *, format="pt2", method=None, dtypes=None,
           device=None, functions=None, probes=None, block=None, cache_dir=None, check_batches=(1, 3), atol=None,
           rtol=None, num_classes=None, cpu=None):
    """Exports `module` to `path` with `contract` embedded as the manifest flowlik reads.

    module: a torch.nn.Module whose forward takes x [B, *shape] and t as the contract says.
    contract: the manifest fields (see README.md); "shape" is taken from example_x when absent.
    example_x: a batch of inputs [B, *shape], typical of the data (its std scales the random check inputs).
    example_t: t for method="trace"; by default the middle of the time range, as a vector [B] or a 0-d
    tensor.
    format: "pt2" (an AOTInductor package, `path` ending in .pt2: the network's output and its vector-Jacobian
    products, compiled ahead of time for static sizes; see pt2.py) or "torchscript".
    method (torchscript only): "script" (torch.jit.script, the default) or "trace" (torch.jit.trace on the
    example inputs).
    dtypes (pt2 only): the dtypes compiled, from ("float32", "float64"); ("float32",) by default.
    device (pt2 only): "cpu" (default) or "cuda", the device the package runs on.
    functions (pt2 only): the functions compiled, from ("velocity", "vjp"); both by default (flowlik needs
    both to score).
    probes (pt2 only): the numbers of Hutchinson probes K the vjp is compiled for, (1, 8) by default: a run
    with K probes uses the smallest compiled K >= K (unused probes are zero), or several calls of the
    largest; the exact trace takes the diagonal in groups of the largest. Each K is one more compile.
    block (pt2 only): the rows of every call, or several sizes (block=(16, 2)), each compiled; a run uses the
    largest, or, when it has at most a quarter of that many rows, the largest other block its rows fill more than
    half of, else the smallest (docs/reproducibility.md). By default from the model's size and cost (pt2.choose_blocks):
    one block, or two where a call of the large one is costly, so that a small run does not pay for it.
    cpu (pt2 only): the CPUs the package's code runs on: "native" (default: those with every instruction
    this machine has, as AOTInductor compiles), "x86-64-v3" (any x86-64 CPU with AVX2, FMA and BMI2, about
    2015 on) or "x86-64-v4" (AVX-512). A package to share, ship or score on other machines: "x86-64-v3".
    cache_dir (pt2 only): a folder of compiled functions keyed by a hash of their graph, weights, compiler
    options, torch version and machine; an identical function is taken from it instead of compiled again.
    check_batches: batch sizes at which `module` is called to check the contract before exporting (and,
    for torchscript, at which the exported file is compared with it).
    atol, rtol: the tolerances of that comparison; by default 1e-5 and 1e-4 for torchscript, and for pt2
    ones that follow each dtype's rounding (pt2.tolerances).

    num_classes: for a class-conditional model (contract "conditioning": "label", forward(x, t, y)), the
    number of classes; the check draws labels in [0, num_classes).

    Returns the manifest written. Raises ContractError (a ValueError) for a bad contract or a model that
    breaks it, ExportMismatchError (an AssertionError) when the exported file disagrees with `module`,
    ExportError (a RuntimeError) when torch.export or AOTInductor cannot take the model (pt2).
    """
    if format not in FORMATS:
        raise ValueError(f"format: unknown value '{format}' (valid: {', '.join(FORMATS)})")
    if method is not None and method not in METHODS:
        raise ValueError(f"method: unknown value '{method}' (valid: {', '.join(METHODS)})")
    if format == "torchscript":
        for name, value in (("dtypes", dtypes), ("device", device), ("functions", functions),
                            ("probes", probes), ("block", block), ("cache_dir", cache_dir), ("cpu", cpu)):
            if value is not None:
                raise ValueError(f"{name}: applies to format 'pt2' only")
        method = method or "script"
    elif method is not None:
        raise ValueError("method: applies to format 'torchscript' only (pt2 traces with torch.export)")
    else:
        dtypes, device, functions, probes, block = _pt2_options(dtypes, device, functions, probes, block)
        cpu = "native" if cpu is None else cpu
        from flowlik_export import pt2  # imported on use: it loads torch._inductor

        pt2.check_cpu_target(cpu, device)
    if not isinstance(example_x, torch.Tensor) or example_x.dim() < 2 or example_x.shape[0] < 1:
        raise ValueError("example_x: expected a tensor [B, *shape] with B >= 1")
    if not example_x.is_floating_point():
        raise ValueError(f"example_x: expected a floating-point tensor, got {example_x.dtype}")
    if not check_batches or not all(isinstance(b, int) and b >= 1 for b in check_batches):
        raise ValueError(f"check_batches: expected positive batch sizes, got {check_batches!r}")

    manifest = validate_contract(contract)
    shape = list(example_x.shape[1:])
    if "shape" in manifest and manifest["shape"] != shape:
        raise ContractError(f"shape: the contract declares {manifest['shape']}, example_x has per-sample "
                            f"shape {shape}")
    manifest.setdefault("shape", shape)
    text = json.dumps(manifest, allow_nan=False)

    time_input = manifest.get("time_input", "vector")
    if example_t is None:
        lo, hi = parse_time_range(manifest.get("time_range", [0.0, 1.0]))
        example_t = _time_tensor(0.5 * (lo + hi), example_x.shape[0], time_input, example_x)
    else:
        _check_example_t(example_t, example_x, time_input)
    conditional = manifest.get("conditioning", "none") == "label"
    if conditional != (num_classes is not None):
        raise ValueError("num_classes: give it exactly when the contract says \"conditioning\": \"label\"")
    if conditional and not (isinstance(num_classes, int) and num_classes >= 1):
        raise ValueError(f"num_classes: expected a positive int, got {num_classes!r}")
    example_labels = (torch.zeros(example_x.shape[0], dtype=torch.int64, device=example_x.device)
                      if conditional else None)
    example_args = _arguments(example_x, example_t, manifest.get("signature", "(x, t)").replace(" ", ""),
                              example_labels)

    path = os.fspath(path)
    if format == "pt2":
        if not path.endswith(".pt2"):
            raise ValueError(f"path: a pt2 package's name must end in .pt2, got '{path}'")
        if isinstance(module, torch.jit.ScriptModule):
            raise ValueError("module: a TorchScript module cannot be traced for format 'pt2'; pass the eager "
                             "nn.Module, or use format=\"torchscript\"")
        module.eval()
        # Contract errors (output shape, time form, non-finite values) before a compile of tens of seconds.
        _check_eager(module, manifest, example_x, check_batches, num_classes)
        pt2.export_package(module, path, manifest, text, example_x, dtypes=dtypes, device=device,
                           functions=functions, probes=probes, blocks=block, cache_dir=cache_dir, atol=atol,
                           rtol=rtol, num_classes=num_classes, cpu=cpu)
        return manifest
    module.eval()
    with _quiet_jit():
        scripted = _to_torchscript(module, method, example_args)
        torch.jit.save(scripted, path, _extra_files={MANIFEST_NAME: text})
        extra = {MANIFEST_NAME: ""}
        loaded = torch.jit.load(path, map_location=example_x.device, _extra_files=extra)
    written = extra[MANIFEST_NAME]
    if isinstance(written, bytes):
        written = written.decode("utf-8")
    if not written or json.loads(written) != manifest:
        raise ExportMismatchError(f"{path}: the embedded {MANIFEST_NAME} reads back as {written!r}, "
                                  f"expected {text}")
    loaded.eval()
    _check_agreement(module, loaded, manifest, example_x, method, check_batches,
                     1e-5 if atol is None else atol, 1e-4 if rtol is None else rtol, num_classes)
    return manifest
