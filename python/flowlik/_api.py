"""flowlik.score, flowlik.compare and flowlik.inspect over the compiled module: the program's commands, run in this
process on the caller's tensors. Keyword options are the program's long options with underscores (``rtol=1e-5``
for ``--rtol 1e-5``; ``True`` for a flag), parsed by the program's own definitions: the same defaults, checks and
messages."""
import json
import os
from dataclasses import dataclass, field

import numpy as np
import torch

from flowlik import _flowlik
from flowlik.errors import InvalidArgument

__all__ = ["score", "compare", "inspect", "Result", "CompareResult"]


@dataclass
class Result:
    """One model scored on one dataset: each sample's values (NaN where a sample was excluded) and the report."""
    log_likelihood: np.ndarray  # float64 [N], nats, NaN for excluded samples
    bpd: np.ndarray             # float64 [N]
    nfe: np.ndarray             # int64 [N]
    status: list                # "ok" / "failed" / "nonfinite"
    index: np.ndarray           # int64 [N], the samples' indices in the data (a shard's block)
    report: dict                # the JSON report, as `flowlik score -o` writes it
    exit_code: int = 0          # the program's: 0, or 7 when a gate failed

    @property
    def summary(self) -> dict:
        """Mean bpd and log-likelihood with their standard errors and 95% intervals, the standard error's parts by
        source, NFE and sample counts."""
        metrics = self.report["metrics"]
        return {"bpd": metrics["bpd"], "log_likelihood": metrics["log_likelihood"],
                "stderr_by_source": metrics["stderr_by_source"], "nfe": metrics["nfe"],
                "samples": self.report["samples"]}

    @property
    def gates(self) -> list:
        return self.report.get("gates", [])


@dataclass
class CompareResult:
    """Two or more models on the same data with common random numbers."""
    models: list                # a Result per model, in the order given
    paired: list = field(default_factory=list)  # the report's paired differences, b minus a
    report: dict = field(default_factory=dict)  # as `flowlik compare -o` writes it
    exit_code: int = 0

    @property
    def gates(self) -> list:
        return self.report.get("gates", [])


def _word(value) -> str:
    if isinstance(value, float):
        return repr(value)  # round-trips exactly
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)


def _options(options: dict) -> list:
    argv = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            argv.append(flag)
        else:
            argv.append(f"{flag}={_word(value)}")
    return argv


def _tensor(values, what: str):
    if torch.is_tensor(values):
        return values
    array = np.asarray(values)
    if not array.flags.writeable:  # torch.from_numpy shares memory and wants a writable array
        array = array.copy()
    try:
        return torch.from_numpy(array)  # no copy
    except TypeError as e:
        raise InvalidArgument(f"{what}: {e}") from None


def _data(data, labels):
    """(argv, values, labels, name): a path goes to the program's --data, an array or tensor is passed as it is."""
    if isinstance(data, (str, os.PathLike)):
        argv = ["--data", os.fspath(data)]
        if isinstance(labels, (str, os.PathLike)):
            return argv + ["--labels", os.fspath(labels)], None, None, ""
        if labels is not None:
            values = torch.from_numpy(np.load(os.fspath(data)))
            return [], values, _tensor(labels, "labels"), os.fspath(data)
        return argv, None, None, ""
    if isinstance(labels, (str, os.PathLike)):
        labels = np.load(os.fspath(labels))
    name = "<tensor>" if torch.is_tensor(data) else "<array>"
    return [], _tensor(data, "data"), None if labels is None else _tensor(labels, "labels"), name


class _Progress:
    def __init__(self, enabled: bool, what: str):
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm
            self.bar = tqdm(total=0, desc=what, unit="sample")

    @property
    def callback(self):
        return None if self.bar is None else self.update

    def update(self, done: int, total: int) -> None:
        if self.bar.total != total:
            self.bar.total = total
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _result(columns: dict, report: dict, exit_code: int) -> Result:
    return Result(log_likelihood=np.asarray(columns["log_likelihood"], dtype=np.float64),
                  bpd=np.asarray(columns["bpd"], dtype=np.float64),
                  nfe=np.asarray(columns["nfe"], dtype=np.int64), status=list(columns["status"]),
                  index=np.asarray(columns["index"], dtype=np.int64), report=report, exit_code=exit_code)


def score(model, data, *, labels=None, progress: bool = False, **options) -> Result:
    """``flowlik score MODEL --data DATA [options]`` in this process. ``data``: a path to an .npy file, a numpy array
    or a torch tensor [N, *shape] (uint8: discrete levels, dequantized; float32/float64: continuous, scored as
    given); ``labels``: the classes [N] of a class-conditional model (path, array or tensor). Every option of
    the program is a keyword (``per_sample="s.csv"``, ``check_solve=8``, ``output="r.json"``, ``shard="0/4"``).
    Raises flowlik.Error (its kinds) for input that cannot be scored."""
    argv, values, label_values, name = _data(data, labels)
    argv = [os.fspath(model), *argv, *_options(options), "--quiet"]
    bar = _Progress(progress, "flowlik score")
    try:
        columns, report, exit_code = _flowlik.score(argv, values, label_values, name, bar.callback)
    finally:
        bar.close()
    return _result(columns, json.loads(report), exit_code)


def compare(models, data, *, labels=None, progress: bool = False, **options) -> CompareResult:
    """``flowlik compare A B ... --data DATA [options]`` in this process: every model scored with the same
    dequantization noise and probes, and the paired difference of each pair with its standard error."""
    argv, values, label_values, name = _data(data, labels)
    argv = [*(os.fspath(m) for m in models), *argv, *_options(options), "--quiet"]
    bar = _Progress(progress, "flowlik compare")
    try:
        per_model, report, exit_code = _flowlik.compare(argv, values, label_values, name, bar.callback)
    finally:
        bar.close()
    report = json.loads(report)
    results = [_result(columns, model_report, exit_code)
               for columns, model_report in zip(per_model, report["models"])]
    return CompareResult(models=results, paired=report.get("paired", []), report=report, exit_code=exit_code)


def inspect(model, **options) -> dict:
    """``flowlik inspect MODEL --json [options]``: the contract in effect with each field's source, the parameters,
    a smoke run and the cost of scoring. The dict has ``"ok"``: whether the smoke run was finite and solved."""
    report, _, exit_code = _flowlik.inspect([os.fspath(model), *_options(options)])
    report = json.loads(report)
    report["ok"] = exit_code == 0
    return report

