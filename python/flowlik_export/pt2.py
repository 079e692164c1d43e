"""format="pt2": one AOTInductor package (.pt2) holding, per dtype, three compiled functions of the network's
raw output, for flowlik's LibTorch loader (torch::inductor::AOTIModelPackageLoader, one model name each):

    velocity_<dtype>  (x [B, D], t [B][, y [B]])              -> out [B, D]
    vjp_<dtype>       (x [B, D], t [B], probes [K, B, D][, y]) -> (out [B, D], vjp [K, B, D])
    diag_<dtype>      (x [B, D], t [B], idx [C] int64[, y])    -> (out [B, D], diag [B, C])

`out` is what the network returns (velocity, data, noise, score or v, as the manifest says), not a velocity:
every parameterization's velocity is affine in x and out, v = a(t) x + b(t) out (shared/MATH.md section 4), so
flowlik converts outside the compiled graph, tr dv/dx = a D + b tr d out/dx, and one graph serves any schedule
or parameterization given at scoring time. The time convention is flowlik's too: t is the model's own time.

Each function is traced with make_fx in symbolic mode, the parameters passed explicitly (torch.func's
transforms cannot be exported directly), exported with dynamic B, K and C, and compiled with AOTInductor. The
package is then loaded back and checked against eager torch.func at times across the time range.

vjp and diag run the forward pass once and batch the K (or C) products with vmap over its pullback. Many of
vmap's C++ batching rules (convolution's backward, layer norm's, pooling's, upsampling's) read the batch
sizes as plain integers, which turns the symbolic K * B of the trace into constants, and torch.export then
refuses the dynamic dims ("Constraints violated (batch, probes)"). Convolution's, the one a convolutional
network needs, is replaced while tracing by a symbolic one (_symbolic_batching_rules). A function whose
vmap trace still specialises a size is exported instead from a plain VJP on the inputs repeated K (or C)
times: the forward pass then runs once per product, not once per sample (_REPEATED_BUILDERS; logged).
"""
import contextlib
import hashlib
import json
import logging
import math
import os
import pathlib
import shutil
import tempfile
import time
import traceback

import torch
from torch._inductor.package import package_aoti
from torch.fx.experimental.proxy_tensor import make_fx

from flowlik_export.exporter import (ExportError, ExportMismatchError, _check_finite, _check_points,
                                     _input_scale, _SEED)
from flowlik_export.manifest import parse_time_range

log = logging.getLogger(__name__)

FORMAT_VERSION = "1"
FUNCTIONS = ("velocity", "vjp", "diag")
# AOTInductor's options. Line tables would double each library's size and serve only profilers.
# check_lowerbound is off because, on, the input checks a loader turns on with AOTI_RUNTIME_CHECK_INPUTS=1
# (dtype, shape, strides) would refuse B, K or C = 1, which the symbolic trace assumed away (_TRACE_SIZES).
_INDUCTOR_OPTIONS = {"aot_inductor.package": True, "aot_inductor.enable_line_tables": False,
                     "aot_inductor.check_lowerbound": False}
DTYPES = {"float32": torch.float32, "float64": torch.float64}
# Sizes of the dynamic dimensions at tracing time. make_fx's symbolic mode specialises sizes 0 and 1 and
# assumes the others are >= 2 (a branch on B > 1 is kept without a guard: the check at batch 1 catches it),
# and it gives inputs of equal sizes one symbol ("duck sizing"), so each must be >= 2 and differ from the
# others and from every fixed size (D, the parameters' dimensions): _trace_sizes takes the first free.
_TRACE_SIZES = (5, 3, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47)


def model_name(function, dtype):
    """The name flowlik passes to AOTIModelPackageLoader: velocity_float32, vjp_float64, ..."""
    return f"{function}_{dtype}"


# --------------------------------------------------------------------------- the compiled functions
def _network(module, params, shape, signature, time_input, t, labels):
    """x [B, D] -> the network's output [B, D] at time t [B] (and labels (y [B],) or ()), x reshaped to
    [B, *shape]."""

    def call(x):
        b = x.shape[0]
        # A scalar-time model sees t[0]: flowlik passes one time for the whole batch.
        time = t if time_input == "vector" else t[0]
        xs = x.reshape(b, *shape)
        args = ((xs, time) if signature == "(x,t)" else (time, xs)) + tuple(labels)
        return torch.func.functional_call(module, params, args).reshape(x.shape)

    return call


