"""Adapters for the libraries people train with: each takes the library's own objects and returns
(module, contract) for export(), so that a user writes no wrapper and guesses no schedule.

    module, contract = from_diffusers(unet, scheduler)
    export(module, "model.pt2", contract, example_x)

from_diffusers reads a diffusers scheduler's config (beta schedule and range, number of training steps,
prediction type); from_torchcfm takes torchcfm's (t, x[, y]) models in flow time; from_edm takes an EDM /
k-diffusion denoiser D(x; sigma) (or a raw network with EDM's preconditioning). The continuous-time
equivalents are those of shared/MATH.md section 4 and score_sde's: a DDPM with N steps and linear betas
from beta_start to beta_end is the VP SDE with beta_min = N beta_start, beta_max = N beta_end, its timestep
index (N - 1) s at diffusion time s.

Each refuses, with a ContractError naming the config field, what has no continuous equivalent. Extra
contract fields (data, time_range) are given as `contract=`: they are merged over what the adapter derives.
"""
import torch

from flowlik_export.manifest import ContractError, validate_contract

# score_sde's lower end of diffusion time for VP models (Song et al. 2021): the noise parameterization's
# velocity has sigma_dot ~ 1 / sqrt(s) at s = 0.
VP_TIME_MIN = 1e-5
# The cosine schedule's alpha reaches 0 at s = 1, where a noise model's velocity divides by it; diffusers
# clips its betas at 0.999 near there (max_beta), which has no continuous form: the range stops short.
COSINE_TIME_MAX = 1.0 - 1e-3


def _merged(derived, contract):
    if contract is not None and not isinstance(contract, dict):
        raise ContractError(f"contract: expected a dict of extra fields, got {type(contract).__name__}")
    return validate_contract({**derived, **(contract or {})})


def _config(scheduler, field, default=None):
    config = getattr(scheduler, "config", None)
    if config is None:
        raise ContractError(f"scheduler: {type(scheduler).__name__} has no config (expected a diffusers "
                            f"scheduler, such as DDPMScheduler)")
    return config.get(field, default) if hasattr(config, "get") else getattr(config, field, default)


class DiffusersUNet(torch.nn.Module):
    """forward(x, s[, y]) = unet(x, (N - 1) s[, class_labels=y]).sample: a diffusers UNet (or any model
    called as model(sample, timestep, ...) returning .sample or a tensor) in continuous diffusion time."""

    def __init__(self, unet, num_train_timesteps, conditional):
        super().__init__()
        self.unet = unet
        self.scale = float(num_train_timesteps - 1)
        self.conditional = conditional

    def forward(self, x, s, y=None):
        kwargs = {"class_labels": y} if self.conditional else {}
        out = self.unet(x, self.scale * s, **kwargs)
        return out.sample if hasattr(out, "sample") else out


_PREDICTIONS = {"epsilon": "noise", "v_prediction": "v", "sample": "data"}


def from_diffusers(unet, scheduler, *, contract=None):
    """(module, contract) for a diffusers UNet (UNet2DModel, or any model taking (sample, timestep[,
    class_labels])) trained with `scheduler` (DDPMScheduler, DDIMScheduler, ...: any scheduler whose config
    has num_train_timesteps, beta_schedule, beta_start, beta_end and prediction_type).

    The schedule: "linear" betas are the VP SDE vp:N*beta_start,N*beta_end; "squaredcos_cap_v2" is the
    cosine schedule cosine:0.008 (integrated up to s = 0.999, before the clipped end). The prediction type:
    epsilon -> noise, v_prediction -> v, sample -> data. A UNet with num_class_embeds is class-conditional.
    """
    n = _config(scheduler, "num_train_timesteps")
    if not isinstance(n, int) or n < 2:
        raise ContractError(f"scheduler.config.num_train_timesteps: expected an integer >= 2, got {n!r}")
    if _config(scheduler, "trained_betas") is not None:
        raise ContractError("scheduler.config.trained_betas: a table of betas has no continuous-time "
                            "schedule flowlik can integrate; use beta_schedule 'linear' or "
                            "'squaredcos_cap_v2'")
    beta_schedule = _config(scheduler, "beta_schedule", "linear")
    time_max = 1.0
    if beta_schedule == "linear":
        lo, hi = _config(scheduler, "beta_start"), _config(scheduler, "beta_end")
        schedule = {"name": "vp", "beta_min": n * float(lo), "beta_max": n * float(hi)}
    elif beta_schedule == "squaredcos_cap_v2":
        schedule = {"name": "cosine", "offset": 0.008}
        time_max = COSINE_TIME_MAX
    else:
        raise ContractError(f"scheduler.config.beta_schedule: '{beta_schedule}' has no continuous-time "
                            f"equivalent in flowlik (supported: linear, squaredcos_cap_v2)")
    prediction = _config(scheduler, "prediction_type", "epsilon")
    if prediction not in _PREDICTIONS:
        raise ContractError(f"scheduler.config.prediction_type: unknown value '{prediction}' "
                            f"(supported: {', '.join(_PREDICTIONS)})")
    unet_config = getattr(unet, "config", {})
    classes = unet_config.get("num_class_embeds") if hasattr(unet_config, "get") else None
    derived = {"signature": "(x, t)", "time_input": "vector", "time": "diffusion",
               "parameterization": _PREDICTIONS[prediction], "schedule": schedule,
               "time_range": [VP_TIME_MIN, time_max], "prior": "standard",
               "conditioning": "label" if classes else "none"}
    return DiffusersUNet(unet, n, bool(classes)), _merged(derived, contract)


