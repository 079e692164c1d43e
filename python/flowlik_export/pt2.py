"""format="pt2": one AOTInductor package (.pt2) holding, per dtype, compiled functions of the network's raw
output for flowlik's LibTorch loader (torch::inductor::AOTIModelPackageLoader, one model name each), every one
for static sizes:

    velocity_<dtype>      (x [B, D], t [B][, y [B]])              -> out [B, D]
    vjp_k<K>_<dtype>      (x [B, D], t [B], probes [K, B, D][, y]) -> (out [B, D], vjp [K, B, D])

one vjp per K in the export's `probes` (1 and 8 by default), and the same again, named velocity_b<b>_<dtype>
and vjp_k<K>_b<b>_<dtype>, for each smaller block b the package also has (flowlik.blocks). `out` is what the
network returns (velocity, data, noise, score or v, as the manifest says), not a velocity: every
parameterization's velocity is affine in x and out, v = a(t) x + b(t) out (shared/MATH.md section 4), so
flowlik converts outside the compiled graph, tr dv/dx = a D + b tr d out/dx, and one graph serves any schedule
or parameterization given at scoring time. The time convention is flowlik's too: t is the model's own time.

Static sizes, because flowlik's runtime needs no other (issue 18): every network call of a solve has the same
number of rows B, a block the package chooses (choose_blocks) and records (flowlik.block), so that a row's
value never depends on the rows beside it (a run that has too few rows to fill it uses a smaller compiled
block, the same for all of the run's calls: flowlik.blocks); K probes are fixed per run, and the exact trace's
diagonal is the VJP against one-hot probes, read at their index, in groups of the largest K. flowlik splits
any call into these pieces and pads the last one. Static sizes let vmap's batching rules read sizes as integers
(no "Constraints violated"), turn a missing batching rule into a static loop, and give Inductor fixed shapes.

Each function is traced with make_fx in fake mode (no computation; a data-dependent branch is an error, not a
silently recorded path), the parameters passed explicitly (torch.func's transforms cannot be exported
directly), exported with torch.export and compiled with AOTInductor, in parallel processes where there are
cores. vjp runs the forward pass once per sample and batches the K products with vmap over its pullback.
Attention is traced in PyTorch's math form (matmul and softmax, which vmap batches) rather than a fused CPU
kernel whose backward has no batching rule. Anything that still costs speed (a vmap fallback) is a warning
with its measured cost. The package is then loaded back and checked against eager torch.func at times across
the time range, and removed when the check fails.
"""
import concurrent.futures
import contextlib
import hashlib
import json
import logging
import math
import multiprocessing
import os
import pathlib
import re
import shutil
import tempfile
import time
import traceback
import warnings

import torch
from torch._inductor.package import package_aoti
from torch.fx.experimental.proxy_tensor import make_fx
from torch.nn.attention import SDPBackend, sdpa_kernel

from flowlik_export.exporter import ExportError, ExportMismatchError, _check_finite, _input_scale, _SEED
from flowlik_export.manifest import parse_time_range

log = logging.getLogger(__name__)

FORMAT_VERSION = "2"
FUNCTIONS = ("velocity", "vjp")
DEFAULT_PROBES = (1, 8)
# AOTInductor's options. Line tables would double each library's size and serve only profilers. The
# wrapper (the C++ that calls the kernels in order and holds the weights) compiles at -O0 in place of
# torch's -O1: its g++ time halves (about 15 CPU s a dtype on the 1.6 M-parameter UNet) and a call takes
# the same time (measured 0.99x, bit-identical outputs: the work is in the kernels, compiled at -O3 either
# way; docs/speed.md).
_INDUCTOR_OPTIONS = {"aot_inductor.package": True, "aot_inductor.enable_line_tables": False,
                     "aot_inductor.compile_wrapper_opt_level": "O0"}