def _velocity(module, shape, signature, time_input):
    def velocity(params, x, t, *labels):
        return _network(module, params, shape, signature, time_input, t, labels)(x)

    return velocity


def _vjp(module, shape, signature, time_input):
    def vjp(params, x, t, probes, *labels):
        # One forward pass; the K products probes[k]^T d out / dx batched by vmap.
        out, pull = torch.func.vjp(_network(module, params, shape, signature, time_input, t, labels), x)
        (grads,) = torch.func.vmap(pull)(probes)  # [K, B, D]
        return out, grads

    return vjp


def _diag(module, shape, signature, time_input):
    def diag(params, x, t, idx, *labels):
        # d out[b, i] / d x[b, i] for i in idx: the VJP with the one-hot row e_i, read at i. Gathered rather
        # than summed against e_i, so an infinite off-diagonal entry cannot turn the result into nan.
        out, pull = torch.func.vjp(_network(module, params, shape, signature, time_input, t, labels), x)
        b, d = x.shape
        onehot = (idx[:, None] == torch.arange(d, device=x.device)).to(x.dtype)  # [C, D]
        (grads,) = torch.func.vmap(pull)(onehot[:, None, :].expand(-1, b, -1))  # [C, B, D]
        picked = grads.gather(2, idx[:, None, None].expand(-1, b, 1)).squeeze(2)  # [C, B]
        return out, picked.transpose(0, 1).contiguous()

    return diag


_BUILDERS = {"velocity": _velocity, "vjp": _vjp, "diag": _diag}


# The fallbacks, for a network whose vmap trace specialises B, K or C: no vmap, one plain VJP of the network
# on the inputs repeated n times ([n * B, D]) against the n cotangents laid end to end, so the forward pass
# runs n times per sample. Same results as _vjp and _diag (out is the first copy's).
def _repeated(v, n):
    """v [B, ...] -> [n * B, ...]: n copies end to end."""
    return v.expand(n, *v.shape).reshape(n * v.shape[0], *v.shape[1:])


def _repeated_network(module, params, shape, signature, time_input, t, labels, n):
    return _network(module, params, shape, signature, time_input, _repeated(t, n),
                    tuple(_repeated(y, n) for y in labels))


def _vjp_repeated(module, shape, signature, time_input):
    def vjp(params, x, t, probes, *labels):
        k, b, d = probes.shape
        out, pull = torch.func.vjp(
            _repeated_network(module, params, shape, signature, time_input, t, labels, k), _repeated(x, k))
        (grads,) = pull(probes.reshape(k * b, d))
        return out[:b], grads.reshape(k, b, d)

    return vjp


def _diag_repeated(module, shape, signature, time_input):
    def diag(params, x, t, idx, *labels):
        b, d = x.shape
        c = idx.shape[0]
        out, pull = torch.func.vjp(
            _repeated_network(module, params, shape, signature, time_input, t, labels, c), _repeated(x, c))
        onehot = (idx[:, None] == torch.arange(d, device=x.device)).to(x.dtype)  # [C, D]
        (grads,) = pull(onehot[:, None, :].expand(-1, b, -1).reshape(c * b, d))
        picked = grads.reshape(c, b, d).gather(2, idx[:, None, None].expand(-1, b, 1)).squeeze(2)  # [C, B]
        return out[:b], picked.transpose(0, 1).contiguous()

    return diag


_REPEATED_BUILDERS = {"vjp": _vjp_repeated, "diag": _diag_repeated}


def _convolution_backward_vmap(info, in_dims, grad_output, input, weight, bias_sizes, stride, padding,
                               dilation, transposed, output_padding, groups, output_mask):
    """aten.convolution_backward under vmap, for a batched grad_output against unbatched weights (the
    pullback of a convolution vmapped over its cotangents): the vmap dim folded into the convolution's batch
    as the C++ rule does, with symbolic sizes. Other cases raise, and the function falls back to
    _REPEATED_BUILDERS."""
    grad_dim, input_dim, weight_dim = in_dims[:3]
    if grad_dim is None or weight_dim is not None or output_mask[1]:
        raise NotImplementedError("flowlik's vmap rule for convolution_backward takes a batched grad_output "
                                  "against unbatched weights only")
    grad = grad_output.movedim(grad_dim, 0)
    k, n = grad.shape[0], grad.shape[1]
    grad_input = grad_bias = None
    if output_mask[0]:
        # The input's values are not read for grad_input, only its shape: a stride-0 stand-in.
        like = input if input_dim is None else input.select(input_dim, 0)
        dummy = like.new_empty(()).expand(k * n, *like.shape[1:])
        grad_input = torch.ops.aten.convolution_backward(
            grad.reshape(k * n, *grad.shape[2:]), dummy, weight, bias_sizes, stride, padding, dilation,
            transposed, output_padding, groups, [True, False, False])[0]
        grad_input = grad_input.reshape(k, n, *grad_input.shape[1:])
    if output_mask[2]:
        grad_bias = grad.sum([1, *range(3, grad.dim())])
    return ((grad_input, None, grad_bias),
            (None if grad_input is None else 0, None, None if grad_bias is None else 0))


