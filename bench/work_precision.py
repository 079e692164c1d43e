"""Work-precision benchmark, one run: flowlik (each adaptive solver with each error norm) and flow_matching's
compute_likelihood (torchdiffeq dopri5) across tolerances, on the embedded digits model (D = 64, an MLP) and
on a model of a different character: the closed-form three-component Gaussian mixture in D = 2 of
tests/fixtures/make_fixtures.py (cheap evaluations, sharply curved trajectories, an exact log-density); and,
with --models unet, the digits' attention UNet (below).

For every run: seconds per sample, two ways: this script's wall clock around the whole process divided by
the sample count (flowlik: start-up and model loading included; flow_matching runs in a Python process of
its own, imports included), and the scoring alone (flowlik's own wall_time_s; flow_matching: the clock
around compute_likelihood and the TorchScript load). With few samples the first counts start-up heavily;
the second is what a large data set pays per sample. Evaluations: flowlik, the mean over samples of each
sample's own NFE (steps are controlled per sample); flow_matching, the mean over batches of the NFE of a
batch, which all its samples share. Errors: the mean and largest |log-likelihood error| in nats against a
float64 reference from flowlik at a tight tolerance on the same inputs (default rkf78 at 1e-11: on 32 digits
it is within about 1e-6 nats, mean, of dopri5 at 1e-10 and of rkf78 at 1e-12, which agree to 3e-8; rkf78 at
1e-10 was off by 1.6e-5). For the mixture the exact log-density is a second reference (the table says how far
the ODE reference is from it). The UNet's reference is another one (below).

Every method scores the same float32 model-space points: the digits are dequantized here, once (seed 0),
and mapped to y = 2 (k + u) / 17 - 1 as bench/compare_with_flow_matching.py does; flowlik scores float
data as given. Everything runs on one thread (OMP_NUM_THREADS=1, --threads 1, torch.set_num_threads(1)),
in float32, with the same batch size. Nothing else should run on the machine meanwhile.

Then, for each model: the time and NFE ratios of flowlik against flow_matching at equal measured mean error,
from flowlik's curves interpolated log-log at flow_matching's error points; and for the digits MLP and the
UNet, whether the target is met (digits: at least 3x less time per sample, and fewer evaluations; UNet, issue
18: at least 2x less time per sample on one thread).

The UNet ("unet", not in the default --models: its run is long, see below): the trained attention UNet of
examples/digits (torchcfm's UNetModelWrapper, forward(t, x [B, 1, 8, 8]); train_unet.py), on the same
model-space digits as the MLP (the first --unet-samples test images, dequantized with seed 0, as [N, 1, 8, 8]).
flowlik scores its AOTInductor package examples/digits/unet.pt2 (dopri5, --pt2-norms) and a TorchScript trace
of the same weights (flowlik_export.export(from_torchcfm(unet), format="torchscript", method="trace"; dopri5,
--unet-norms, by default flowlik's default rms), exported once into build/bench-models/ and reused;
flow_matching runs the trace with its (t, x) signature (bench/peer.py), exact divergence. All exact trace.
Its reference is not flowlik's: flowlik's exact trace through TorchScript costs this UNet 1.2-2.2 s per
evaluation and sample in float32 (by the machine's load; the same 64-row forward and backward of the trace
takes 0.07 s in Python) and about 16 s in float64 (dopri5 at 1e-4: 43 NFE, 695 s for one sample), so rkf78 at
1e-11 would take hours per sample. It is torchdiffeq dopri8 at rtol = atol = 1e-9 in float64 here
(torchdiffeq_reference: a float64 trace, the exact diagonal in one 64-row backward per evaluation, 0.36 s per
evaluation), about 350 NFE and 2 minutes per sample: 1000x tighter than the tightest tolerance compared (1e-6).
Measured on two samples: dopri8 at 1e-8 is within 2e-6 nats of dopri8 at 1e-10 (1e-9 lies between), while
the errors compared are 1e-4 nats and more (flowlik float32 dopri5 at 1e-6: 1.5e-4 and 5.4e-4; at 1e-3 for
both tools: 0.05 to 0.13), so the reference is at least 100x more accurate than the smallest error compared
and 10^4x more than the loosest. --unet-reference SOLVER:TOL uses flowlik's float64 reference (on the float64
trace) instead. The full UNet run (16 samples, one block of the package; tolerances 1e-3 to 1e-6;
flow_matching, flowlik dopri5 rms on the trace and dopri5 rms and mixed on the package) takes about 3 hours
on 2 cores (an estimate from a 2-sample run at 1e-3: reference 0.36 s, flowlik trace 1.25 s, package 0.31 s
per evaluation and sample, the package's rows padded to its block of 16 there),
most of it flowlik on the trace; its output to files of its own:

    .venv/bin/python bench/work_precision.py --models unet --out bench/work_precision_unet

    .venv/bin/python bench/work_precision.py                      # about 15 minutes on 2 cores
    .venv/bin/python bench/work_precision.py --samples 8 --mixture-samples 64 --tolerances 1e-3,1e-5
    .venv/bin/python bench/work_precision.py --replot             # redo tables and plot from the .json

flowlik runs on the same TorchScript file as flow_matching, and (dopri5, --pt2-norms) on the digits model's
and the UNet's AOTInductor packages as well, which flow_matching cannot load.

Writes bench/work_precision.json (all rows), bench/work_precision.svg (mean |error| against seconds per
sample, log-log, one line per method and model) and bench/work_precision.md (the tables, also printed).
"""
import argparse
import csv
import json
import math
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time

os.environ["OMP_NUM_THREADS"] = "1"  # before torch is imported: this process is one of the measured ones

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))
from compare_with_flow_matching import model_space  # noqa: E402

SOLVERS = ("dopri5", "tsit5", "bosh3", "rkf78")
NORMS = ("rms", "max", "mixed")

# The targets at equal measured mean error, one thread (issue 18): flowlik's time per sample at most 1/factor of
# flow_matching's at every flow_matching error point, and, where "nfe", fewer evaluations too.
TARGETS = {"digits": {"factor": 3, "nfe": True}, "unet": {"factor": 2, "nfe": False}}

