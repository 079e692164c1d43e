"""The peer computation flowlik is compared against: Meta's flow_matching ODESolver.compute_likelihood
(torchdiffeq underneath) on the same TorchScript model and the same model-space data.

flowlik's model contract is forward(x [B, *shape], t [B]), or forward(t, x) where the manifest says
"signature": "(t, x)" (torchcfm's models, as the exporter traces them); flow_matching calls
velocity_model(x=..., t=...) with a 0-d t and, for the exact divergence, indexes ut[:, i], so it needs x
flattened to [B, D].
"""
import json
import math

import torch
from flow_matching.solver import ODESolver
from flow_matching.utils import ModelWrapper


SIGNATURES = ("(x, t)", "(t, x)")


class FlatVelocity(ModelWrapper):
    """Presents a forward(x [B, *shape], t [B]) model (signature "(x, t)") or a forward(t [B], x [B, *shape])
    one ("(t, x)") to flow_matching as a field on [B, D]."""

    def __init__(self, scripted, shape, signature="(x, t)"):
        super().__init__(scripted)
        self.shape = list(shape)
        signature = signature.replace(" ", "").replace(",", ", ")
        if signature not in SIGNATURES:
            raise ValueError(f"signature: {signature!r} (valid: {', '.join(SIGNATURES)})")
        self.time_first = signature == "(t, x)"

    def forward(self, x, t, **extras):
        b = x.shape[0]
        t = t.reshape(-1).expand(b) if t.dim() <= 1 else t
        x = x.reshape([b] + self.shape)
        return (self.model(t, x) if self.time_first else self.model(x, t)).reshape(b, -1)


def manifest_signature(text):
    """The signature a flowlik.json manifest (its text, as torch.jit.load's _extra_files gives it) declares;
    "(x, t)" without one."""
    text = text.decode("utf-8") if isinstance(text, bytes) else text
    return json.loads(text).get("signature", "(x, t)") if text else "(x, t)"


def standard_normal_log_density(x):
    return -0.5 * x.shape[1] * math.log(2 * math.pi) - 0.5 * (x * x).sum(1)


def flow_matching_log_likelihood(model_path, y, *, method="dopri5", atol=1e-5, rtol=1e-5,
                                 step_size=None, exact=True, batch_size=None, signature=None):
    """log p(y) per sample under the model, as flow_matching computes it. y: [N, *shape] tensor.
    signature: the model's argument order, "(x, t)" or "(t, x)"; by default the one its embedded flowlik.json
    manifest declares ("(x, t)" without one).
    Returns (log_likelihood [N] float64 tensor, nfe per batch list)."""
    extra = {"flowlik.json": ""}
    scripted = torch.jit.load(str(model_path), _extra_files=extra).to(y.dtype).eval()
    signature = signature or manifest_signature(extra["flowlik.json"])
    for p in scripted.parameters():
        p.requires_grad_(False)
    counter = {"nfe": 0}
    wrapped = FlatVelocity(scripted, y.shape[1:], signature)
    original = wrapped.forward

    def counting_forward(x, t, **extras):
        counter["nfe"] += 1
        return original(x, t, **extras)

    wrapped.forward = counting_forward
    solver = ODESolver(velocity_model=wrapped)
    batch_size = batch_size or y.shape[0]
    out, nfes = [], []
    for start in range(0, y.shape[0], batch_size):
        counter["nfe"] = 0
        x1 = y[start:start + batch_size].reshape(min(batch_size, y.shape[0] - start), -1)
        _, log_p = solver.compute_likelihood(
            x_1=x1, log_p0=standard_normal_log_density, step_size=step_size, method=method,
            atol=atol, rtol=rtol, time_grid=torch.tensor([1.0, 0.0], dtype=y.dtype),
            exact_divergence=exact)
        out.append(log_p.detach().to(torch.float64))
        nfes.append(counter["nfe"])
    return torch.cat(out), nfes
