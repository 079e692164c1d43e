"""An independent reference log-likelihood for any model flowlik_export's adapters describe, written from
shared/MATH.md and not from flowlik's code: torchdiffeq's dopri5 in float64 on the augmented ODE
[x, l], dx/dt = v(t, x), dl/dt = tr dv/dx, the divergence exact (torch.func.jacrev: every column), the
conversion of the network's output to a velocity from MATH.md section 4 with the schedule's derivatives
taken by autograd.

    log p1(x1) = log p0(x(t_lo)) + l(t_lo),   integrating from [x1, 0] at t_hi down to t_lo.

The time range [t_lo, t_hi] is the contract's, in flow time (t = 1 - s for a diffusion-time model).
"""
import contextlib
import copy
import math

import torch
import torchdiffeq


def alpha_sigma(schedule, t):
    """alpha_t, sigma_t at flow time t (a float64 tensor), shared/MATH.md's schedule table."""
    name = schedule["name"]
    s = 1 - t
    if name == "vp":
        lo, hi = schedule["beta_min"], schedule["beta_max"]
        alpha = torch.exp(-(lo * s + (hi - lo) * s * s / 2) / 2)
        return alpha, torch.sqrt(1 - alpha * alpha)
    if name == "ve":
        lo, hi = schedule["sigma_min"], schedule["sigma_max"]
        return torch.ones_like(t), lo * (hi / lo) ** s
    if name == "cosine":
        c = schedule["offset"]
        alpha = torch.cos(math.pi / 2 * (s + c) / (1 + c)) / math.cos(math.pi / 2 * c / (1 + c))
        return alpha, torch.sqrt(1 - alpha * alpha)
    raise ValueError(f"reference: schedule {name}")


def _derivatives(schedule, t):
    """alpha, sigma and their derivatives in flow time at the scalar t (torch.func, so that it composes with
    the jacrev of the divergence)."""
    alpha, sigma = alpha_sigma(schedule, t)
    alpha_dot = torch.func.grad(lambda u: alpha_sigma(schedule, u)[0])(t)
    sigma_dot = torch.func.grad(lambda u: alpha_sigma(schedule, u)[1])(t)
    return alpha, sigma, alpha_dot, sigma_dot


def velocity_fn(module, contract, labels=None):
    """v(t, x) for one sample x [*shape] at flow time t (0-d), from the module as the contract describes it."""
    time_is_flow = contract.get("time", "flow") == "flow"
    parameterization = contract.get("parameterization", "velocity")
    signature = contract.get("signature", "(x, t)").replace(" ", "")
    schedule = contract.get("schedule")

    def network(t, x):
        model_time = (t if time_is_flow else 1 - t).reshape(1)
        args = (x[None], model_time) if signature == "(x,t)" else (model_time, x[None])
        if labels is not None:
            args = args + (labels,)
        return module(*args)[0]

    def v(t, x):
        out = network(t, x)
        kind = parameterization
        if kind == "velocity":
            return out if time_is_flow else -out
        alpha, sigma, alpha_dot, sigma_dot = _derivatives(schedule, t)
        if kind == "v":  # Salimans and Ho on a variance-preserving path: E = sigma x + alpha v
            kind, out = "noise", sigma * x + alpha * out
        if kind == "noise":
            return (alpha_dot / alpha) * x + (sigma_dot - sigma * alpha_dot / alpha) * out
        if kind == "data":
            return (sigma_dot / sigma) * x + (alpha_dot - sigma_dot * alpha / sigma) * out
        raise ValueError(f"reference: parameterization {kind}")

    return v


@contextlib.contextmanager
def _float64_throughout(module):
    """Keeps a model that hard-codes float32 in float64: torchcfm's UNet casts its input to self.dtype,
    runs GroupNorm32 on x.float() and builds its time embedding from timesteps.float(). While this lasts,
    .float() leaves a float64 tensor as it is and a module's `dtype` attribute of float32 reads float64.
    The reference is then the same network computed in float64, which the float32 run approximates."""
    real_float = torch.Tensor.float
    torch.Tensor.float = lambda self, *a, **k: self if self.dtype == torch.float64 else real_float(self, *a, **k)
    changed = [m for m in module.modules() if getattr(m, "dtype", None) == torch.float32
               and not isinstance(getattr(type(m), "dtype", None), property)]
    for m in changed:
        m.dtype = torch.float64
    try:
        yield
    finally:
        torch.Tensor.float = real_float
        for m in changed:
            m.dtype = torch.float32


def log_likelihood(module, contract, x, labels=None, tol=1e-8):
    """The reference log p(x) of one sample x [*shape] (float64 throughout)."""
    module = copy.deepcopy(module).double().eval()
    with _float64_throughout(module):
        return _log_likelihood(module, contract, x.double(), labels, tol)


def _log_likelihood(module, contract, x, labels, tol):
    v = velocity_fn(module, contract, labels)
    lo, hi = contract.get("time_range", [0.0, 1.0])
    if contract.get("time", "flow") != "flow":
        lo, hi = 1 - hi, 1 - lo
    d = x.numel()

    def augmented(t, state):
        y = state[:d].reshape(x.shape)
        dy = v(t, y)
        jacobian = torch.func.jacrev(lambda z: v(t, z.reshape(x.shape)).reshape(-1))(y.reshape(-1))
        return torch.cat([dy.reshape(-1), jacobian.diagonal().sum().reshape(1)])

    start = torch.cat([x.reshape(-1), torch.zeros(1, dtype=torch.float64)])
    times = torch.tensor([hi, lo], dtype=torch.float64)
    with torch.no_grad():
        end = torchdiffeq.odeint(augmented, start, times, method="dopri5", rtol=tol, atol=tol)[-1]
    x0, change = end[:d], end[d]
    prior = contract.get("prior", "standard")
    scale = prior["scale"] if isinstance(prior, dict) else 1.0
    log_p0 = -d / 2 * math.log(2 * math.pi * scale * scale) - (x0 * x0).sum() / (2 * scale * scale)
    return float(log_p0 + change)
