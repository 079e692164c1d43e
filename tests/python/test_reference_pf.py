"""A noise-prediction VP model in diffusion time, scored with its contract, agrees with a reference
probability-flow computation done independently here: float64, classic RK4 on a fixed grid, the divergence
taken exactly by autograd, and the drift written from the SDE (Song et al. 2021), not from flowlik's
conversion table.

VP SDE in diffusion time s (s = 0 data, s = 1 noise):
    dx = -1/2 beta(s) x ds + sqrt(beta(s)) dw,   beta(s) = beta_min + s (beta_max - beta_min),
so the marginal is x_s = alpha(s) x_0 + sigma(s) z with alpha(s) = exp(-B(s)/2), B(s) = int_0^s beta,
sigma(s) = sqrt(1 - exp(-B(s))). The score is -eps/sigma(s), and the probability-flow ODE is
    dx/ds = f(x, s) = -1/2 beta(s) x - 1/2 beta(s) score(x, s) = -1/2 beta(s) (x - eps(x, s)/sigma(s)).
The continuity equation d p/ds + div(p f) = 0 gives, along a solution, d/ds log p_s(x_s) = -div f(x_s, s),
hence for the data-end density
    log p_{s0}(x) = log p_1(x(1)) + int_{s0}^{1} div f(x(s), s) ds,   x(s0) = x,
with p_1 taken to be N(0, I) (flowlik's standard prior).
"""
import math

import numpy as np
import pytest
import torch

import flowlik_export  # scripts/setup installs it: pip install --no-deps -e python
from conftest import BIN, run_flowlik, read_per_sample

BETA_MIN, BETA_MAX = 0.1, 20.0
S0 = 1e-3
CONTRACT = {"time": "diffusion", "parameterization": "noise", "schedule": "vp:0.1,20",
            "time_range": [S0, 1.0]}
DIM = 4


def beta(s):
    return BETA_MIN + s * (BETA_MAX - BETA_MIN)


def beta_integral(s):
    """B(s) = int_0^s beta(u) du."""
    return BETA_MIN * s + 0.5 * (BETA_MAX - BETA_MIN) * s * s


def marginal_std(s):
    """sigma(s) = sqrt(1 - exp(-B(s))), written with expm1 for small s."""
    return math.sqrt(-math.expm1(-beta_integral(s)))


def pf_drift(eps_model, x, s):
    """The PF-ODE drift f(x, s) = -1/2 beta(s) (x - eps(x, s) / sigma(s)); x: [B, D]."""
    eps = eps_model(x, torch.full((x.shape[0],), s, dtype=x.dtype))
    return -0.5 * beta(s) * (x - eps / marginal_std(s))


def drift_and_divergence(eps_model, x, s):
    """f(x, s) [B, D] and div f = sum_i d f_i / d x_i [B], exactly.

    Row block i of a D-fold copy of x carries the one-hot cotangent e_i, so one backward pass gives every
    diagonal entry of the Jacobian; the model acts on each row alone, so rows do not mix."""
    b, d = x.shape
    with torch.enable_grad():
        copies = x.detach().repeat(d, 1).requires_grad_(True)  # [D * B, D], block i for dimension i
        f = pf_drift(eps_model, copies, s)
        cotangent = torch.eye(d, dtype=x.dtype).repeat_interleave(b, dim=0)  # [D * B, D]
        (grad,) = torch.autograd.grad(f, copies, grad_outputs=cotangent)
    diagonal = (grad * cotangent).sum(1).view(d, b)  # [D, B]: d f_i / d x_i for each sample
    return f[:b].detach(), diagonal.sum(0)


def integrate_pf_ode(eps_model, x, s0=S0, s1=1.0, steps=2000):
    """Classic RK4 on the augmented state [x, l], dx/ds = f, dl/ds = div f, from s0 (data end) to s1.

    Returns x(s1) [B, D] and l(s1) = int_{s0}^{s1} div f ds [B].
    """
    h = (s1 - s0) / steps
    l = torch.zeros(x.shape[0], dtype=x.dtype)
    for n in range(steps):
        s = s0 + n * h
        k1x, k1l = drift_and_divergence(eps_model, x, s)
        k2x, k2l = drift_and_divergence(eps_model, x + 0.5 * h * k1x, s + 0.5 * h)
        k3x, k3l = drift_and_divergence(eps_model, x + 0.5 * h * k2x, s + 0.5 * h)
        k4x, k4l = drift_and_divergence(eps_model, x + h * k3x, s + h)
        x = x + h / 6 * (k1x + 2 * k2x + 2 * k3x + k4x)
        l = l + h / 6 * (k1l + 2 * k2l + 2 * k3l + k4l)
    return x, l


