"""flowlik from Python: the exact log-likelihood and bits per dimension of data under an exported flow model, in
the process and on the tensors where the model lives. The same library as the ``flowlik`` program, called
directly (no subprocess); options carry the program's long option names with underscores and its defaults.

    import flowlik
    r = flowlik.score("model.pt2", data, trace="exact", rtol=1e-5, atol=1e-5, seed=0, threads=1)
    r.log_likelihood, r.bpd, r.nfe, r.status, r.summary, r.report
    flowlik.compare(["a.pt2", "b.pt2"], data)
    flowlik.inspect("model.pt2")

``data`` is a path to an .npy file, a numpy array or a torch tensor (uint8 for discrete data, floats for
continuous). Errors are ``flowlik.Error`` and its kinds (flowlik.errors).
"""
from importlib import metadata as _metadata

from flowlik._build_info import TORCH_VERSION as _BUILT_AGAINST
from flowlik._build_info import VERSION as __version__
from flowlik.errors import (DataError, Error, IntegrationError, InvalidArgument, ModelError, NoSampleScored,
                            OutputError)


def _release(version: str) -> str:
    return version.split("+")[0]  # a local suffix (+cu132, +cpu) names the build, not the release


def _check_torch() -> None:
    try:
        found = _metadata.version("torch")
    except _metadata.PackageNotFoundError:
        raise ImportError(f"flowlik {__version__} needs torch {_BUILT_AGAINST}, and this environment has no torch") from None
    if _release(found) != _release(_BUILT_AGAINST):
        raise ImportError(f"flowlik {__version__} was built against torch {_BUILT_AGAINST} and this environment has "
                          f"torch {found}: install torch=={_release(_BUILT_AGAINST)}, or build flowlik against this torch")


_check_torch()

# The functions load torch and the compiled module on first use, so that `import flowlik` (and the `flowlik`
# command, which runs the program) stays quick.
_API = {"score", "compare", "inspect", "Result", "CompareResult"}


def __getattr__(name):
    if name in _API:
        from flowlik import _api
        return getattr(_api, name)
    raise AttributeError(f"module 'flowlik' has no attribute '{name}'")


__all__ = sorted(_API) + ["Error", "InvalidArgument", "DataError", "ModelError", "OutputError", "NoSampleScored",
                          "IntegrationError"]
