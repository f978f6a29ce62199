"""The peers' own initialisations, as parameter dictionaries for ``torch.func.functional_call``.

AZ-NAS and VKDNW score a network after re-initialising it: Conv and Linear weights
W ~ N(0, 2/fan_in) (``kaiming_normal_``, fan-in, ReLU gain), their biases 0, normalisation
layers γ = 1, β = 0. SWAP draws Conv and Linear weights from N(0, 1). The model itself is never
changed: the new values are returned for ``functional_call``; parameters of other modules keep
their values. Seeded with a private generator (the global RNG is untouched).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

__all__ = ["kaiming_params", "normal_params"]

_WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
_NORMS = (
    nn.modules.batchnorm._BatchNorm,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.modules.instancenorm._InstanceNorm,
)


def _reinit(
    model: nn.Module, seed: int, std_of: Callable[[torch.Tensor], float]
) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for prefix, m in model.named_modules():
        dot = f"{prefix}." if prefix else ""
        weight = getattr(m, "weight", None)
        bias = getattr(m, "bias", None)
        if isinstance(m, _WEIGHTED) and isinstance(weight, torch.Tensor):
            w = torch.randn(weight.shape, generator=gen, dtype=torch.float64) * std_of(weight)
            out[dot + "weight"] = w.to(weight)
            if isinstance(bias, torch.Tensor):
                out[dot + "bias"] = torch.zeros_like(bias)
        elif isinstance(m, _NORMS):
            if isinstance(weight, torch.Tensor):
                out[dot + "weight"] = torch.ones_like(weight)
            if isinstance(bias, torch.Tensor):
                out[dot + "bias"] = torch.zeros_like(bias)
    return out


def kaiming_params(model: nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """Conv/Linear W ~ N(0, 2/fan_in), fan_in = in_features·∏kernel (per group); biases 0;
    norm γ = 1, β = 0."""
    return _reinit(model, seed, lambda w: math.sqrt(2.0 / max(1, w[0].numel())))


def normal_params(model: nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """Conv/Linear W ~ N(0, 1); biases 0; norm γ = 1, β = 0 (SWAP's initialisation)."""
    return _reinit(model, seed, lambda w: 1.0)