# The UNet's defaults (--unet-samples, --unet-tolerances, --unet-reference); see the docstring.
UNET_SAMPLES = 16  # one block of the package (16 rows): fewer samples would score padding rows
UNET_TOLERANCES = "1e-3,1e-4,1e-5,1e-6"
UNET_REFERENCE = "torchdiffeq:dopri8:1e-9"

# The "mixture" fixture of tests/fixtures/make_fixtures.py: three well-separated, unequal components in D = 2.
MIXTURE = {"weights": [0.5, 0.3, 0.2], "means": [[-2.0, 0.0], [2.0, 1.0], [0.0, -2.5]],
           "scales": [[0.4, 0.6], [0.7, 0.3], [0.5, 0.5]]}


def mixture_model(path):
    """Scripts the fixture's closed-form marginal velocity (linear path, sigma_min = 0, prior N(0, I))."""
    from make_fixtures import MixtureVelocity

    module = MixtureVelocity(MIXTURE["weights"], MIXTURE["means"], MIXTURE["scales"], [2])
    torch.jit.save(torch.jit.script(module), str(path))
    return path


def mixture_data(n, seed):
    """n points drawn from the mixture (float32, as scored) and their exact log-density (float64)."""
    rng = np.random.default_rng(seed)
    w, mu, s = (np.array(MIXTURE[k], dtype=np.float64) for k in ("weights", "means", "scales"))
    k = rng.choice(len(w), size=n, p=w)
    y = (mu[k] + s[k] * rng.standard_normal((n, mu.shape[1]))).astype(np.float32)
    yy = y.astype(np.float64)[:, None, :]
    log_n = -0.5 * (np.log(2 * np.pi * s ** 2) + (yy - mu) ** 2 / s ** 2).sum(-1)  # [n, K]
    a = np.log(w) + log_n
    m = a.max(1, keepdims=True)
    return y, (m[:, 0] + np.log(np.exp(a - m).sum(1)))


def unet_traces(example):
    """TorchScript traces of the digits UNet (torchcfm's UNetModelWrapper with examples/digits/unet_weights.pt,
    the weights unet.pt2 was compiled from), made by flowlik_export.export(from_torchcfm(...),
    format="torchscript", method="trace") on `example` ([B, 1, 8, 8] model-space digits) and kept in
    build/bench-models/ under a hash of the weights, the configuration, the exporter and torch's version:
    (float32 trace: what flowlik and flow_matching score, float64 trace: the reference's). Both keep torchcfm's
    forward(t, x) (the manifest says "signature": "(t, x)"). The float32 trace cannot run in float64 (torchcfm
    casts the input to float32 inside, and the trace keeps the cast), so the float64 one is traced from the
    float64 module computed in float64 throughout, as the tests' independent reference computes it
    (tests/python/reference.py)."""
    import copy
    import hashlib
    import warnings

    sys.path.insert(0, str(ROOT / "examples" / "digits"))
    sys.path.append(str(ROOT / "tests" / "python"))
    import flowlik_export
    from flowlik_export import export, from_torchcfm
    from reference import _float64_throughout
    from train_unet import CONFIG, build

    weights = ROOT / "examples/digits/unet_weights.pt"
    h = hashlib.sha256(weights.read_bytes())
    h.update(json.dumps(CONFIG, sort_keys=True, default=list).encode())
    h.update(pathlib.Path(flowlik_export.exporter.__file__).read_bytes())
    h.update(np.ascontiguousarray(example, dtype=np.float32).tobytes())
    h.update(torch.__version__.encode())
    folder = ROOT / "build" / "bench-models"
    paths = {dtype: folder / f"unet-{h.hexdigest()[:16]}-{dtype}.pt" for dtype in ("float32", "float64")}
    if all(path.exists() for path in paths.values()):
        return paths["float32"], paths["float64"]
    folder.mkdir(parents=True, exist_ok=True)
    unet = build()
    unet.load_state_dict(torch.load(weights, weights_only=True))
    module, contract = from_torchcfm(unet.eval())
    x = torch.from_numpy(np.ascontiguousarray(example, dtype=np.float32))
    start = time.perf_counter()
    for dtype, path in paths.items():
        partial = path.with_name(f"{path.stem}.partial-{os.getpid()}.pt")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.trace's own deprecation
            if dtype == "float32":
                export(module, partial, contract, x, format="torchscript", method="trace")
            else:
                m64 = copy.deepcopy(module).double().eval()
                with _float64_throughout(m64):
                    export(m64, partial, contract, x.double(), format="torchscript", method="trace",
                           atol=1e-12, rtol=1e-10)
        os.replace(partial, path)
    print(f"traced the UNet into {folder} in {time.perf_counter() - start:.1f} s", flush=True)
    return paths["float32"], paths["float64"]


def torchdiffeq_reference(model_path, y, *, method, tol, signature):
    """log p(y) per sample in float64, solved one sample at a time by torchdiffeq (`method`, rtol = atol = tol,
    its default norm: the RMS over the sample's state and its log-density change) with the exact trace of the
    float64 TorchScript model at model_path: each evaluation is one forward of D copies of the sample and one
    backward with the D unit vectors (all of the Jacobian's diagonal in one call). The same integrand as
    flowlik's exact trace, outside it. Returns (log_likelihood [N] float64, nfe [N], seconds)."""
    import torchdiffeq

    model = torch.jit.load(str(model_path)).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    shape = list(y.shape[1:])
    d = int(np.prod(shape))
    units = torch.eye(d, dtype=torch.float64).reshape([d] + shape)
    time_first = signature.replace(" ", "") == "(t,x)"
    lls, nfes = [], []
    start = time.perf_counter()
    for sample in y:
        x = torch.from_numpy(np.asarray(sample, dtype=np.float64)).reshape(-1)
        count = [0]

        def augmented(t, state):
            count[0] += 1
            rows = state[:d].reshape([1] + shape).expand([d] + shape).clone().requires_grad_(True)
            tt = t.reshape(1).expand(d).to(torch.float64)
            with torch.enable_grad():
                v = model(tt, rows) if time_first else model(rows, tt)
                (g,) = torch.autograd.grad(v, rows, units)
            trace = g.reshape(d, d).diagonal().sum()
            return torch.cat([v[0].detach().reshape(-1), trace.reshape(1)])

        state = torch.cat([x, torch.zeros(1, dtype=torch.float64)])
        with torch.no_grad():
            end = torchdiffeq.odeint(augmented, state, torch.tensor([1.0, 0.0], dtype=torch.float64),
                                     method=method, rtol=tol, atol=tol)[-1]
        x0, change = end[:d], end[d]
        lls.append(float(-0.5 * d * math.log(2 * math.pi) - 0.5 * (x0 * x0).sum() + change))
        nfes.append(count[0])
    return np.array(lls), np.array(nfes, dtype=np.float64), time.perf_counter() - start