@contextlib.contextmanager
def _symbolic_batching_rules():
    """While tracing: aten.convolution_backward's vmap rule replaced by _convolution_backward_vmap (the C++
    one reads the sizes as integers). The registration is this process's while it lasts and removed after;
    where this torch cannot register it, nothing is replaced and the fallback covers convolutions."""
    lib = None
    try:
        lib = torch.library.Library("aten", "IMPL")
        torch.library.register_vmap("aten::convolution_backward", _convolution_backward_vmap, lib=lib)
    except Exception as e:  # an API this torch version lacks
        log.debug("no symbolic vmap rule for convolution_backward: %s", _first_line(e))
        if lib is not None:
            lib._destroy()
            lib = None
    try:
        yield
    finally:
        if lib is not None:
            lib._destroy()


class _Graph(torch.nn.Module):
    """A traced fn(params, *inputs) with the parameters held as buffers: torch.export lifts them into the
    compiled model's constants, and the inputs are only the tensors flowlik passes."""

    def __init__(self, graph, params):
        super().__init__()
        self.graph_module = graph
        self.names = tuple(params)
        for i, value in enumerate(params.values()):
            self.register_buffer(f"p{i}", value)

    def forward(self, *inputs):
        params = {name: getattr(self, f"p{i}") for i, name in enumerate(self.names)}
        return self.graph_module(params, *inputs)


# --------------------------------------------------------------------------- tracing
def _trace_sizes(fixed):
    """B, K, C for tracing: distinct, >= 2, and none equal to a fixed size."""
    free = [n for n in _TRACE_SIZES if n not in fixed]
    return free[0], free[1], free[2]


def _user_frame(error):
    """'file:line in function: code' of the innermost frame outside torch and this package, or ''."""
    skip = (os.path.dirname(torch.__file__), os.path.dirname(__file__))
    frames = [f for f in traceback.extract_tb(error.__traceback__)
              if not f.filename.startswith(skip) and not f.filename.startswith("<")]
    if not frames:
        return ""
    f = frames[-1]
    return f", at {os.path.basename(f.filename)}:{f.lineno} in {f.name}: {(f.line or '').strip()}"


def _first_line(error):
    text = str(error).strip()
    return " ".join(text.splitlines()[0].split()) if text else type(error).__name__


def _inputs(function, x, t, y, k, c, generator):
    """The compiled function's inputs after x and t: probes [K, B, D] or idx [C], then labels."""
    b, d = x.shape
    if function == "vjp":
        extra = (torch.randn((k, b, d), generator=generator, dtype=torch.float64).to(x.dtype).to(x.device),)
    elif function == "diag":
        extra = (torch.randint(0, d, (c,), generator=generator).to(x.device),)
    else:
        extra = ()
    return (x, t, *extra) + (() if y is None else (y,))


