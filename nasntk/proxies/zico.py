"""ZiCo (Li et al., "ZiCo: Zero-shot NAS via inverse Coefficient of Variation on Gradients",
ICLR 2023).

Protocol, as the authors' code: the batch's real images and labels split into two batches b = 1,
2 (the code's default of two), the cross-entropy gradient g_b = ∂L_b/∂W of every Conv / Linear
weight W in each, BatchNorm on the batch's statistics. Per layer l, over its weights j:

    μ_j = mean_b |g_bj|,  σ_j = std_b g_bj (population std: |g_1j − g_2j| / 2 for two batches),
    s_l = Σ_{j: σ_j ≠ 0} μ_j / σ_j,     zico = Σ_{l: s_l > 0} ln s_l.

High mean gradient relative to its spread across batches (a high inverse coefficient of
variation) marks a network that converges fast and generalises.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from nasntk.proxies.context import Context
from nasntk.proxies.registry import register
from nasntk.spectral import ScoreUndefined

__all__ = ["zico"]


def zico(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, bn: str = "batch") -> float:
    """Σ_l ln Σ_j mean|g|/std(g) over the two halves of the batch (module docstring)."""
    from nasntk.proxies.classic import _weights, forward_mode, logits

    if x.shape[0] < 4:
        raise ScoreUndefined("zico needs at least 4 inputs (two batches of two)", math.nan)
    weights = _weights(model)
    half = x.shape[0] // 2
    grads = []
    with forward_mode(model, bn), torch.enable_grad():
        for part in (slice(0, half), slice(half, 2 * half)):
            out = logits(model(x[part]))
            if out.shape[1] <= int(y.max()):
                raise ScoreUndefined(f"model has {out.shape[1]} outputs", math.nan)
            loss = F.cross_entropy(out, y[part])
            grads.append(torch.autograd.grad(loss, weights, allow_unused=True))
    total, layers = 0.0, 0
    for g1, g2 in zip(*grads, strict=True):
        if g1 is None or g2 is None:
            continue
        g = torch.stack([g1.reshape(-1), g2.reshape(-1)]).to(torch.float64)
        std = g.std(dim=0, unbiased=False)
        mean = g.abs().mean(dim=0)
        nz = std != 0
        s = float((mean[nz] / std[nz]).sum())
        if s > 0:
            total += math.log(s)
            layers += 1
    if layers == 0:
        raise ScoreUndefined("no layer's gradient varies between the two batches")
    return total


@register(
    "zico",
    direction="maximize",
    needs=("grad", "labels"),
    help="ZiCo: Σ_layers ln Σ mean|g|/std(g) of cross-entropy gradients over two batches",
    family="zico",
    reference="Li et al., ICLR 2023 (ZiCo)",
)
def _zico(ctx: Context) -> float:
    return zico(ctx.model, ctx.x, ctx.y, "batch")