# The CPUs a package's code may be compiled for (export's cpu=). "native" is AOTInductor's default: g++
# -march=native and the widest vector ISA of the exporting machine, so the package runs only on CPUs with
# every instruction that machine has (a package exported on an AVX-512 machine stops with an illegal
# instruction on an AVX2 one; flowlik refuses it first). The x86-64 micro-architecture levels compile for
# an instruction set instead: x86-64-v3 (AVX2, FMA, F16C, BMI2: x86-64 CPUs since about 2015) and
# x86-64-v4 (AVX-512), with Inductor's vector code as wide.
CPU_TARGETS = {"native": {}, "x86-64-v3": {"cpp.march": "x86-64-v3", "cpp.simdlen": 256},
               "x86-64-v4": {"cpp.march": "x86-64-v4", "cpp.simdlen": 512}}
DTYPES = {"float32": torch.float32, "float64": torch.float64}
# The block: at most 32 rows and about 8192 values per call (a small model's calls are dominated by their
# overhead), and no more rows than reach about 5e8 floating-point operations of the forward pass, where a
# row of a large network already keeps the CPU busy (so that a small run, or a dataset's last block, does
# not pay for many rows it discards; issue 18). Fewer rows cost more per row even compiled: measured on this
# project's machine (one core, beside other work), the embedded digits UNet (3.3e7 operations per row) takes
# 1.88, 1.50 and 0.79 ms a row for its velocity, and 4.7, 3.4 and 1.5 ms for its K = 1 vjp, at 1, 4 and 16
# rows; its block is 16. Eager, the 1x16x16 UNet of the tests (1.3e8) costs 4.4, 2.5, 1.9 and 2.3 ms a row
# at 1, 4, 8 and 32 rows; its block is 4.
# A block whose call is costly (more than _SMALL_CALL_OPERATIONS) gets a second, small one, the block the same
# rule gives for an eighth of the operations, for runs too small to fill it (issue 18 item 8): measured on the
# digits UNet, 2 samples cost 5.2x in a block of 16 what they cost in a block of 2. Each block is compiled, so
# a second one doubles the export's compiles and the package's size; a model whose large call is cheap (the
# digits MLP: 1.5e7 operations for 32 rows) has one block.
_MAX_BLOCK = 32
_VALUES_PER_CALL = 8192
_OPERATIONS_PER_CALL = 5e8
_SMALL_CALL_OPERATIONS = _OPERATIONS_PER_CALL / 8


class SlowdownWarning(UserWarning):
    """Something in the model makes a compiled function slower than it could be; the message says what and
    what it was measured to cost."""


def model_name(function, dtype, probes=None, block=None):
    """The name flowlik passes to AOTIModelPackageLoader: velocity_float32, vjp_k8_float64, ..., and for a
    block other than the package's first (flowlik.block): velocity_b2_float32, vjp_k8_b2_float32."""
    parts = [function] + ([] if function == "velocity" else [f"k{probes}"]) + ([] if block is None else [f"b{block}"])
    return "_".join(parts + [dtype])


def _models(functions, probes, dtype, blocks):
    """(function, K or None, block, model name) of every compiled function of one dtype, for blocks (largest
    first: the package's own block, whose functions carry no block in their names)."""
    out = []
    for block in blocks:
        for function in functions:
            for k in ((None,) if function == "velocity" else probes):
                out.append((function, k, block, model_name(function, dtype, k, None if block == blocks[0] else block)))
    return out


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


_BUILDERS = {"velocity": _velocity, "vjp": _vjp}


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
def _user_frame(error):
    """'file:line in function: code' of the innermost frame outside torch and this package, or ''."""
    # Folder names end in a separator: torchcfm's files are not torch's.
    skip = (os.path.dirname(torch.__file__) + os.sep, os.path.dirname(__file__) + os.sep)
    frames = [f for f in traceback.extract_tb(error.__traceback__)
              if not f.filename.startswith(skip) and not f.filename.startswith("<")]
    if not frames:
        return ""
    f = frames[-1]
    return f", at {os.path.basename(f.filename)}:{f.lineno} in {f.name}: {(f.line or '').strip()}"


def _first_line(error):
    text = str(error).strip()
    return " ".join(text.splitlines()[0].split()) if text else type(error).__name__


def _inputs(function, x, t, y, k, generator):
    """The compiled function's inputs: x, t, then probes [K, B, D] for vjp, then labels."""
    b, d = x.shape
    extra = ()
    if function == "vjp":
        extra = (torch.randn((k, b, d), generator=generator, dtype=torch.float64).to(x.dtype).to(x.device),)
    return (x, t, *extra) + (() if y is None else (y,))


