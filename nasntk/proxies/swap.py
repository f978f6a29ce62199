"""SWAP (Peng et al., "SWAP-NAS: Sample-Wise Activation Patterns for Ultra-fast NAS", ICLR 2024).

Protocol, as the authors' code: the first B = 16 real images of the batch, the network
re-initialised with Conv / Linear W ~ N(0, 1) (biases 0, norm γ = 1, β = 0:
:func:`nasntk.proxies.reinit.normal_params`), BatchNorm on the batch's statistics. Every unit u of
every ReLU-like activation of a feature map ([B, C, H, W] input; no spatial averaging) has a
*sample-wise activation pattern* a_u = ([pre-activation of u on x_b > 0])_{b=1..B} ∈ {0,1}^B, and

    swap = |{a_u : u}|      (the number of distinct patterns, ≤ min(#units, 2^B))

— the rows of the transposed NASWOT code matrix, counted as a set: how many different ways the
network's units split the samples. The regularised form multiplies by a Gaussian prior on the
size, Θ = parameters in millions:

    swap_reg = swap · exp(−(Θ − μ)² / σ),   μ = σ = 1.5 (M)

(the released code leaves μ and σ to the user; 1.5 M is the largest NAS-Bench-201 network, so on
the benchmark spaces the prior rewards size up to there).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from nasntk.proxies.context import Context
from nasntk.proxies.registry import register
from nasntk.proxies.reinit import normal_params
from nasntk.spectral import ScoreUndefined

__all__ = ["SWAP_MU_M", "SWAP_SIGMA_M", "distinct_patterns", "swap"]

SAMPLES = 16
SWAP_MU_M = 1.5
SWAP_SIGMA_M = 1.5
REFERENCE = "Peng et al., ICLR 2024 (SWAP)"


def distinct_patterns(codes: list[torch.Tensor]) -> int:
    """The number of distinct columns of the [B, units] bool code matrices (B ≤ 63)."""
    b = codes[0].shape[0]
    weights = (2 ** torch.arange(b, dtype=torch.int64)).unsqueeze(1)
    keys = [(c.to(torch.int64).cpu() * weights).sum(0) for c in codes]
    return int(np.unique(torch.cat(keys).numpy()).size)


def swap(model: torch.nn.Module, x: torch.Tensor, bn: str = "batch", samples: int = SAMPLES) -> int:
    """The number of distinct sample-wise activation patterns on the first ``samples`` inputs."""
    from nasntk.proxies.classic import ActivationCodes, forward_mode

    xs = x[: min(samples, x.shape[0], 63)]
    codes: list[torch.Tensor] = []
    params = normal_params(model)
    with forward_mode(model, bn), torch.no_grad(), ActivationCodes(xs.shape[0], codes.append, (4,)):
        torch.func.functional_call(model, params, (xs,), strict=False)
    if not codes:
        raise ScoreUndefined("no ReLU-like activation of a feature map in the model", math.nan)
    return distinct_patterns(codes)


@register(
    "swap",
    direction="maximize",
    needs=("forward",),
    help="SWAP: number of distinct sample-wise activation patterns of the units (16 images)",
    family="swap",
    reference=REFERENCE,
)
def _swap(ctx: Context) -> float:
    return float(ctx.cached("swap", lambda: swap(ctx.model, ctx.x)))


@register(
    "swap_reg",
    direction="maximize",
    needs=("forward",),
    help="SWAP · exp(−(Θ − 1.5)²/1.5), Θ the parameters in millions (the size prior)",
    family="swap",
    reference=REFERENCE,
)
def _swap_reg(ctx: Context) -> float:
    from nasntk.proxies.classic import params

    theta = params(ctx.model) / 1e6
    return _swap(ctx) * math.exp(-((theta - SWAP_MU_M) ** 2) / SWAP_SIGMA_M)