class Flowlik:
    """Runs `flowlik score` by path each time, waiting out a rebuild of the binary (it may be replaced while
    this runs); records which build each run used."""

    def __init__(self, binary):
        self.binary = pathlib.Path(binary)
        self.builds = set()

    def _wait(self):
        for _ in range(240):
            if self.binary.exists() and os.access(self.binary, os.X_OK):
                return
            time.sleep(5)
        raise RuntimeError(f"{self.binary} did not appear in 20 minutes")

    def score(self, model, data, tmp, *, solver, rtol, atol, norm, dtype, batch):
        """`norm`: an error norm, or NORM+gl for that norm with --quadrature gauss-legendre."""
        csv_path, report_path = tmp / "s.csv", tmp / "r.json"
        norm, gauss, _ = norm.partition("+gl")
        cmd = [str(self.binary), "score", str(model), "--data", str(data), "--solver", solver, "--rtol",
               repr(rtol), "--atol", repr(atol), "--error-norm", norm, "--dtype", dtype, "--threads", "1",
               "--trace", "exact", "--batch-size", str(batch), "--per-sample", str(csv_path), "-o",
               str(report_path), "-q"] + (["--quadrature", "gauss-legendre"] if gauss else [])
        for attempt in range(4):
            self._wait()
            for p in (csv_path, report_path):
                p.unlink(missing_ok=True)
            build = self.binary.stat().st_mtime
            start = time.perf_counter()
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            seconds = time.perf_counter() - start
            if proc.returncode == 0:
                break
            replaced = not self.binary.exists() or self.binary.stat().st_mtime != build
            if attempt == 3 or not (replaced or "Text file busy" in proc.stderr or proc.returncode < 0):
                raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
            print(f"  flowlik failed ({proc.returncode}) while its binary was being replaced; retrying",
                  flush=True)
            time.sleep(10)
        self.builds.add(time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(build)))
        report = json.loads(report_path.read_text())
        with open(csv_path) as f:  # the first line is the run's identity, a comment
            rows = sorted(csv.DictReader(line for line in f if not line.startswith("#")),
                          key=lambda r: int(r["index"]))
        ll = np.array([float(r["log_likelihood"]) if r["status"] == "ok" else np.nan for r in rows])
        nfe = np.array([float(r["nfe"]) if r["nfe"] not in ("", None) else np.nan for r in rows])
        return {"seconds": seconds, "in_process_seconds": report.get("wall_time_s"), "ll": ll, "nfe": nfe,
                "failed": int(sum(r["status"] != "ok" for r in rows)), "build_mtime": build}


PEER = """
import json, sys, time
import numpy as np, torch
sys.path.insert(0, {bench!r})
from peer import flow_matching_log_likelihood
torch.set_num_threads(1)
y = torch.from_numpy(np.load({data!r}))
start = time.perf_counter()
ll, nfe = flow_matching_log_likelihood({model!r}, y, atol={tol!r}, rtol={tol!r}, exact=True, batch_size={batch},
                                       signature={signature!r})
seconds = time.perf_counter() - start
np.save({out!r}, ll.numpy())
print(json.dumps({{"seconds": seconds, "nfe": [float(v) for v in nfe]}}))
"""


def flow_matching(model, data, tmp, *, tol, batch, signature=None):
    """flow_matching's compute_likelihood (torchdiffeq dopri5, its default mixed norm) in a process of its own,
    as flowlik runs: the wall clock around the whole process (Python, torch and flow_matching imports
    included) and the time inside it around the computation (TorchScript loading included). signature: the
    model's argument order, "(x, t)" or "(t, x)" (None: the one its embedded manifest declares)."""
    out = tmp / "fm.npy"
    out.unlink(missing_ok=True)
    code = PEER.format(bench=str(ROOT / "bench"), data=str(data), model=str(model), tol=tol, batch=batch,
                       out=str(out), signature=signature)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"flow_matching failed: {proc.stderr.strip()}")
    inner = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"seconds": seconds, "in_process_seconds": inner["seconds"], "ll": np.load(out),
            "nfe": np.array(inner["nfe"])}


def best_of(repeats, run):
    """The first run's results with the shortest times of `repeats` runs."""
    first = run()
    for _ in range(repeats - 1):
        again = run()
        for key in ("seconds", "in_process_seconds"):
            if again.get(key) is not None and first.get(key) is not None:
                first[key] = min(first[key], again[key])
    return first


def errors(ll, ref):
    e = np.abs(ll - ref)
    ok = np.isfinite(e)
    return (float(e[ok].mean()) if ok.any() else float("nan"), float(e[ok].max()) if ok.any() else float("nan"))


def interpolate_at(points, err):
    """Time (or NFE) a method needs for mean error err, from its (tolerance-ordered) points [(err, value)],
    interpolated linearly in log-log on a segment between consecutive tolerances that brackets err (the
    cheapest such segment). If every point is already more accurate than err, the value at its loosest
    tolerance (an upper bound: 'bound'); if none reaches err, None."""
    pts = [(e, v) for e, v in points if e > 0 and v > 0 and math.isfinite(e)]
    if not pts:
        return None, "none"
    best = None
    for (e0, v0), (e1, v1) in zip(pts, pts[1:]):
        lo, hi = min(e0, e1), max(e0, e1)
        if lo <= err <= hi:
            if e0 == e1:
                v = min(v0, v1)
            else:
                a = (math.log(err) - math.log(e0)) / (math.log(e1) - math.log(e0))
                v = math.exp(math.log(v0) + a * (math.log(v1) - math.log(v0)))
            best = v if best is None else min(best, v)
    if best is not None:
        return best, "interpolated"
    if all(e <= err for e, _ in pts):
        return min(v for e, v in pts), "bound"
    return None, "not reached"