def _example(spec, dtype, generator, t_value=None):
    """x [B, D] scaled like the example data, t [B] and labels [B] (or None) for one call."""
    b, d = spec["block"], spec["dim"]
    x = (torch.randn((b, d), generator=generator, dtype=torch.float64) * spec["scale"]).to(dtype)
    t = torch.full((b,), spec["t_mid"] if t_value is None else t_value, dtype=dtype)
    y = None
    if spec["num_classes"] is not None:
        y = torch.randint(0, spec["num_classes"], (b,), generator=generator)
    return x.to(spec["device"]), t.to(spec["device"]), None if y is None else y.to(spec["device"])


_VMAP_FALLBACK = re.compile(r"batching rule for (\S+?)[.,]? ")


def _trace(module, function, k, params, spec, dtype, name):
    """make_fx's graph of one function at the static sizes, and the vmap fallbacks its trace took."""
    x, t, y = _example(spec, dtype, torch.Generator().manual_seed(_SEED))
    inputs = _inputs(function, x, t, y, k, torch.Generator().manual_seed(_SEED))
    fn = _BUILDERS[function](module, spec["shape"], spec["signature"], spec["time_input"])

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with sdpa_kernel(SDPBackend.MATH):
                graph = make_fx(fn, tracing_mode="fake")(params, *inputs)
        except Exception as e:  # whatever the model raised while traced: name it and the line
            raise ExportError(f"forward: cannot be traced for {name} ({_first_line(e)}{_user_frame(e)}); "
                              f"flowlik needs a graph of tensor operations: no Python branch on a tensor's "
                              f"value, no .item() or .tolist(), no NumPy") from e
    fallbacks = []
    for w in caught:
        match = _VMAP_FALLBACK.search(str(w.message)) if "performance drop" in str(w.message) else None
        if match:
            fallbacks.append(match.group(1))
        else:  # the model's own warnings reach the user as they were raised
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return graph, inputs, sorted(set(fallbacks))


def _time_call(fn, *args):
    """Seconds of one call, the best of three after a warm-up."""
    with torch.no_grad():
        fn(*args)
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            fn(*args)
            best = min(best, time.perf_counter() - start)
    return best


def _warn_fallbacks(module, name, k, fallbacks, graph, params, inputs, spec):
    """A SlowdownWarning naming the operations vmap loops over, with the vjp's measured cost against K
    forward passes of the network."""
    x, t = inputs[0], inputs[1]
    labels = inputs[3:]
    forward = _network(module, params, spec["shape"], spec["signature"], spec["time_input"], t, labels)
    vjp_s = _time_call(graph, params, *inputs)
    forward_s = _time_call(forward, x)
    warnings.warn(SlowdownWarning(
        f"{name}: torch.vmap has no batching rule for {', '.join(fallbacks)}, so its backward runs once per "
        f"probe (K = {k}) in a loop; measured in eager mode: {1e3 * vjp_s:.1f} ms per call, against "
        f"{1e3 * forward_s:.1f} ms for one forward pass (write the operation with ones vmap batches to avoid "
        f"it)"), stacklevel=4)


def _export(module, function, k, params, spec, dtype, name, warn=True):
    """torch.export's ExportedProgram of one function at the static sizes."""
    graph, inputs, fallbacks = _trace(module, function, k, params, spec, dtype, name)
    if fallbacks and warn:
        _warn_fallbacks(module, name, k, fallbacks, graph, params, inputs, spec)
    try:
        return torch.export.export(_Graph(graph, params), inputs)
    except Exception as e:
        raise ExportError(f"forward: torch.export cannot take the graph of {name} ({_first_line(e)}"
                          f"{_user_frame(e)})") from e


def _operations_per_row(module, params, spec, dtype):
    """Floating-point operations of the forward pass for one row, counted by torch's FlopCounterMode (0
    where it counts none)."""
    from torch.utils.flop_counter import FlopCounterMode

    one = {**spec, "block": 1}
    x, t, y = _example(one, dtype, torch.Generator().manual_seed(_SEED))
    forward = _network(module, params, spec["shape"], spec["signature"], spec["time_input"], t,
                       () if y is None else (y,))
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            forward(x)
    except Exception:  # the check before export reports the model's own errors
        return 0
    return counter.get_total_flops()