def _export_function(module, function, params, spec, sizes, generator):
    """The torch.export ExportedProgram of one compiled function, dynamic in B, K and C."""
    b, k, c = sizes
    dtype, device, d = spec["dtype"], spec["device"], spec["dim"]
    x = (torch.randn((b, d), generator=generator, dtype=torch.float64) * spec["scale"]).to(dtype).to(device)
    t = torch.full((b,), spec["t_mid"], dtype=dtype, device=device)
    y = None
    if spec["num_classes"] is not None:
        y = torch.randint(0, spec["num_classes"], (b,), generator=generator).to(device)
    inputs = _inputs(function, x, t, y, k, c, generator)
    batch = torch.export.Dim("batch", min=1)
    dims = [{0: batch}, {0: batch}]
    if function == "vjp":
        dims.append({0: torch.export.Dim("probes", min=1), 1: batch})
    elif function == "diag":
        dims.append({0: torch.export.Dim("directions", min=1)})
    if y is not None:
        dims.append({0: batch})

    # The vmap form first (one forward pass per sample); where its trace specialises a size or fails, the
    # repeated form (module docstring). The errors reported are the last form's: those of the model itself.
    builders = [_BUILDERS[function], *([_REPEATED_BUILDERS[function]] if function in _REPEATED_BUILDERS
                                       else [])]
    for i, builder in enumerate(builders):
        last = i == len(builders) - 1
        fn = builder(module, spec["shape"], spec["signature"], spec["time_input"])
        try:
            with _symbolic_batching_rules():
                graph = make_fx(fn, tracing_mode="symbolic")(params, *inputs)
        except Exception as e:  # whatever the model raised while traced: name it and the line
            if not last:
                log.info("%s: the vmap trace failed (%s); tracing the forward pass repeated per product",
                         function, _first_line(e))
                continue
            raise ExportError(f"forward: cannot be traced for the pt2 function {function} ({_first_line(e)}"
                              f"{_user_frame(e)}); export with format=\"torchscript\" instead") from e
        try:
            return torch.export.export(_Graph(graph, params), inputs, dynamic_shapes=(tuple(dims),))
        except Exception as e:
            if not last:
                log.info("%s: the vmap trace is not dynamic in B, K and C (%s); exporting the forward pass "
                         "repeated per product instead", function, _first_line(e))
                continue
            raise ExportError(f"forward: torch.export cannot take its {function} graph for format 'pt2' "
                              f"({_first_line(e)}); export with format=\"torchscript\" instead") from e


# --------------------------------------------------------------------------- compiling and packaging
def _cache_key(program, device):
    """A hash of everything the compiled files depend on: the graph, its weights, the compiler's options,
    torch's version and the machine the code is generated for. Not the metadata: it lives in JSON files
    beside the library and is written into them afterwards (_stamp_metadata)."""
    from torch._inductor.codecache import get_device_information

    h = hashlib.sha256()
    for part in (torch.__version__, json.dumps(get_device_information(device), sort_keys=True),
                 json.dumps(_INDUCTOR_OPTIONS, sort_keys=True), program.graph_module.code,
                 str(program.graph_signature), str(sorted(map(str, program.range_constraints.values())))):
        h.update(part.encode())
        h.update(b"\0")
    for name, value in sorted({**program.state_dict, **program.constants}.items()):
        if isinstance(value, torch.Tensor):
            h.update(name.encode())
            h.update(str((value.dtype, tuple(value.shape))).encode())
            h.update(value.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:32]


def _compile(program):
    """AOTInductor's files for one model, in the compiler's own (shared) cache folder."""
    args, kwargs = program.example_inputs
    # An empty metadata dict of our own: AOTInductor adds its keys to the one it is given.
    options = {**_INDUCTOR_OPTIONS, "aot_inductor.metadata": {}}
    try:
        files = torch._inductor.aot_compile(program.module(check_guards=False), args, kwargs,
                                            options=options)
    except Exception as e:
        raise ExportError(f"forward: AOTInductor cannot compile it ({_first_line(e)}); export with "
                          f"format=\"torchscript\" instead") from e
    for f in files:
        if not isinstance(f, str):
            raise ExportError(f"forward: AOTInductor returned {type(f).__name__} apart from its library")
    return files


def _compiled_files(program, device, cache_dir, name, out_dir):
    """The model's files copied into out_dir, from cache_dir when an identical one was compiled before."""
    key = _cache_key(program, device)
    cached = None if cache_dir is None else pathlib.Path(cache_dir) / key
    listing = None if cached is None else cached / "files.json"
    if listing is not None and listing.exists():
        files = [str(cached / f) for f in json.loads(listing.read_text())]
        log.info("%s: compiled files from the cache (%s)", name, cached)
    else:
        start = time.perf_counter()
        files = _compile(program)
        log.info("%s: compiled in %.1f s", name, time.perf_counter() - start)
        if cached is not None:
            # Filled under a temporary name and renamed: a concurrent or interrupted run never sees half.
            os.makedirs(cache_dir, exist_ok=True)
            staging = tempfile.mkdtemp(dir=cache_dir, prefix=f".{key}.")
            for f in files:
                shutil.copy(f, staging)
            with open(os.path.join(staging, "files.json"), "w") as out:
                json.dump([os.path.basename(f) for f in files], out)
            try:
                os.rename(staging, cached)
            except OSError:  # another run stored the same key first
                shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(out_dir)
    return [shutil.copy(f, os.path.join(out_dir, os.path.basename(f))) for f in files]