def method_name(row):
    if row["tool"] == "flow_matching":
        return "flow_matching dopri5"
    return f"flowlik{' .pt2' if row.get('format') == 'pt2' else ''} {row['solver']} {row['norm']}"


# ---------------------------------------------------------------------------------------------- the plot
COLORS = {"dopri5": "#1f77b4", "tsit5": "#2ca02c", "bosh3": "#ff7f0e", "rkf78": "#9467bd"}
DASHES = {"rms": "", "max": "7,3", "mixed": "2,2"}


def _norm_order(norm):
    """A table's order of norms: NORMS, each followed by its +gl (Gauss-Legendre quadrature) form."""
    base, gauss, _ = norm.partition("+gl")
    return 2 * (NORMS.index(base) if base in NORMS else len(NORMS)) + bool(gauss)


def svg_plot(refs, rows, path):
    """Hand-written SVG (no plotting library in the environment): a panel per model (columns) and per timing
    (rows: the whole process, the scoring alone), mean |error| (x) against seconds per sample (y), both
    log-scaled, one polyline per method through its tolerances (loosest at the right)."""
    models = list(refs)
    timings = (("seconds_per_sample", "s/sample, whole process"),
               ("in_process_seconds_per_sample", "s/sample, scoring alone"))
    pw, ph, ml, mr, mt, mb, legend_w = 460, 300, 75, 20, 45, 60, 230
    width = len(models) * (pw + ml + mr) + legend_w
    height = len(timings) * (ph + mt + mb)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>']
    methods = []
    for t_index, (key, label) in enumerate(timings):
        for m_index, model in enumerate(models):
            mrows = [r for r in rows if r["model"] == model and r["mean_abs_error"] > 0
                     and math.isfinite(r["mean_abs_error"]) and r.get(key)]
            if not mrows:
                continue
            ox = m_index * (pw + ml + mr) + ml
            oy = t_index * (ph + mt + mb) + mt
            xs = [r["mean_abs_error"] for r in mrows]
            ys = [r[key] for r in mrows]
            x0, x1 = math.floor(math.log10(min(xs))), math.ceil(math.log10(max(xs)))
            y0, y1 = math.floor(math.log10(min(ys))), math.ceil(math.log10(max(ys)))
            x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)

            def px(v):
                return ox + (math.log10(v) - x0) / (x1 - x0) * pw

            def py(v):
                return oy + ph - (math.log10(v) - y0) / (y1 - y0) * ph

            out.append(f'<rect x="{ox}" y="{oy}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>')
            for k in range(x0, x1 + 1):
                x = px(10.0 ** k)
                out.append(f'<line x1="{x:.1f}" y1="{oy}" x2="{x:.1f}" y2="{oy + ph}" stroke="#ddd"/>')
                out.append(f'<text x="{x:.1f}" y="{oy + ph + 16}" text-anchor="middle">1e{k}</text>')
            for k in range(y0, y1 + 1):
                y = py(10.0 ** k)
                out.append(f'<line x1="{ox}" y1="{y:.1f}" x2="{ox + pw}" y2="{y:.1f}" stroke="#ddd"/>')
                out.append(f'<text x="{ox - 6}" y="{y + 4:.1f}" text-anchor="end">1e{k}</text>')
                for sub in range(2, 10):
                    if k < y1:
                        ys_ = py(sub * 10.0 ** k)
                        out.append(f'<line x1="{ox}" y1="{ys_:.1f}" x2="{ox + 4}" y2="{ys_:.1f}" stroke="#444"/>')
            for k in range(x0, x1):
                for sub in range(2, 10):
                    xs_ = px(sub * 10.0 ** k)
                    out.append(f'<line x1="{xs_:.1f}" y1="{oy + ph}" x2="{xs_:.1f}" y2="{oy + ph - 4}" stroke="#444"/>')
            title = refs[model].get("title", model)
            out.append(f'<text x="{ox + pw / 2}" y="{oy - 14}" text-anchor="middle" font-weight="bold">'
                       f'{title}: {label}</text>')
            out.append(f'<text x="{ox + pw / 2}" y="{oy + ph + 36}" text-anchor="middle">'
                       f'mean |log-likelihood error| (nats)</text>')
            out.append(f'<text transform="translate({ox - 52},{oy + ph / 2}) rotate(-90)" text-anchor="middle">'
                       f'seconds per sample (1 thread)</text>')
            by_method = {}
            for r in mrows:
                by_method.setdefault(method_name(r), []).append(r)
            for name, group in by_method.items():
                group.sort(key=lambda r: -r["rtol"])
                r = group[0]
                if r["tool"] == "flow_matching":
                    color, dash, sw = "#000", "", 2.5
                else:
                    color, dash, sw = COLORS[r["solver"]], DASHES.get(r["norm"], "9,3,2,3"), 1.5
                    if r.get("format") == "pt2":
                        color, sw = "#d62728", 2.0
                pts = " ".join(f"{px(q['mean_abs_error']):.1f},{py(q[key]):.1f}" for q in group)
                dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
                out.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="{sw}"{dash_attr}>'
                           f'<title>{title}: {name}</title></polyline>')
                for q in group:
                    out.append(f'<circle cx="{px(q["mean_abs_error"]):.1f}" cy="{py(q[key]):.1f}" r="2.5" '
                               f'fill="{color}"><title>{name} tol {q["rtol"]:g}: {q[key]:.4g} s/sample, error '
                               f'{q["mean_abs_error"]:.3g}, NFE {q["nfe"]:.1f}</title></circle>')
                if (name, color, dash, sw) not in methods:
                    methods.append((name, color, dash, sw))
    lx = len(models) * (pw + ml + mr) + 10
    out.append(f'<text x="{lx}" y="{mt - 14}" font-weight="bold">method (a point per tolerance,</text>')
    out.append(f'<text x="{lx}" y="{mt}" font-weight="bold">the loosest at the right)</text>')
    for i, (name, color, dash, sw) in enumerate(methods):
        y = mt + 20 + 17 * i
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<line x1="{lx}" y1="{y}" x2="{lx + 30}" y2="{y}" stroke="{color}" stroke-width="{sw}"'
                   f'{dash_attr}/>')
        out.append(f'<text x="{lx + 36}" y="{y + 4}">{name}</text>')
    out.append("</svg>")
    path.write_text("\n".join(out) + "\n")


