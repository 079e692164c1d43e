"""The exporter, as ``flowlik.export`` (the same package as ``flowlik_export``): ``export(model, "model.pt2",
contract, example_x)`` and the adapters for torchcfm, diffusers and EDM-style models."""
from flowlik_export import (ContractError, ExportError, ExportMismatchError, export, from_diffusers, from_edm,
                            from_torchcfm, validate_contract)

__all__ = ["export", "from_diffusers", "from_edm", "from_torchcfm", "validate_contract", "ContractError",
           "ExportError", "ExportMismatchError"]