def _stamp_metadata(files, metadata):
    """Writes `metadata` into the model's *_metadata.json files, where the loader reads it, beside the keys
    AOTInductor put there (AOTI_DEVICE_KEY, ...)."""
    stamped = 0
    for f in files:
        if f.endswith("_metadata.json"):
            with open(f) as inp:
                data = {k: v for k, v in json.load(inp).items() if not k.startswith("flowlik.")}
            with open(f, "w") as out:
                json.dump({**data, **metadata}, out)
            stamped += 1
    if not stamped:
        raise ExportError("forward: AOTInductor wrote no metadata file to hold the manifest")


# c10::toString's names, which flowlik reports for a TorchScript model's parameters.
_C10_DTYPE_NAMES = {torch.float32: "Float", torch.float64: "Double", torch.float16: "Half",
                    torch.bfloat16: "BFloat16"}


def metadata_for(manifest_text, dtype, device, functions, module):
    """The metadata every model of the package carries (get_metadata() in C++). The parameter count and
    dtype describe `module` as trained, as flowlik reports them for a TorchScript file."""
    parameters = list(module.parameters())
    first = parameters[0].dtype if parameters else None
    return {
        "flowlik.json": manifest_text,
        "flowlik.format": FORMAT_VERSION,
        "flowlik.dtype": dtype,
        "flowlik.device": device,
        "flowlik.functions": ",".join(functions),
        "flowlik.torch_version": torch.__version__,
        "flowlik.parameters": str(sum(p.numel() for p in parameters)),
        "flowlik.parameter_dtype": ("none" if first is None
                                    else _C10_DTYPE_NAMES.get(first, str(first).replace("torch.", ""))),
    }


