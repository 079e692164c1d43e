"""The adapters for the libraries people train with (flowlik_export.adapters): the contract each derives from
the library's own objects, the call each makes, and the configurations each refuses, naming the field. No
compile: the exports of these models are tests/python/test_architectures.py."""
import pathlib
import sys

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler

from flowlik_export import ContractError, from_diffusers, from_edm, from_torchcfm

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))
import architectures  # noqa: E402


class Recorder(torch.nn.Module):
    """Stands in for a diffusers UNet: records the timestep (and class labels) it is called with."""

    def __init__(self, num_class_embeds=None):
        super().__init__()
        self.config = {"num_class_embeds": num_class_embeds}
        self.calls = []

    def forward(self, sample, timestep, class_labels=None):
        self.calls.append((timestep, class_labels))
        return 2 * sample


@pytest.mark.parametrize("prediction, parameterization", [
    ("epsilon", "noise"), ("v_prediction", "v"), ("sample", "data")])
def test_a_ddpm_scheduler_becomes_the_vp_sde_with_its_prediction_type(prediction, parameterization):
    unet = Recorder()
    module, contract = from_diffusers(unet, DDPMScheduler(prediction_type=prediction))
    assert contract == {"signature": "(x, t)", "time_input": "vector", "time": "diffusion",
                        "parameterization": parameterization,
                        "schedule": {"name": "vp", "beta_min": 0.1, "beta_max": 20.0},
                        "time_range": [1e-5, 1.0], "prior": "standard", "conditioning": "none"}
    x, s = torch.randn(3, 1, 4, 4), torch.tensor([0.0, 0.5, 1.0])
    torch.testing.assert_close(module(x, s), 2 * x)
    torch.testing.assert_close(unet.calls[0][0], torch.tensor([0.0, 499.5, 999.0]))  # (N - 1) s


def test_the_vp_sde_follows_the_ddpm_products_of_its_betas():
    # score_sde's continuous limit: alpha_bar at timestep i = (N - 1) s is exp(-T(s)); the discrete product
    # of (1 - beta_j) agrees to within the limit's own error: log(1 - beta) = -beta - beta^2/2 - ..., and
    # beta reaches 0.02, so -log alpha_bar exceeds T by up to 1% (measured 0.67% at the last step).
    scheduler = DDPMScheduler()
    _, contract = from_diffusers(Recorder(), scheduler)
    lo, hi = contract["schedule"]["beta_min"], contract["schedule"]["beta_max"]
    i = torch.arange(0, 1000, 37, dtype=torch.float64)
    s = i / 999
    continuous = -(lo * s + (hi - lo) * s * s / 2)
    discrete = scheduler.alphas_cumprod.double()[i.long()].log()
    assert ((continuous - discrete).abs() <= 0.01 * continuous.abs() + 0.002).all()


def test_a_cosine_schedule_and_a_ddim_scheduler_and_class_labels():
    unet = Recorder(num_class_embeds=10)
    module, contract = from_diffusers(unet, DDIMScheduler(beta_schedule="squaredcos_cap_v2"),
                                      contract={"data": {"levels": 256, "scale": "centered"}})
    assert contract["schedule"] == {"name": "cosine", "offset": 0.008}
    assert contract["time_range"] == [1e-5, 0.999] and contract["conditioning"] == "label"
    assert contract["data"] == {"levels": 256, "scale": "centered"}
    y = torch.tensor([3, 4])
    module(torch.randn(2, 1, 2, 2), torch.tensor([0.1, 0.2]), y)
    assert unet.calls[0][1] is y


@pytest.mark.parametrize("config, message", [
    ({"beta_schedule": "scaled_linear"}, "scheduler.config.beta_schedule: 'scaled_linear' has no "
                                         "continuous-time equivalent in flowlik"),
    ({"trained_betas": [1e-4] * 10, "num_train_timesteps": 10}, "scheduler.config.trained_betas: a table"),
    ({"prediction_type": "flow"}, "scheduler.config.prediction_type: unknown value 'flow'"),
])
def test_what_has_no_continuous_equivalent_is_refused_naming_the_field(config, message):
    scheduler = DDPMScheduler()
    scheduler.register_to_config(**config)
    with pytest.raises(ContractError) as error:
        from_diffusers(Recorder(), scheduler)
    assert str(error.value).startswith(message), str(error.value)


def test_torchcfm_models_are_used_as_they_are():
    model = torch.nn.Identity()
    module, contract = from_torchcfm(model)
    assert module is model
    assert contract == {"signature": "(t, x)", "time_input": "vector", "time": "flow",
                        "parameterization": "velocity", "conditioning": "none"}
    assert from_torchcfm(model, num_classes=10)[1]["conditioning"] == "label"


def test_edm_preconditioning_and_sigma_time():
    # from_edm(F, ..., sigma_data) applies Karras et al.'s preconditioning itself; the fixture's EDMPrecond
    # writes the same table separately: both must give D(x; sigma(s)), sigma(s) = 0.002 (80 / 0.002)^s.
    torch.manual_seed(0)
    network = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 4))

    class F(torch.nn.Module):
        def forward(self, x, c_noise):
            return network(x).reshape(x.shape) * (1 + c_noise[:, None, None, None])

    raw, contract = from_edm(F(), 0.002, 80.0, sigma_data=0.5)
    wrapped, contract2 = from_edm(architectures.EDMPrecond(F(), 0.5), 0.002, 80.0)
    assert contract == contract2 == {
        "signature": "(x, t)", "time_input": "vector", "time": "diffusion", "parameterization": "data",
        "schedule": {"name": "ve", "sigma_min": 0.002, "sigma_max": 80.0}, "time_range": [0.0, 1.0],
        "prior": {"name": "normal", "scale": 80.0}}
    x, s = torch.randn(3, 1, 2, 2, dtype=torch.float64), torch.tensor([0.0, 0.3, 1.0], dtype=torch.float64)
    network.double()
    torch.testing.assert_close(raw(x, s), wrapped(x, s))
    sigma = 0.002 * (80 / 0.002) ** s
    expected = architectures.EDMPrecond(F(), 0.5)(x, sigma)
    torch.testing.assert_close(raw(x, s), expected)
    # At sigma_min the denoiser returns almost x (c_skip -> 1, c_out -> 0).
    torch.testing.assert_close(raw(x, s)[0], x[0], atol=5e-3, rtol=0)


@pytest.mark.parametrize("args, message", [
    ((0.0, 80.0), "sigma_min: expected a positive number, got 0.0"),
    ((1.0, 0.5), "sigma_max: must exceed sigma_min (1.0), got 0.5"),
    ((0.002, 80.0, -1.0), "sigma_data: expected a positive number, got -1.0"),
])
def test_edm_arguments_are_checked(args, message):
    with pytest.raises(ContractError) as error:
        from_edm(torch.nn.Identity(), *args)
    assert str(error.value) == message
