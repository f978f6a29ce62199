"""TE-NAS (Chen, Gong & Wang, "Neural Architecture Search on ImageNet in Four GPU Hours: A
Theoretically Inspired Perspective", ICLR 2021): trainability and expressivity.

* tenas_ntk: log10 κ = log10 λmax/λmin of the NTK of the summed logits on the real batch — the
  context's pNTK (BatchNorm on the batch's statistics; the 1/√O scale of the pNTK leaves κ
  unchanged). Lower is better (a well-conditioned NTK trains fast).
* tenas_lr: the number of linear regions the network cuts its input into, counted as TE-NAS
  does: S = 1,000 inputs, each a random 3×3 crop of a batch image (seeded), and the number of
  distinct activation codes c(x_s) (the sign of every unit of every ReLU-like activation) among
  them. Higher is better. TE-NAS counts on a thin copy of the network (one channel per layer)
  that a generic torch model does not have; on the network itself the count saturates near S
  for wide cells, and a network that cannot run on 3×3 inputs is counted on the smallest of
  8×8, 16×16, 32×32 crops that it runs on.
* tenas = Σ_t rank_t / M over the two (TE-NAS sums the two ranks).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from nasntk.proxies.aggregate import register_aggregate
from nasntk.proxies.context import Context
from nasntk.proxies.pntk import pntk_cond
from nasntk.proxies.registry import register
from nasntk.spectral import ScoreUndefined

__all__ = ["linear_regions", "random_crops"]

REFERENCE = "Chen, Gong & Wang, ICLR 2021 (TE-NAS)"
CROPS = 1000
CROP = 3
#: Crop sizes tried in turn: TE-NAS's 3×3 first, larger ones for networks that downsample more.
CROP_SIZES = (3, 8, 16, 32)


def random_crops(
    x: torch.Tensor, count: int = CROPS, size: int = CROP, seed: int = 0
) -> torch.Tensor:
    """``count`` random ``size``×``size`` crops of random images of ``x`` [N, C, H, W]."""
    gen = torch.Generator().manual_seed(seed)
    n, _, h, w = x.shape
    size_h, size_w = min(size, h), min(size, w)
    idx = torch.randint(0, n, (count,), generator=gen)
    top = torch.randint(0, h - size_h + 1, (count,), generator=gen)
    left = torch.randint(0, w - size_w + 1, (count,), generator=gen)
    rows = (top.unsqueeze(1) + torch.arange(size_h)).to(x.device)
    cols = (left.unsqueeze(1) + torch.arange(size_w)).to(x.device)
    sel = x[idx.to(x.device)]  # count × C × H × W
    sel = sel.gather(2, rows[:, None, :, None].expand(-1, x.shape[1], -1, w))
    return sel.gather(3, cols[:, None, None, :].expand(-1, x.shape[1], size_h, -1))


def linear_regions(
    model: torch.nn.Module, x: torch.Tensor, bn: str = "batch", size: int = CROP
) -> int:
    """The number of distinct activation codes among :func:`random_crops` of ``x``."""
    from nasntk.proxies.classic import ActivationCodes, forward_mode

    crops = random_crops(x, size=size)
    keys: list[np.ndarray] = []

    def record(code: torch.Tensor) -> None:
        keys.append(np.packbits(code.cpu().numpy(), axis=1))

    with forward_mode(model, bn), torch.no_grad(), ActivationCodes(crops.shape[0], record):
        model(crops)
    if not keys:
        raise ScoreUndefined("no ReLU-like activation in the model", math.nan)
    codes = np.concatenate(keys, axis=1)
    return int(np.unique(codes, axis=0).shape[0])


@register(
    "tenas_ntk",
    direction="minimize",
    needs=("kernel",),
    help="TE-NAS: log10 condition number of the NTK of the summed logits (the pNTK's)",
    family="tenas",
    reference=REFERENCE,
)
def tenas_ntk(ctx: Context) -> float:
    return pntk_cond(ctx)


@register(
    "tenas_lr",
    direction="maximize",
    needs=("forward",),
    help="TE-NAS: distinct activation codes (linear regions) among 1,000 random 3×3 crops",
    family="tenas",
    reference=REFERENCE,
)
def tenas_lr(ctx: Context) -> float:
    last: Exception | None = None
    for size in CROP_SIZES:  # the smallest crop the network runs on
        try:
            return float(linear_regions(ctx.model, ctx.x, size=size))
        except RuntimeError as exc:  # too small for the network's downsampling
            last = exc
    raise ScoreUndefined(f"the network does not run on crops ({type(last).__name__})", math.nan)


register_aggregate(
    "tenas",
    ["tenas_ntk", "tenas_lr"],
    help="TE-NAS: Σ rank/M of the NTK condition number and the linear-region count",
    family="tenas",
    reference=REFERENCE,
    rule="rank",
)