def choose_block(dim, operations_per_row, operations_per_call=_OPERATIONS_PER_CALL):
    """The rows of every call: a power of two, at most 32 and 8192 / D, and no more than reach
    operations_per_call."""
    block = 1
    while (block < _MAX_BLOCK and block * dim < _VALUES_PER_CALL
           and block * operations_per_row < operations_per_call):
        block *= 2
    return block


def choose_blocks(dim, operations_per_row):
    """The blocks a package is compiled for, largest first: choose_block's, and where its call costs more
    than _SMALL_CALL_OPERATIONS, the block choose_block gives for that many, for small runs."""
    large = choose_block(dim, operations_per_row)
    if large * operations_per_row <= _SMALL_CALL_OPERATIONS:
        return (large,)
    small = choose_block(dim, operations_per_row, _SMALL_CALL_OPERATIONS)
    return (large,) if small >= large else (large, small)


# --------------------------------------------------------------------------- compiling and packaging
def check_cpu_target(cpu, device):
    """Refuses a cpu= this machine cannot run (the package's check runs its code here) or that does not
    apply to the device."""
    import platform

    if cpu not in CPU_TARGETS:
        raise ValueError(f"cpu: unknown value '{cpu}' (valid: {', '.join(CPU_TARGETS)})")
    if cpu == "native":
        return
    if device != "cpu":
        raise ValueError(f"cpu: '{cpu}' applies to device 'cpu' only")
    if platform.machine() not in ("x86_64", "AMD64"):
        raise ValueError(f"cpu: '{cpu}' is an x86-64 level; this machine is {platform.machine()}")
    from torch._inductor.cpu_vec_isa import valid_vec_isa_list

    width = CPU_TARGETS[cpu]["cpp.simdlen"]
    if not any(isa.bit_width() == width for isa in valid_vec_isa_list()):
        raise ValueError(f"cpu: this machine has no {width}-bit vector instructions, which '{cpu}' needs "
                         f"(the package is checked by running it here); export it on a machine that has them")


def _cache_key(program, device, cpu):
    """A hash of everything the compiled files depend on: the graph, its weights, the compiler's options,
    torch's version and the machine the code is generated for. Not the metadata: it lives in JSON files
    beside the library and is written into them afterwards (_stamp_metadata)."""
    from torch._inductor.codecache import get_device_information

    h = hashlib.sha256()
    for part in (torch.__version__, json.dumps(get_device_information(device), sort_keys=True),
                 json.dumps({**_INDUCTOR_OPTIONS, **CPU_TARGETS[cpu]}, sort_keys=True), program.graph_module.code,
                 str(program.graph_signature), str(sorted(map(str, program.range_constraints.values())))):
        h.update(part.encode())
        h.update(b"\0")
    for name, value in sorted({**program.state_dict, **program.constants}.items()):
        if isinstance(value, torch.Tensor):
            h.update(name.encode())
            h.update(str((value.dtype, tuple(value.shape))).encode())
            h.update(value.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:32]


def _compile(program, cpu="native"):
    """AOTInductor's files for one model, for the CPUs `cpu` names (CPU_TARGETS), in the compiler's own
    (shared) cache folder."""
    args, kwargs = program.example_inputs
    # An empty metadata dict of our own: AOTInductor adds its keys to the one it is given.
    options = {**_INDUCTOR_OPTIONS, **CPU_TARGETS[cpu], "aot_inductor.metadata": {}}
    try:
        files = torch._inductor.aot_compile(program.module(check_guards=False), args, kwargs,
                                            options=options)
    except Exception as e:
        raise ExportError(f"forward: AOTInductor cannot compile it ({_first_line(e)})") from e
    for f in files:
        if not isinstance(f, str):
            raise ExportError(f"forward: AOTInductor returned {type(f).__name__} apart from its library")
    return files


