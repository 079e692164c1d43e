"""Export trained flow and diffusion models to files that flowlik scores: AOTInductor packages (.pt2, the
default) or TorchScript files.

    from flowlik_export import export
    export(model, "model.pt2", {"parameterization": "velocity"}, example_x)
"""
from flowlik_export.adapters import from_diffusers, from_edm, from_torchcfm
from flowlik_export.exporter import ExportError, ExportMismatchError, export
from flowlik_export.manifest import ContractError, validate_contract

__all__ = ["export", "from_diffusers", "from_edm", "from_torchcfm", "validate_contract", "ContractError", "ExportError", "ExportMismatchError"]
__version__ = "0.1.0"
