"""export(): a trained model to a TorchScript file with its contract embedded as `flowlik.json`, checked
against the original on random inputs before it is handed back."""
import contextlib
import json
import os
import warnings

import torch

from flowlik_export.manifest import ContractError, parse_time_range, validate_contract

MANIFEST_NAME = "flowlik.json"
METHODS = ("script", "trace")
# Fractions of the time range at which the exported module is checked: both ends, where conversions are
# most delicate, and points between.
_CHECK_TIMES = (0.0, 0.1, 0.37, 0.5, 0.81, 1.0)
_SEED = 20240531


class ExportMismatchError(AssertionError):
    """The exported module's output differs from the original's."""


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


def _check_agreement(original, exported, manifest, example_x, method, check_batches, atol, rtol,
                     num_classes=None):
    """Calls both modules as flowlik will on random x at times across the time range; raises on a mismatch."""
    signature = manifest.get("signature", "(x, t)").replace(" ", "")
    time_input = manifest.get("time_input", "vector")
    lo, hi = parse_time_range(manifest.get("time_range", [0.0, 1.0]))
    scale = example_x.detach().double().std().item() if example_x.numel() > 1 else 1.0
    if not (scale > 0 and scale < float("inf")):
        scale = 1.0
    generator = torch.Generator().manual_seed(_SEED)
    hint = ("; a trace records one path through data-dependent control flow: try method='script'"
            if method == "trace" else "")
    for batch in check_batches:
        x = torch.randn((batch, *example_x.shape[1:]), generator=generator, dtype=torch.float64) * scale
        x = x.to(dtype=example_x.dtype, device=example_x.device)
        labels = (None if num_classes is None else
                  torch.randint(0, num_classes, (batch,), generator=generator).to(example_x.device))
        for fraction in _CHECK_TIMES:
            value = lo + fraction * (hi - lo)
            t = _time_tensor(value, batch, time_input, x)
            where = f"(batch {batch}, t = {value:g})"
            expected = _call(original, x, t, signature, time_input, where + " by the original module", labels)
            got = _call(exported, x, t, signature, time_input, where + " by the exported module", labels)
            _check_output(expected, x, where + " by the original module")
            _check_output(got, x, where + " by the exported module")
            if not torch.isfinite(got).all():
                raise ContractError(f"forward: returns non-finite values {where}; flowlik cannot integrate "
                                    f"it there (declare a time_range that avoids the singular end)")
            diff = (got.double() - expected.double()).abs()
            allowed = atol + rtol * expected.double().abs()
            if not (diff <= allowed).all():
                raise ExportMismatchError(
                    f"the exported module differs from the original {where}: max abs diff "
                    f"{diff.max().item():.3g} (atol {atol:g}, rtol {rtol:g})" + hint)


def export(module, path, contract, example_x, example_t=None, *, method="script", check_batches=(1, 3),
           atol=1e-5, rtol=1e-4, num_classes=None):
    """Exports `module` to the TorchScript file `path` with `contract` embedded as the manifest flowlik reads.

    module: a torch.nn.Module whose forward takes x [B, *shape] and t as the contract says.
    contract: the manifest fields (see README.md); "shape" is taken from example_x when absent.
    example_x: a batch of inputs [B, *shape], typical of the data (its std scales the random check inputs).
    example_t: t for tracing; by default the middle of the time range, as a vector [B] or a 0-d tensor.
    method: "script" (torch.jit.script) or "trace" (torch.jit.trace on the example inputs).
    check_batches, atol, rtol: batch sizes and tolerances of the check of the exported file against
    `module` at several times across the time range.

    num_classes: for a class-conditional model (contract "conditioning": "label", forward(x, t, y)), the
    number of classes; the check draws labels in [0, num_classes).

    Returns the manifest written. Raises ContractError (a ValueError) for a bad contract or a model that
    breaks it, ExportMismatchError (an AssertionError) when the exported module disagrees with `module`.
    """
    if method not in METHODS:
        raise ValueError(f"method: unknown value '{method}' (valid: {', '.join(METHODS)})")
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
    _check_agreement(module, loaded, manifest, example_x, method, check_batches, atol, rtol, num_classes)
    return manifest