def analyse(refs, rows, settings):
    """The equal-error ratios and the Markdown report of a run's rows."""
    # ------------------------------------------------------------------------------ equal-error ratios
    timings = (("seconds_per_sample", "whole process"), ("in_process_seconds_per_sample", "in process"))

    def curve(model, name, key):
        pts = sorted((r for r in rows if r["model"] == model and method_name(r) == name), key=lambda r: -r["rtol"])
        return [(r["mean_abs_error"], r[key]) for r in pts]

    def geomean(values):
        values = [v for v in values if v]
        return float(np.exp(np.mean(np.log(values)))) if values else None

    ratios = {}
    for model in refs:
        fm = sorted((r for r in rows if r["model"] == model and r["tool"] == "flow_matching"), key=lambda r: -r["rtol"])
        names = sorted({method_name(r) for r in rows if r["model"] == model and r["tool"] == "flowlik"},
                       key=lambda m: (".pt2" in m, m))
        per_method = {}
        for name in names:
            points = []
            for f in fm:
                point = {"flow_matching_tol": f["rtol"], "flow_matching_error": f["mean_abs_error"]}
                for key in ("seconds_per_sample", "in_process_seconds_per_sample", "nfe"):
                    v, how = interpolate_at(curve(model, name, key), f["mean_abs_error"])
                    point[key] = {"flowlik": v, "ratio": (f[key] / v) if v else None, "how": how}
                points.append(point)
            per_method[name] = {"points": points, **{f"geomean_ratio_{key}": geomean(
                [p[key]["ratio"] for p in points]) for key in ("seconds_per_sample", "in_process_seconds_per_sample",
                                                               "nfe")}}
        # The lower envelope of flowlik's curves (the best method at each flow_matching error), over the methods
        # on the same TorchScript file as flow_matching, and over all (the .pt2 package included).
        envelopes = {}
        for scope, members in (("torchscript", [m for m in names if ".pt2" not in m]), ("all", names)):
            env = []
            for i, f in enumerate(fm):
                point = {"flow_matching_tol": f["rtol"], "flow_matching_error": f["mean_abs_error"]}
                for key in ("seconds_per_sample", "in_process_seconds_per_sample", "nfe"):
                    cands = [(per_method[m]["points"][i][key]["ratio"], m, per_method[m]["points"][i][key]["how"])
                             for m in members if per_method[m]["points"][i][key]["ratio"]]
                    best = max(cands) if cands else (None, None, None)
                    point[key] = {"ratio": best[0], "method": best[1], "how": best[2]}
                env.append(point)
            envelopes[scope] = env
        ratios[model] = {"per_method": per_method, "envelope": envelopes}

    def fmt_ratio(v, how=None):
        if v is None:
            return "-"
        return f"{'≥' if how == 'bound' else ''}{v:.2f}"

    # ------------------------------------------------------------------------------ tables
    md = []
    md.append("# Work-precision: flowlik vs flow_matching\n")
    md.append(f"One run of `bench/work_precision.py` ({settings['date']}, {settings['cpus']} CPUs, "
              f"load average at start {settings['load_average_start'][0]:.2f}, at end "
              f"{settings['load_average_end'][0]:.2f}; {settings['total_seconds']:.0f} s in all; flowlik build of "
              f"{', '.join(settings['flowlik_builds'])}). One thread, float32, batch {settings['batch']}, exact trace, rtol = atol = tol. **s/sample**: this script's wall clock around "
              f"the whole process (flowlik: start-up and model loading; flow_matching: Python, torch and "
              f"flow_matching imports) / samples; **in-proc**: the scoring alone (flowlik's `wall_time_s`; "
              f"flow_matching: the clock around compute_likelihood and the TorchScript load). **NFE**: flowlik, "
              f"the mean over samples of each sample's own count (steps are controlled per sample); flow_matching, "
              f"the mean over batches of the count of a batch, which all its samples share. **Errors**: "
              f"|log p - reference| in nats, mean and max over samples.\n")
    for model, ref in refs.items():
        md.append(f"## {ref['title']}\n")
        md.append(f"Reference: {ref.get('tool', 'flowlik')} float64 {ref['solver']} rtol = atol = {ref['tol']:g}"
                  + (f" {ref['note']}" if ref.get("note") else "") + f" ({ref['nfe']:.0f} NFE per "
                  f"sample, {ref['seconds_per_sample']:.3f} s/sample), mean log p {ref['mean_log_likelihood']:.6f}"
                  + (f"; its distance from the exact log-density: mean {ref['exact_mean_abs_error']:.1e}, max "
                     f"{ref['exact_max_abs_error']:.1e} nats" if "exact_mean_abs_error" in ref else "") + ".\n")
        md.append("| method | tol | s/sample | in-proc s/sample | NFE | mean abs err | max abs err | failed |")
        md.append("|---|---|---|---|---|---|---|---|")
        mrows = sorted((r for r in rows if r["model"] == model),
                       key=lambda r: (r["tool"] != "flow_matching", r.get("format") == "pt2",
                                      SOLVERS.index(r["solver"]), NORMS.index(r["norm"]) if r["norm"] in NORMS else 0,
                                      -r["rtol"]))
        for r in mrows:
            ip = r["in_process_seconds_per_sample"]
            ip = f"{ip:.4f}" if ip is not None else "-"
            md.append(f"| {method_name(r)} | {r['rtol']:.0e} | {r['seconds_per_sample']:.4f} | {ip} | "
                      f"{r['nfe']:.1f} | {r['mean_abs_error']:.2e} | {r['max_abs_error']:.2e} | {r['failed']} |")
        md.append("")
        rk = ratios[model]
        fm_points = next(iter(rk["per_method"].values()))["points"] if rk["per_method"] else []
        md.append(f"### {model}: flowlik against flow_matching at equal measured mean error\n")
        md.append("Each cell: flow_matching's value / flowlik's, flowlik's interpolated linearly in log-log between "
                  "its tolerances at flow_matching's mean error, as time (whole process) / time (in process) / NFE "
                  "(flowlik per sample vs flow_matching per batch). '≥': flowlik's loosest tolerance is already more "
                  "accurate than flow_matching there, so its cost at that tolerance was used and the ratio is a lower "
                  "bound; '-': flowlik did not reach that error. Sorted by the geometric mean of the in-process time "
                  "ratio.\n")
        head = " | ".join(f"fm tol {p['flow_matching_tol']:.0e} (err {p['flow_matching_error']:.1e})"
                          for p in fm_points)
        md.append(f"| method | geomean time ratio (whole / in-proc) | geomean NFE ratio | {head} |")
        md.append("|---|---|---|" + "---|" * len(fm_points))

        def cell(p):
            return " / ".join(fmt_ratio(p[k]["ratio"], p[k]["how"]) for k in
                              ("seconds_per_sample", "in_process_seconds_per_sample", "nfe"))

        order = sorted(rk["per_method"], key=lambda m: -(rk["per_method"][m]["geomean_ratio_in_process_seconds_per_sample"]
                                                          or 0))
        for name in order:
            pm = rk["per_method"][name]
            md.append(f"| {name} | {fmt_ratio(pm['geomean_ratio_seconds_per_sample'])} / "
                      f"{fmt_ratio(pm['geomean_ratio_in_process_seconds_per_sample'])} | "
                      f"{fmt_ratio(pm['geomean_ratio_nfe'])} | {' | '.join(cell(p) for p in pm['points'])} |")
        for scope, label in (("torchscript", "best flowlik method at each point (TorchScript, as flow_matching)"),
                             ("all", "best flowlik method at each point (.pt2 included)")):
            env = rk["envelope"][scope]
            md.append(f"| **{label}** | | | " + " | ".join(
                cell(p) + " (" + ", ".join(sorted({str(p[k]['method']).replace('flowlik ', '') for k in
                                                   ('seconds_per_sample', 'in_process_seconds_per_sample', 'nfe')}))
                + ")" for p in env) + " |")
        md.append("")
        # NFE at equal error: deterministic (unlike the times), so the fairest way to compare norms and solvers.
        md.append(f"#### {model}: NFE per sample (flow_matching: per batch) and in-process ms per sample at equal mean "
                  f"error\n")
        md.append("Interpolated log-log between tolerances at flow_matching's mean errors, as NFE / ms. The NFE do "
                  "not depend on the machine's load, so they decide between norms more reliably than the times. '*': "
                  "already more accurate at the loosest tolerance (its cost shown); '-': not reached.\n")
        md.append("| method | " + " | ".join(f"err {p['flow_matching_error']:.1e}" for p in fm_points) + " |")
        md.append("|---|" + "---|" * len(fm_points))
        fm_rows = sorted((r for r in rows if r["model"] == model and r["tool"] == "flow_matching"),
                         key=lambda r: -r["rtol"])
        md.append("| flow_matching dopri5 | " + " | ".join(
            f"{r['nfe']:.0f} / {1e3 * r['in_process_seconds_per_sample']:.3g}" for r in fm_rows) + " |")
        for name in sorted(rk["per_method"], key=lambda m: (".pt2" in m, SOLVERS.index(m.split()[-2]),
                                                             _norm_order(m.split()[-1]))):
            pm = rk["per_method"][name]
            md.append(f"| {name} | " + " | ".join(
                "-" if p["nfe"]["flowlik"] is None else
                f"{p['nfe']['flowlik']:.0f}{'*' if p['nfe']['how'] == 'bound' else ''} / "
                f"{1e3 * p['in_process_seconds_per_sample']['flowlik']:.3g}" for p in pm["points"]) + " |")
        md.append("")
        if model in TARGETS and fm_points:
            factor, with_nfe = TARGETS[model]["factor"], TARGETS[model]["nfe"]
            verdicts = {}
            for scope in ("torchscript", "all"):
                env = rk["envelope"][scope]
                v = {}
                for key in ("seconds_per_sample", "in_process_seconds_per_sample"):
                    rs = [p[key]["ratio"] for p in env]
                    v[key] = all(r is not None and r >= factor for r in rs)
                if with_nfe:
                    v["nfe"] = all(p["nfe"]["ratio"] is not None and p["nfe"]["ratio"] > 1 for p in env)
                verdicts[scope] = v

            def yes(b):
                return "**met**" if b else "**not met**"

            for scope, label in (("torchscript", "on the TorchScript file (the one flow_matching runs)"),
                                 ("all", "with the .pt2 package allowed")):
                env, v = rk["envelope"][scope], verdicts[scope]
                nfe_ratios = ', '.join(fmt_ratio(p['nfe']['ratio'], p['nfe']['how']) for p in env)
                md.append(f"Target on {model}, {label}: at least {factor}x less time per sample than flow_matching at "
                          f"every flow_matching error point: whole process "
                          f"{', '.join(fmt_ratio(p['seconds_per_sample']['ratio'], p['seconds_per_sample']['how']) for p in env)}"
                          f" -> {yes(v['seconds_per_sample'])}; in process "
                          f"{', '.join(fmt_ratio(p['in_process_seconds_per_sample']['ratio'], p['in_process_seconds_per_sample']['how']) for p in env)}"
                          f" -> {yes(v['in_process_seconds_per_sample'])}"
                          + (f"; fewer evaluations {nfe_ratios} -> {yes(v['nfe'])}.\n" if with_nfe else
                             f" (issue 18, one thread; the evaluation ratios, no part of this target: "
                             f"{nfe_ratios}).\n"))
            ratios[model]["target"] = verdicts
            for name in ("flowlik dopri5 rms", "flowlik .pt2 dopri5 rms"):  # the defaults, on each file
                if name not in rk["per_method"]:
                    continue
                pts = rk["per_method"][name]["points"]
                md.append(f"The defaults alone ({name.replace('flowlik ', '')}): time ratio whole process "
                          + ", ".join(fmt_ratio(p["seconds_per_sample"]["ratio"], p["seconds_per_sample"]["how"])
                                      for p in pts)
                          + "; in process "
                          + ", ".join(fmt_ratio(p["in_process_seconds_per_sample"]["ratio"],
                                                p["in_process_seconds_per_sample"]["how"]) for p in pts)
                          + "; NFE " + ", ".join(fmt_ratio(p["nfe"]["ratio"], p["nfe"]["how"]) for p in pts) + ".\n")
    return "\n".join(md), ratios