def _cpus():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _compile_in_workers(programs, work_dir, cpu):
    """{name: files} of each {name: program}, compiled in parallel processes (python -m
    flowlik_export._compile_worker, one C++ compile each, as many at once as there are cores): each compile
    is one single-threaded C++ compiler run of tens of seconds. In this process where there is one core or one
    program."""
    if len(programs) <= 1 or _cpus() <= 1:
        return {name: _timed_compile(name, program, cpu) for name, program in programs.items()}
    import subprocess
    import sys

    env = {**os.environ, "TORCHINDUCTOR_COMPILE_THREADS": "1"}
    pending = list(programs.items())
    running, files = {}, {}
    while pending or running:
        while pending and len(running) < _cpus():
            name, program = pending.pop(0)
            saved = os.path.join(work_dir, f"{name}.program.pt2")
            torch.export.save(program, saved)
            result = os.path.join(work_dir, f"{name}.compiled.json")
            process = subprocess.Popen([sys.executable, "-m", "flowlik_export._compile_worker", saved, result, cpu],
                                       env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            running[name] = (process, result, time.perf_counter())
        name = next(iter(running))
        process, result, start = running.pop(name)
        _, stderr = process.communicate()
        outcome = json.loads(pathlib.Path(result).read_text()) if os.path.exists(result) else None
        if outcome is None or "error" in outcome:
            for other, _, _ in running.values():
                other.kill()
            detail = outcome["error"] if outcome else (stderr.strip().splitlines() or ["no output"])[-1]
            raise ExportError(f"forward: AOTInductor cannot compile {name} ({detail})")
        log.info("%s: compiled in %.1f s", name, time.perf_counter() - start)
        files[name] = outcome["files"]
    return files


def _timed_compile(name, program, cpu):
    start = time.perf_counter()
    files = _compile(program, cpu)
    log.info("%s: compiled in %.1f s", name, time.perf_counter() - start)
    return files


def _compiled_files(programs, device, cpu, cache_dir, work_dir):
    """{name: the model's files copied into work_dir/name}, taken from cache_dir where an identical one was
    compiled before, the others compiled (in parallel) and stored there."""
    keys = {name: _cache_key(program, device, cpu) for name, program in programs.items()}
    cached = {}
    for name, key in keys.items():
        listing = None if cache_dir is None else pathlib.Path(cache_dir) / key / "files.json"
        if listing is not None and listing.exists():
            cached[name] = [str(listing.parent / f) for f in json.loads(listing.read_text())]
            log.info("%s: compiled files from the cache (%s)", name, listing.parent)
    compiled = _compile_in_workers({n: p for n, p in programs.items() if n not in cached}, work_dir, cpu)
    for name, files in compiled.items():
        if cache_dir is None:
            continue
        # Filled under a temporary name and renamed: a concurrent or interrupted run never sees half.
        os.makedirs(cache_dir, exist_ok=True)
        staging = tempfile.mkdtemp(dir=cache_dir, prefix=f".{keys[name]}.")
        for f in files:
            shutil.copy(f, staging)
        with open(os.path.join(staging, "files.json"), "w") as out:
            json.dump([os.path.basename(f) for f in files], out)
        try:
            os.rename(staging, pathlib.Path(cache_dir) / keys[name])
        except OSError:  # another run stored the same key first
            shutil.rmtree(staging, ignore_errors=True)
    out = {}
    for name in programs:
        folder = os.path.join(work_dir, name)
        os.makedirs(folder)
        out[name] = [shutil.copy(f, os.path.join(folder, os.path.basename(f)))
                     for f in {**cached, **compiled}[name]]
    return out


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


def metadata_for(manifest_text, dtype, device, functions, module, blocks, probes, cpu="native"):
    """The metadata every model of the package carries (get_metadata() in C++). The parameter count and
    dtype describe `module` as trained, as flowlik reports them for a TorchScript file."""
    parameters = list(module.parameters())
    first = parameters[0].dtype if parameters else None
    return {
        "flowlik.json": manifest_text,
        "flowlik.format": FORMAT_VERSION,
        "flowlik.dtype": dtype,
        "flowlik.device": device,
        "flowlik.cpu": cpu,
        "flowlik.functions": ",".join(functions),
        "flowlik.block": str(blocks[0]),
        "flowlik.blocks": ",".join(str(b) for b in blocks),
        "flowlik.probes": ",".join(str(k) for k in probes) if "vjp" in functions else "",
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


def _check_dtype_runs(module, params, spec, dtype):
    """Calls the network once in `dtype`: a model that hard-codes float32 (torchcfm casts its input to
    self.dtype) is named as such before any trace."""
    x, t, y = _example({**spec, "block": 1}, DTYPES[dtype], torch.Generator().manual_seed(_SEED))
    forward = _network(module, params, spec["shape"], spec["signature"], spec["time_input"], t,
                       () if y is None else (y,))
    try:
        with torch.no_grad():
            out = forward(x)
    except Exception as e:
        raise ExportError(f"dtypes: the model does not run in {dtype} ({_first_line(e)}{_user_frame(e)}); "
                          f"a model that converts its input or parameters to a fixed dtype (torchcfm's UNet "
                          f"casts to float32) can be exported for that dtype only") from e
    if out.dtype != DTYPES[dtype]:
        raise ExportError(f"dtypes: the model returns {out.dtype} for {dtype} inputs and parameters; it "
                          f"hard-codes a dtype and can be exported for that dtype only")


def export_package(module, path, manifest, manifest_text, example_x, *, dtypes, device, functions, probes,
                   blocks, cache_dir, atol, rtol, num_classes, cpu="native"):
    """Traces every function of every dtype (so that a model that cannot be exported fails before any
    compile), compiles them, packages them into `path` and checks the package; a package that fails its
    check is removed."""
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
        "lo": lo,
        "hi": hi,
    }
    params_by_dtype = {dtype: _parameters(module, DTYPES[dtype], device) for dtype in dtypes}
    if blocks is None:
        operations = _operations_per_row(module, params_by_dtype[dtypes[0]], spec, DTYPES[dtypes[0]])
        blocks = choose_blocks(spec["dim"], operations)
    log.info("blocks of %s rows per call", " and ".join(map(str, blocks)))
    programs, metadata = {}, {}
    for dtype, params in params_by_dtype.items():
        _check_dtype_runs(module, params, spec, dtype)
        metadata[dtype] = metadata_for(manifest_text, dtype, device, functions, module, blocks, probes, cpu)
        for function, k, block, name in _models(functions, probes, dtype, blocks):
            start = time.perf_counter()
            # A vmap fallback is in the graph whatever its block: said once, for the first.
            programs[name] = _export(module, function, k, params, {**spec, "block": block}, DTYPES[dtype], name,
                                     warn=block == blocks[0])
            log.info("%s: traced and exported in %.1f s", name, time.perf_counter() - start)
    with tempfile.TemporaryDirectory(prefix="flowlik-pt2-") as work_dir:
        compiled = _compiled_files(programs, device, cpu, cache_dir, work_dir)
        for name, files in compiled.items():
            _stamp_metadata(files, metadata[name.rsplit("_", 1)[1]])
        write_package(path, compiled)
    try:
        for dtype in dtypes:
            check_package(path, module, manifest, example_x, dtype=dtype, device=device, functions=functions,
                          probes=probes, expected_metadata=metadata[dtype], atol=atol, rtol=rtol,
                          num_classes=num_classes)
    except BaseException:
        os.remove(path)  # never left on disk to be scored
        raise


def load_function(path, function, dtype, probes=None, block=None):
    """One compiled function of the package (block: one of its other blocks), loaded as flowlik's C++ loader
    does."""
    return torch._C._aoti.AOTIModelPackageLoader(os.fspath(path), model_name(function, dtype, probes, block))


def tolerances(dtype, atol=None, rtol=None):
    """The check's tolerances: those given, else ones that follow the dtype's rounding: 1024 units in the
    last place of the largest value compared (absolute), and 1024 of each value's own (relative). Compiled
    code reorders sums and fuses operations; a float32 VJP through a UNet differs from eager by ~100 ulp of
    its largest entry."""
    eps = torch.finfo(DTYPES[dtype]).eps
    return (1024 * eps if atol is None else atol), (1024 * eps if rtol is None else rtol), atol is None


def _compare(got, expected, tolerance, what, where):
    atol, rtol, scaled = tolerance
    diff = (got.double() - expected.double()).abs()
    reference = expected.double().abs()
    allowed = atol * (max(1.0, reference.max().item()) if scaled else 1.0) + rtol * reference
    if got.shape != expected.shape or not (diff <= allowed).all():
        detail = (f"shape {list(got.shape)}, expected {list(expected.shape)}" if got.shape != expected.shape
                  else f"max abs diff {diff.max().item():.3g} (atol {atol:g}{' x max|value|' if scaled else ''}, "
                       f"rtol {rtol:g})")
        raise ExportMismatchError(f"{what} differs from eager torch.func {where}: {detail}")


@contextlib.contextmanager
def _runtime_input_checks():
    """Turns on the compiled code's own checks of its inputs' dtype, shape and strides (read by each library
    when first run)."""
    previous = os.environ.get("AOTI_RUNTIME_CHECK_INPUTS")
    os.environ["AOTI_RUNTIME_CHECK_INPUTS"] = "1"
    try:
        yield
    finally:
        if previous is None:
            del os.environ["AOTI_RUNTIME_CHECK_INPUTS"]
        else:
            os.environ["AOTI_RUNTIME_CHECK_INPUTS"] = previous


def check_package(path, module, manifest, example_x, *, dtype, device, functions, probes, expected_metadata,
                  atol=None, rtol=None, num_classes=None):
    """Loads each function of `dtype` back and compares it with eager torch.func on fresh inputs at times
    across the time range; checks the metadata read back."""
    with _runtime_input_checks():
        _check_functions(path, module, manifest, example_x, dtype, device, functions, probes,
                         expected_metadata, tolerances(dtype, atol, rtol), num_classes)


# Fractions of the time range at which a package is checked: both ends and points between.
_CHECK_TIMES = (0.0, 0.1, 0.37, 0.5, 0.81, 1.0)


def _check_functions(path, module, manifest, example_x, dtype, device, functions, probes, expected_metadata,
                     tolerance, num_classes):
    shape = tuple(manifest["shape"])
    lo, hi = parse_time_range(manifest.get("time_range", [0.0, 1.0]))
    spec = {"shape": shape, "dim": math.prod(shape), "scale": _input_scale(example_x), "device": device,
            "num_classes": num_classes, "t_mid": lo}
    blocks = tuple(int(b) for b in expected_metadata["flowlik.blocks"].split(","))
    signature = manifest.get("signature", "(x, t)").replace(" ", "")
    time_input = manifest.get("time_input", "vector")
    params = _parameters(module, DTYPES[dtype], device)
    loaded = {}
    for function, k, block, name in _models(functions, probes, dtype, blocks):
        loaded[name] = (function, k, block, torch._C._aoti.AOTIModelPackageLoader(os.fspath(path), name))
        metadata = loaded[name][3].get_metadata()
        wrong = {key: metadata.get(key) for key, v in expected_metadata.items() if metadata.get(key) != v}
        if wrong:
            raise ExportMismatchError(f"{os.fspath(path)}: metadata of {name} reads back as {wrong!r}, "
                                      f"expected {({key: expected_metadata[key] for key in wrong})!r}")
    generator = torch.Generator().manual_seed(_SEED + 1)
    for fraction in _CHECK_TIMES:
        value = lo + fraction * (hi - lo)
        where = f"(t = {value:g})"
        x, t, y = _example({**spec, "block": blocks[0]}, DTYPES[dtype], generator, value)
        for name, (function, k, block, loader) in loaded.items():
            # A smaller block takes the first rows of the large one's.
            inputs = _inputs(function, x[:block], t[:block], None if y is None else y[:block], k, generator)
            with torch.no_grad():
                got = loader.run(list(inputs))
            # Attention in the math form the functions were traced with: the same arithmetic, and no
            # warning from vmap about the fused kernel's backward, which the package does not run.
            with sdpa_kernel(SDPBackend.MATH):
                expected = _BUILDERS[function](module, shape, signature, time_input)(params, *inputs)
            expected = [expected] if isinstance(expected, torch.Tensor) else list(expected)
            _check_finite(expected[0], where)
            if len(got) != len(expected):
                raise ExportMismatchError(f"{name} returns {len(got)} tensors, expected {len(expected)}")
            for g, e, part in zip(got, expected, ("out", function)):
                _compare(g, e.detach(), tolerance, f"{name} ({part})", where)