def write_package(path, compiled):
    """Packs {model name: AOTInductor files} into the one archive `path`, written whole or not at all."""
    path = os.path.abspath(os.fspath(path))
    # Staged under the same file name: the archive's top folder is named after the file.
    staging = tempfile.mkdtemp(dir=os.path.dirname(path), prefix=".flowlik-")
    try:
        package_aoti(os.path.join(staging, os.path.basename(path)), compiled)
        os.replace(os.path.join(staging, os.path.basename(path)), path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# --------------------------------------------------------------------------- export and check
def _parameters(module, dtype, device):
    """The module's parameters and buffers by name, detached, floating ones cast to dtype, on device."""
    tensors = {**dict(module.named_parameters()), **dict(module.named_buffers())}
    return {name: (v.detach().to(device=device, dtype=dtype) if v.is_floating_point()
                   else v.detach().to(device)) for name, v in tensors.items()}


def export_package(module, path, manifest, manifest_text, example_x, *, dtypes, device, functions,
                   cache_dir, check_batches, atol, rtol, num_classes):
    """Traces, compiles and packages `functions` for each dtype into `path`, then checks the package."""
    shape = tuple(manifest["shape"])
    lo, hi = parse_time_range(manifest.get("time_range", [0.0, 1.0]))
    spec = {
        "shape": shape,
        "dim": math.prod(shape),
        "signature": manifest.get("signature", "(x, t)").replace(" ", ""),
        "time_input": manifest.get("time_input", "vector"),
        "num_classes": num_classes,
        "scale": _input_scale(example_x),
        "device": device,
        "t_mid": 0.5 * (lo + hi),
    }
    compiled = {}
    with tempfile.TemporaryDirectory(prefix="flowlik-pt2-") as work_dir:
        for dtype in dtypes:
            params = _parameters(module, DTYPES[dtype], device)
            sizes = _trace_sizes({spec["dim"], *shape, *(n for p in params.values() for n in p.shape)})
            metadata = metadata_for(manifest_text, dtype, device, functions, module)
            for function in functions:
                name = model_name(function, dtype)
                program = _export_function(module, function, params, {**spec, "dtype": DTYPES[dtype]}, sizes,
                                           torch.Generator().manual_seed(_SEED))
                files = _compiled_files(program, device, cache_dir, name, os.path.join(work_dir, name))
                _stamp_metadata(files, metadata)
                compiled[name] = files
        write_package(path, compiled)
    for dtype in dtypes:
        check_package(path, module, manifest, example_x, dtype=dtype, device=device, functions=functions,
                      expected_metadata=metadata_for(manifest_text, dtype, device, functions, module),
                      check_batches=check_batches, atol=atol, rtol=rtol, num_classes=num_classes)


def load_function(path, function, dtype):
    """One compiled function of the package, loaded as flowlik's C++ loader does."""
    return torch._C._aoti.AOTIModelPackageLoader(os.fspath(path), model_name(function, dtype))


def _compare(got, expected, atol, rtol, what, where):
    diff = (got.double() - expected.double()).abs()
    allowed = atol + rtol * expected.double().abs()
    if got.shape != expected.shape or not (diff <= allowed).all():
        detail = (f"shape {list(got.shape)}, expected {list(expected.shape)}" if got.shape != expected.shape
                  else f"max abs diff {diff.max().item():.3g} (atol {atol:g}, rtol {rtol:g})")
        raise ExportMismatchError(f"{what} differs from eager torch.func {where}: {detail}")


@contextlib.contextmanager
def _runtime_input_checks():
    """Turns on the compiled code's own checks of its inputs' dtype, shape and strides (read by each library
    when first run), so the check below also shows B, K, C = 1 pass them."""
    previous = os.environ.get("AOTI_RUNTIME_CHECK_INPUTS")
    os.environ["AOTI_RUNTIME_CHECK_INPUTS"] = "1"
    try:
        yield
    finally:
        if previous is None:
            del os.environ["AOTI_RUNTIME_CHECK_INPUTS"]
        else:
            os.environ["AOTI_RUNTIME_CHECK_INPUTS"] = previous


def check_package(path, module, manifest, example_x, *, dtype, device, functions, expected_metadata,
                  check_batches, atol, rtol, num_classes=None):
    """Loads each function of `dtype` back and compares it with eager torch.func on fresh inputs at times
    across the time range; checks the metadata read back."""
    with _runtime_input_checks():
        _check_functions(path, module, manifest, example_x, dtype, device, functions, expected_metadata,
                         check_batches, atol, rtol, num_classes)


def _check_functions(path, module, manifest, example_x, dtype, device, functions, expected_metadata,
                     check_batches, atol, rtol, num_classes):
    shape = tuple(manifest["shape"])
    signature = manifest.get("signature", "(x, t)").replace(" ", "")
    time_input = manifest.get("time_input", "vector")
    params = _parameters(module, DTYPES[dtype], device)
    loaded = {}
    for function in functions:
        name = model_name(function, dtype)
        loaded[function] = load_function(path, function, dtype)
        metadata = loaded[function].get_metadata()
        wrong = {k: metadata.get(k) for k, v in expected_metadata.items() if metadata.get(k) != v}
        if wrong:
            raise ExportMismatchError(f"{os.fspath(path)}: metadata of {name} reads back as {wrong!r}, "
                                      f"expected {({k: expected_metadata[k] for k in wrong})!r}")
    generator = torch.Generator().manual_seed(_SEED + 1)
    points = _check_points(manifest, example_x, check_batches, num_classes)
    for i, (x, labels, value, where) in enumerate(points):
        b = x.shape[0]
        x = x.reshape(b, -1).to(device=device, dtype=DTYPES[dtype])
        t = torch.full((b,), value, dtype=x.dtype, device=device)
        y = None if labels is None else labels.to(device)
        # K and C change from one check to the next, starting at 1: the compiled sizes are dynamic.
        k, c = 1 + i % 3, min(x.shape[1], 1 + (3 * i) % 8)
        for function in functions:
            what = model_name(function, dtype)
            inputs = _inputs(function, x, t, y, k, c, generator)
            with torch.no_grad():
                got = loaded[function].run(list(inputs))
            expected = _BUILDERS[function](module, shape, signature, time_input)(params, *inputs)
            expected = [expected] if isinstance(expected, torch.Tensor) else list(expected)
            _check_finite(expected[0], where)
            if len(got) != len(expected):
                raise ExportMismatchError(f"{what} returns {len(got)} tensors, expected {len(expected)}")
            for g, e, part in zip(got, expected, ("out", function)):
                _compare(g, e.detach(), atol, rtol, f"{what} ({part})", where)