# ---------------------------------------------------------------------------------------------- the run
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=32, help="digits test images scored (default 32)")
    ap.add_argument("--mixture-samples", type=int, default=256, help="mixture points scored (default 256)")
    ap.add_argument("--batch-size", type=int, default=32, help="samples per batch, both tools")
    ap.add_argument("--tolerances", default="1e-3,1e-4,1e-5,1e-6", help="rtol = atol values, comma-separated")
    ap.add_argument("--solvers", default=",".join(SOLVERS))
    ap.add_argument("--norms", default=",".join(NORMS))
    ap.add_argument("--pt2-norms", default="rms,mixed",
                    help="also score the AOTInductor packages (digits: model.pt2, unet: unet.pt2) with dopri5 and "
                         "these norms ('' for none; NORM+gl: that norm with --quadrature gauss-legendre); "
                         "flow_matching can only load the TorchScript file")
    ap.add_argument("--reference", default="rkf78:1e-11",
                    help="SOLVER:TOL of the float64 flowlik reference (default rkf78:1e-11)")
    ap.add_argument("--unet-samples", type=int, default=UNET_SAMPLES,
                    help=f"digits test images scored by the UNet (default {UNET_SAMPLES})")
    ap.add_argument("--unet-tolerances", default=UNET_TOLERANCES,
                    help=f"rtol = atol values for the UNet (default {UNET_TOLERANCES})")
    ap.add_argument("--unet-solvers", default="dopri5",
                    help="flowlik's solvers on the UNet's TorchScript trace (default dopri5)")
    ap.add_argument("--unet-norms", default="rms",
                    help="flowlik's error norms on the UNet's TorchScript trace (default rms, flowlik's default; "
                         "the package gets dopri5 with --pt2-norms)")
    ap.add_argument("--unet-reference", default=UNET_REFERENCE,
                    help="the UNet's float64 reference: torchdiffeq:METHOD:TOL (torchdiffeq_reference), or "
                         f"SOLVER:TOL for flowlik's, as --reference (default {UNET_REFERENCE})")
    ap.add_argument("--models", default="digits,mixture", help="of digits, mixture, unet (default digits,mixture)")
    ap.add_argument("--repeats", type=int, default=1,
                    help="run each measurement this many times and keep the shortest times (results are identical)")
    ap.add_argument("--flowlik", type=pathlib.Path, default=ROOT / "build/flowlik")
    ap.add_argument("--out", type=pathlib.Path, default=ROOT / "bench/work_precision",
                    help="prefix of the .json, .svg and .md written")
    ap.add_argument("--replot", action="store_true",
                    help="only redo the analysis, .md and .svg from the .json of an earlier run")
    args = ap.parse_args()
    if args.replot:
        saved = json.loads(args.out.with_suffix(".json").read_text())
        text, saved["ratios"] = analyse(saved["references"], saved["rows"], saved["settings"])
        args.out.with_suffix(".md").write_text(text)
        args.out.with_suffix(".json").write_text(json.dumps(saved, indent=1) + "\n")
        svg_plot(saved["references"], saved["rows"], args.out.with_suffix(".svg"))
        return
    torch.set_num_threads(1)
    tolerances = [float(t) for t in args.tolerances.split(",")]
    tolerances.sort(reverse=True)
    solvers = [s for s in args.solvers.split(",") if s]
    norms = [n for n in args.norms.split(",") if n]
    pt2_norms = [n for n in args.pt2_norms.split(",") if n]
    unknown = set(args.models.split(",")) - {"digits", "mixture", "unet"}
    if unknown:
        ap.error(f"--models: unknown {', '.join(sorted(unknown))} (of digits, mixture, unet)")
    ref_solver_all, ref_tol_all = args.reference.split(":")
    ref_tol_all = float(ref_tol_all)
    fl = Flowlik(args.flowlik)
    t_start = time.perf_counter()
    load_start = os.getloadavg()

    rows, refs = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        cases = []
        if "digits" in args.models:
            raw = np.load(ROOT / "examples/digits/test.npy")[: args.samples].astype(np.float64)
            cases.append({"name": "digits", "title": f"digits (D = 64), {len(raw)} samples",
                          "model": ROOT / "examples/digits/model.pt", "pt2": ROOT / "examples/digits/model.pt2",
                          "y": model_space(raw, 17, seed=0), "exact": None})
        if "unet" in args.models:
            raw = np.load(ROOT / "examples/digits/test.npy")[: args.unet_samples].astype(np.float64)
            y = model_space(raw, 17, seed=0)[:, None]  # [N, 1, 8, 8]: the UNet's shape; the MLP's points
            example = model_space(np.load(ROOT / "examples/digits/test.npy")[:16].astype(np.float64), 17,
                                  seed=0)[:, None]
            trace32, trace64 = unet_traces(example)
            reference = args.unet_reference.split(":")
            reference = (("torchdiffeq", reference[1], float(reference[2])) if reference[0] == "torchdiffeq" else
                         ("flowlik", reference[0], float(reference[1])))
            cases.append({"name": "unet", "title": f"digits attention UNet (torchcfm, D = 64), {len(y)} samples",
                          "model": trace32, "pt2": ROOT / "examples/digits/unet.pt2", "y": y, "exact": None,
                          "signature": "(t, x)", "reference_model": trace64, "reference": reference,
                          "tolerances": sorted((float(t) for t in args.unet_tolerances.split(",")), reverse=True),
                          "solvers": [v for v in args.unet_solvers.split(",") if v],
                          "norms": [v for v in args.unet_norms.split(",") if v],
                          "reference_note": "on a float64 TorchScript trace of the same weights, computed in "
                                            "float64 throughout, one sample at a time, exact trace"})
        if "mixture" in args.models:
            y, exact = mixture_data(args.mixture_samples, seed=1)
            cases.append({"name": "mixture", "title": f"2-D Gaussian mixture, {len(y)} samples",
                          "model": mixture_model(tmp / "mixture.pt"), "pt2": None, "y": y, "exact": exact})

        for case in cases:
            name, y = case["name"], case["y"]
            n = len(y)
            data = tmp / f"{name}.npy"
            np.save(data, y)
            ref_tool, ref_solver, ref_tol = case.get("reference", ("flowlik", ref_solver_all, ref_tol_all))
            print(f"\n== {case['title']}: reference {ref_tool} float64 {ref_solver} rtol = atol = {ref_tol:g}",
                  flush=True)
            if ref_tool == "torchdiffeq":
                ll, nfe, seconds = torchdiffeq_reference(case["reference_model"], y, method=ref_solver, tol=ref_tol,
                                                         signature=case["signature"])
                r = {"ll": ll, "nfe": nfe, "seconds": seconds, "failed": 0}
            else:
                r = fl.score(case.get("reference_model", case["model"]), data, tmp, solver=ref_solver, rtol=ref_tol,
                             atol=ref_tol, norm="rms", dtype="float64", batch=args.batch_size)
            if r["failed"]:
                raise RuntimeError(f"the reference failed on {r['failed']} samples")
            ref = r["ll"]
            refs[name] = {"solver": ref_solver, "tol": ref_tol, "dtype": "float64", "norm": "rms",
                          "seconds_per_sample": r["seconds"] / n, "nfe": float(np.nanmean(r["nfe"])),
                          "mean_log_likelihood": float(ref.mean()), "samples": n, "title": case["title"]}
            if case.get("reference_note"):
                refs[name]["note"] = case["reference_note"]
            if ref_tool != "flowlik":
                refs[name]["tool"] = ref_tool
            if case["exact"] is not None:
                refs[name]["exact_mean_abs_error"], refs[name]["exact_max_abs_error"] = errors(ref, case["exact"])
            print(f"   {r['seconds']:.1f} s, NFE {refs[name]['nfe']:.0f}, mean log p {ref.mean():.6f}"
                  + (f", |ref - exact| mean {refs[name]['exact_mean_abs_error']:.2e} max "
                     f"{refs[name]['exact_max_abs_error']:.2e}" if case["exact"] is not None else ""), flush=True)

            def record(row, ll):
                row["mean_abs_error"], row["max_abs_error"] = errors(ll, ref)
                if case["exact"] is not None:
                    row["mean_abs_error_vs_exact"], _ = errors(ll, case["exact"])
                row["mean_log_likelihood"] = float(np.nanmean(ll))
                rows.append(row)
                print(f"   {method_name(row):28} tol {row['rtol']:7.0e}  {row['seconds_per_sample']:9.5f} s/sample"
                      f"  NFE {row['nfe']:7.1f}  mean|err| {row['mean_abs_error']:.2e}"
                      + (f"  FAILED {row['failed']}" if row.get("failed") else ""), flush=True)

            for tol in case.get("tolerances", tolerances):
                # flow_matching first, then flowlik, at each tolerance: compared runs are close in time.
                r = best_of(args.repeats, lambda: flow_matching(case["model"], data, tmp, tol=tol,
                                                                 batch=args.batch_size,
                                                                 signature=case.get("signature")))
                record({"model": name, "tool": "flow_matching", "solver": "dopri5", "norm": "mixed (torchdiffeq)",
                        "format": "torchscript", "rtol": tol, "atol": tol, "samples": n, "batch": args.batch_size,
                        "seconds_per_sample": r["seconds"] / n,
                        "in_process_seconds_per_sample": r["in_process_seconds"] / n,
                        "nfe": float(np.mean(r["nfe"])), "nfe_kind": "per batch (shared by its samples)",
                        "failed": 0}, r["ll"])
                runs = [(s, nm, "torchscript", case["model"]) for s in case.get("solvers", solvers)
                        for nm in case.get("norms", norms)]
                if case["pt2"] is not None:
                    runs += [("dopri5", nm, "pt2", case["pt2"]) for nm in pt2_norms]
                for solver, norm, fmt, model in runs:
                    r = best_of(args.repeats, lambda: fl.score(model, data, tmp, solver=solver, rtol=tol, atol=tol,
                                                               norm=norm, dtype="float32", batch=args.batch_size))
                    record({"model": name, "tool": "flowlik", "solver": solver, "norm": norm, "format": fmt,
                            "rtol": tol, "atol": tol, "samples": n, "batch": args.batch_size,
                            "seconds_per_sample": r["seconds"] / n,
                            "in_process_seconds_per_sample": (r["in_process_seconds"] / n
                                                              if r["in_process_seconds"] is not None else None),
                            "nfe": float(np.nanmean(r["nfe"])), "nfe_kind": "per sample (own step control)",
                            "failed": r["failed"], "flowlik_build_mtime": r["build_mtime"]}, r["ll"])

    settings = {"samples": args.samples, "mixture_samples": args.mixture_samples, "batch": args.batch_size,
                **({"unet_samples": args.unet_samples, "unet_tolerances": next(c["tolerances"] for c in cases
                                                                             if c["name"] == "unet"),
                    "unet_reference": args.unet_reference, "unet_solvers": args.unet_solvers,
                    "unet_norms": args.unet_norms} if any(c["name"] == "unet" for c in cases) else {}),
                "tolerances": tolerances, "threads": 1, "dtype": "float32", "trace": "exact",
                "timing": "seconds_per_sample: wall clock around the whole process / samples; "
                          "in_process_seconds_per_sample: the scoring alone",
                "nfe": "flowlik: mean per sample; flow_matching: mean per batch",
                "date": time.strftime("%Y-%m-%d %H:%M"), "host": platform.node(), "cpus": os.cpu_count(),
                "load_average_start": load_start, "load_average_end": os.getloadavg(),
                "total_seconds": time.perf_counter() - t_start, "flowlik_builds": sorted(fl.builds),
                "torch": torch.__version__, "repeats": args.repeats, "reference": args.reference}
    # The measurements first, so that a failure of the analysis loses none of them (--replot redoes it).
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {"settings": settings, "references": refs, "rows": rows}
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    text, result["ratios"] = analyse(refs, rows, settings)
    print("\n" + text)
    args.out.with_suffix(".md").write_text(text)
    svg_plot(refs, rows, args.out.with_suffix(".svg"))
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