def gaussian_log_density(x, variance):
    """log N(x; 0, variance I) per row of x [B, D]."""
    d = x.shape[1]
    return -0.5 * d * math.log(2 * math.pi * variance) - 0.5 * (x * x).sum(1) / variance


def reference_log_likelihood(eps_model, x, steps=2000):
    """log p_{s0}(x) with the N(0, I) prior at s = 1 (see the module docstring)."""
    x1, integral = integrate_pf_ode(eps_model, x, steps=steps)
    return gaussian_log_density(x1, 1.0) + integral


class GaussianEps(torch.nn.Module):
    """The exact noise prediction for data N(0, c^2 I) on the VP path: x_s ~ N(0, V(s) I) with
    V(s) = alpha^2 c^2 + sigma^2 and E[z | x_s] = sigma(s) x / V(s). The PF-ODE is then linear,
    f = 1/2 (d log V/ds) x, so x(s) = x(s0) sqrt(V(s) / V(s0)), int_{s0}^{1} div f ds = D/2 log(V(1)/V(s0)),
    and log p_{s0} = log N(x; 0, V(s0) I)."""

    def __init__(self, c):
        super().__init__()
        self.c2 = float(c) ** 2
        self.beta_min = BETA_MIN
        self.beta_max = BETA_MAX

    def forward(self, x, s):
        b = self.beta_min * s + 0.5 * (self.beta_max - self.beta_min) * s * s  # [B]
        alpha2 = torch.exp(-b)
        sigma = torch.sqrt(-torch.expm1(-b))
        v = alpha2 * self.c2 + sigma * sigma
        return (sigma / v)[:, None] * x


def gaussian_variance(c, s):
    alpha2 = math.exp(-beta_integral(s))
    return alpha2 * c * c + (1 - alpha2)