def from_torchcfm(model, *, num_classes=None, contract=None):
    """(model, contract) for a torchcfm model (UNetModelWrapper, MLP, ...): forward(t, x[, y]) returning a
    velocity in flow time (t = 0 noise, t = 1 data, as torchcfm trains it: x_t = t x1 + (1 - t) x0).
    num_classes: for a class-conditional model (UNetModelWrapper(class_cond=True)), called as
    forward(t, x, y). The model is used as it is: torchcfm's signature is one flowlik's contract speaks."""
    derived = {"signature": "(t, x)", "time_input": "vector", "time": "flow", "parameterization": "velocity",
               "conditioning": "label" if num_classes else "none"}
    return model, _merged(derived, contract)


class EDMDenoiser(torch.nn.Module):
    """forward(x, s) = D(x; sigma(s)), sigma(s) = sigma_min (sigma_max / sigma_min)^s: an EDM denoiser in
    flowlik's VE diffusion time. With sigma_data, D is built from the raw network F(x_in, c_noise) with
    EDM's preconditioning (Karras et al. 2022, table 1)."""

    def __init__(self, model, sigma_min, sigma_max, sigma_data):
        super().__init__()
        self.model = model
        self.sigma_min = float(sigma_min)
        self.log_ratio = float(torch.log(torch.tensor(sigma_max / sigma_min, dtype=torch.float64)))
        self.sigma_data = None if sigma_data is None else float(sigma_data)

    def forward(self, x, s):
        sigma = self.sigma_min * torch.exp(self.log_ratio * s)  # [B]
        if self.sigma_data is None:
            return self.model(x, sigma)
        view = sigma.reshape(-1, *([1] * (x.dim() - 1)))
        total = view ** 2 + self.sigma_data ** 2
        c_skip = self.sigma_data ** 2 / total
        c_out = view * self.sigma_data / total.sqrt()
        c_in = 1 / total.sqrt()
        return c_skip * x + c_out * self.model(c_in * x, sigma.log() / 4)


def from_edm(denoiser, sigma_min, sigma_max, sigma_data=None, *, contract=None):
    """(module, contract) for an EDM / k-diffusion denoiser: denoiser(x, sigma) -> the denoised x (data
    prediction), sigma [B]. With sigma_data, `denoiser` is the raw network F(c_in x, c_noise) and EDM's
    preconditioning D = c_skip x + c_out F(c_in x, ln(sigma) / 4) is applied here.

    Integrated over sigma in [sigma_min, sigma_max] as the VE schedule ve:sigma_min,sigma_max, whose
    probability-flow ODE is EDM's dx/dsigma = (x - D) / sigma, with the prior N(0, sigma_max^2 I)."""
    for name, value in (("sigma_min", sigma_min), ("sigma_max", sigma_max)):
        if not isinstance(value, (int, float)) or not 0 < value < float("inf"):
            raise ContractError(f"{name}: expected a positive number, got {value!r}")
    if not sigma_min < sigma_max:
        raise ContractError(f"sigma_max: must exceed sigma_min ({sigma_min!r}), got {sigma_max!r}")
    if sigma_data is not None and (not isinstance(sigma_data, (int, float)) or not sigma_data > 0):
        raise ContractError(f"sigma_data: expected a positive number, got {sigma_data!r}")
    derived = {"signature": "(x, t)", "time_input": "vector", "time": "diffusion",
               "parameterization": "data",
               "schedule": {"name": "ve", "sigma_min": float(sigma_min), "sigma_max": float(sigma_max)},
               "time_range": [0.0, 1.0], "prior": {"name": "normal", "scale": float(sigma_max)}}
    return EDMDenoiser(denoiser, sigma_min, sigma_max, sigma_data), _merged(derived, contract)
