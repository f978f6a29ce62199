"""MeCo (Jiang et al., "Zero-shot NAS via the Minimum Eigenvalue of Pearson Correlation",
NeurIPS 2023).

Protocol, as the authors' NAS-Bench-201 code: one real image (the batch's first), the network in
training mode (BatchNorm on that image's statistics), a forward hook on every module. For each
module output that is a feature map [1, C, H, W], the rows of X = F.reshape(C, HW) are the
channels, R = corrcoef(X) (C × C, entries that are nan or inf — constant channels — set to 0) and

    meco = Σ_modules λ_min(R).

λ_min(R) is 0 when two channels are linearly dependent or C > HW, and approaches 1 when the
channels are uncorrelated. Every module is hooked, containers included, as the authors do. A
network that cannot run on one image in training mode (BatchNorm on a 1×1 map) runs on the
batch, its BatchNorm on the batch's statistics, and the first image's maps are read.
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import nn

from nasntk.proxies.context import Context
from nasntk.proxies.registry import register
from nasntk.spectral import ScoreUndefined

__all__ = ["meco", "min_correlation_eigenvalue"]


def min_correlation_eigenvalue(feature: torch.Tensor) -> float:
    """λ_min of the channel correlation of one feature map [C, H, W] (nan/inf entries → 0)."""
    x = feature.detach().reshape(feature.shape[0], -1).to(torch.float64)
    with warnings.catch_warnings():  # a 1×1 map: corrcoef of single values is nan, set to 0
        warnings.simplefilter("ignore", UserWarning)
        r = torch.corrcoef(x)
    r = torch.where(torch.isfinite(r), r, torch.zeros_like(r))
    return float(torch.linalg.eigvalsh(r)[0])


def meco(model: nn.Module, x: torch.Tensor, bn: str = "batch") -> float:
    """Σ over every module's feature-map output of λ_min of the first image's channel correlation.

    One image, as the authors do; where one image cannot pass (BatchNorm in training mode on a
    1×1 map has a single value per channel — timm's networks at 32×32), the whole batch runs,
    BatchNorm normalising with its statistics, and the first image's maps are read.
    """
    from nasntk.proxies.classic import forward_mode

    values: list[float] = []

    def hook(_m: nn.Module, _i: object, out: object) -> None:
        if isinstance(out, torch.Tensor) and out.dim() == 4:
            v = min_correlation_eigenvalue(out[0])
            if math.isfinite(v):
                values.append(v)

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        for inputs in (x[:1], x):
            values.clear()
            try:
                with forward_mode(model, bn), torch.no_grad():
                    model(inputs)
                break
            except (RuntimeError, ValueError) as exc:
                if inputs.shape[0] == x.shape[0]:
                    why = str(exc).split("\n")[0]
                    raise ScoreUndefined(f"forward failed ({why})", math.nan) from exc
    finally:
        for h in handles:
            h.remove()
    if not values:
        raise ScoreUndefined("no feature map [1, C, H, W] in the model", math.nan)
    return float(sum(values))


@register(
    "meco",
    direction="maximize",
    needs=("forward",),
    help="MeCo: Σ over modules of λmin of the channel correlation of one image's feature map",
    family="meco",
    reference="Jiang et al., NeurIPS 2023 (MeCo)",
)
def _meco(ctx: Context) -> float:
    return meco(ctx.model, ctx.x, "batch")