class EpsMLP(torch.nn.Module):
    """A random smooth noise predictor eps(x, s): x [B, D], s [B] diffusion time."""

    def __init__(self, d=DIM, hidden=32, seed=1234):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)

        def linear(n_in, n_out, gain):
            layer = torch.nn.Linear(n_in, n_out)
            with torch.no_grad():
                layer.weight.copy_(torch.randn(n_out, n_in, generator=generator) * gain / math.sqrt(n_in))
                layer.bias.copy_(torch.randn(n_out, generator=generator) * 0.1)
            return layer

        self.inp = linear(d + 2, hidden, 1.5)
        self.mid = linear(hidden, hidden, 1.5)
        self.out = linear(hidden, d, 1.0)
        self.scale = 0.5

    def forward(self, x, s):
        features = torch.cat([x, s[:, None], torch.sin(3.0 * s)[:, None]], dim=1)
        h = torch.nn.functional.silu(self.inp(features))
        h = torch.tanh(self.mid(h))
        return self.scale * self.out(h)


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """The reference's tensors are tiny; one intra-op thread is fastest, the more so on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def flowlik_bin():
    if not BIN.exists():
        pytest.skip(f"flowlik binary not found at {BIN}: build it or set FLOWLIK_BIN")
    return BIN


def read_log_likelihoods(path):
    rows = read_per_sample(path)
    assert [r["status"] for r in rows] == ["ok"] * len(rows)
    return np.array([float(r["log_likelihood"]) for r in rows])


def score_with_flowlik(model_path, data_path, out_path, *options):
    # One thread: batches of 8 rows gain nothing from more, and spinning threads on a busy machine
    # (tests run in parallel under ctest) slow the solve many times over.
    run_flowlik("score", model_path, "--data", data_path, "--dtype", "float64", "--threads", "1",
                "--per-sample", out_path, "-q", *options)
    return read_log_likelihoods(out_path)


def test_the_reference_reproduces_a_closed_form():
    """The reference itself, on a Gaussian target whose PF-ODE is linear: the end state, the divergence
    integral and (with the path's true prior N(0, V(1) I)) the data-end density are known exactly. This
    checks the sign of the divergence term and the integrator. RK4's error on this smooth linear ODE with
    2000 steps is below rounding: measured 1e-12 at most; 1e-10 allows for rounding across the steps."""
    c = 0.5
    x = torch.randn(5, DIM, generator=torch.Generator().manual_seed(7), dtype=torch.float64) * c
    x1, integral = integrate_pf_ode(GaussianEps(c), x)
    v0, v1 = gaussian_variance(c, S0), gaussian_variance(c, 1.0)
    torch.testing.assert_close(x1, x * math.sqrt(v1 / v0), rtol=1e-10, atol=0)
    torch.testing.assert_close(integral, torch.full((5,), 0.5 * DIM * math.log(v1 / v0),
                                                    dtype=torch.float64), rtol=1e-10, atol=0)
    torch.testing.assert_close(gaussian_log_density(x1, v1) + integral, gaussian_log_density(x, v0),
                               rtol=0, atol=1e-10)


def test_flowlik_matches_the_closed_form_of_a_gaussian_eps_model(flowlik_bin, tmp_path):
    """flowlik on the same Gaussian model: with its N(0, I) prior the exact answer is
    log N(x(1); 0, I) + int div f, both parts in closed form. Measured 1e-12 (RK4 error below rounding,
    as above); 1e-9 allows for rounding, far below the 5.5 (= D log(V(1)/V(s0))) a flipped sign gives."""
    c = 0.5
    x = np.random.default_rng(3).standard_normal((8, DIM)) * c
    model, data, out = tmp_path / "gauss.pt", tmp_path / "x.npy", tmp_path / "out.csv"
    flowlik_export.export(GaussianEps(c).double(), model, CONTRACT, torch.from_numpy(x), format="torchscript")
    np.save(data, x)
    got = score_with_flowlik(model, data, out, "--solver", "rk4", "--steps", "2000")
    v0, v1 = gaussian_variance(c, S0), gaussian_variance(c, 1.0)
    xt = torch.from_numpy(x)
    exact = gaussian_log_density(xt * math.sqrt(v1 / v0), 1.0) + 0.5 * DIM * math.log(v1 / v0)
    np.testing.assert_allclose(got, exact.numpy(), rtol=0, atol=1e-9)


@pytest.fixture(scope="module")
def eps_model_and_reference():
    model = EpsMLP().double().eval()
    x = torch.from_numpy(np.random.default_rng(11).standard_normal((8, DIM)) * 0.5)
    with torch.no_grad():
        reference = reference_log_likelihood(model, x).numpy()
    return model, x, reference


@pytest.fixture
def exported(eps_model_and_reference, tmp_path):
    model, x, reference = eps_model_and_reference
    path, data = tmp_path / "eps.pt", tmp_path / "x.npy"
    manifest = flowlik_export.export(model, path, CONTRACT, x, format="torchscript")
    assert manifest == {**CONTRACT, "shape": [DIM]}
    np.save(data, x.numpy())
    return path, data, reference


def test_flowlik_rk4_agrees_with_the_reference(flowlik_bin, exported, tmp_path):
    path, data, reference = exported
    got = score_with_flowlik(path, data, tmp_path / "rk4.csv", "--solver", "rk4", "--steps", "2000")
    # The same method on the same grid (flowlik steps flow time t = 1 - s from 0.999 to 0 in 2000 equal
    # steps, the mirror of the reference's grid), so the two compute one discrete map and differ only by
    # rounding in different arithmetic (the conversion eps -> velocity, sums over 2000 steps): measured
    # 1e-13. The map's own discretisation error is far larger (2000 against 4000 steps: 1.7e-7), so any
    # difference in the method or in where the stages are evaluated would show well above 1e-8.
    assert np.all(np.isfinite(reference))
    np.testing.assert_allclose(got, reference, rtol=0, atol=1e-8)


def test_flowlik_dopri5_agrees_with_the_reference(flowlik_bin, exported, tmp_path):
    path, data, reference = exported
    got = score_with_flowlik(path, data, tmp_path / "dopri5.csv", "--rtol", "1e-8", "--atol", "1e-8")
    # Two different solvers now: the difference is the sum of their errors, dominated by the reference's
    # RK4 error (1.7e-7, from 2000 against 4000 steps; dopri5 at 1e-8 is within 3e-9 of the 4000-step
    # result). 1e-5 leaves room for that and still fails any error in the conversion, the sign of the
    # divergence or the time direction, each of which moves log p by O(1).
    np.testing.assert_allclose(got, reference, rtol=0, atol=1e-5)
