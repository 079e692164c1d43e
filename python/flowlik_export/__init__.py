"""Export trained flow and diffusion models to TorchScript files that flowlik scores.

    from flowlik_export import export
    export(model, "model.pt", {"parameterization": "velocity"}, example_x)
"""
from flowlik_export.exporter import ExportMismatchError, export
from flowlik_export.manifest import ContractError, validate_contract

__all__ = ["export", "validate_contract", "ContractError", "ExportMismatchError"]
__version__ = "0.1.0"
