"""AZ-NAS (Lee & Ham, "AZ-NAS: Assembling Zero-Cost Proxies for Network Architecture Search",
CVPR 2024): four terms of the network's blocks and their rank aggregate.

Protocol, as the authors' code scores NAS-Bench-201: the network re-initialised (Conv / Linear
W ~ N(0, 2/fan_in), biases 0, norm γ = 1, β = 0: :func:`nasntk.proxies.reinit.kaiming_params`),
BatchNorm on the batch's statistics, a batch of Gaussian noise x ~ N(0, I) of the data's shape
(seeded; N = the batch size, 64 in the benchmark). Features f_0 … f_L are the outputs of the
network's blocks (:mod:`nasntk.proxies.blocks`; NAS-Bench-201: the stem, then the 17 cells and
reduction blocks), each read as a matrix X_l of BHW samples × C channels (tokens × width for a
[B, T, C] output).

* expressivity  E = Σ_l H(p_l), p_l the eigenvalues of the covariance X̃ᵀX̃/(BHW) of the centred
  X_l, normalised to sum 1, H(p) = −Σ p log(p + 1e-8): how isotropic each block's features are.
* progressivity P = min_l (H(p_l) − H(p_{l−1})): the smallest gain of expressivity from a block to
  the next.
* trainability  T = mean_l t_l, t_l = −σ_l − 1/(σ_l + 1e-6) + 2 ≤ 0, σ_l the largest singular
  value of M_l = G_inᵀ G_out / (BHW), where G_out is a Rademacher (±1) cotangent of f_l and
  G_in = G_out·∂f_l/∂f_{l−1} its vector-Jacobian product through block l (G_in pixel-unshuffled
  when block l halves the resolution). t_l = 0 iff σ_l = 1: the block neither amplifies nor
  damps gradients. A block that is exactly the identity (G_in = G_out) gives −inf, as in the
  authors' code.
* complexity    FLOPs (the registered ``flops``).

``az_nas`` = Σ_t log(rank_t / M) over the four terms (:mod:`nasntk.proxies.aggregate`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from nasntk.proxies.aggregate import register_aggregate
from nasntk.proxies.blocks import block_outputs, find_blocks
from nasntk.proxies.context import Context
from nasntk.proxies.registry import register
from nasntk.proxies.reinit import kaiming_params
from nasntk.spectral import ScoreUndefined

__all__ = ["expressivity_terms", "gaussian_batch", "progressivity", "trainability_terms"]

FAMILY = "az_nas"
REFERENCE = "Lee & Ham, CVPR 2024 (AZ-NAS)"


def gaussian_batch(x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Seeded N(0, 1) noise of ``x``'s shape, dtype and device."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(x.shape, generator=gen, dtype=torch.float64).to(x)


def _as_samples(f: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] → [BHW, C]; [B, T, C] → [BT, C]."""
    if f.dim() == 4:
        return f.permute(0, 2, 3, 1).reshape(-1, f.shape[1])
    return f.reshape(-1, f.shape[-1])


def feature_entropy(f: torch.Tensor) -> float:
    """H(p) of the normalised eigenvalues p of the channel covariance of one feature map."""
    x = _as_samples(f.detach()).to(torch.float64)
    x = x - x.mean(0, keepdim=True)
    s = torch.linalg.eigvalsh(x.T @ x / x.shape[0]).clamp_min(0.0)
    total = s.sum()
    if not total > 0:
        return math.nan
    p = s / total
    return float(-(p * torch.log(p + 1e-8)).sum())


def expressivity_terms(features: list[torch.Tensor]) -> list[float]:
    """H(p_l) of every block's output."""
    return [feature_entropy(f) for f in features]


def progressivity(entropies: list[float]) -> float:
    """min_l (H_l − H_{l−1}); needs at least two blocks."""
    if len(entropies) < 2:
        raise ScoreUndefined("progressivity needs at least two blocks", math.nan)
    return float(min(b - a for a, b in zip(entropies[:-1], entropies[1:], strict=True)))


def _block_sigma(f_in: torch.Tensor, f_out: torch.Tensor, gen: torch.Generator) -> float | None:
    """σ_max of G_inᵀ G_out / (BHW) for block f_in → f_out; None when f_out does not depend on
    f_in or the resolutions do not match; inf for an identity block."""
    g_out = (torch.randint(0, 2, f_out.shape, generator=gen) * 2 - 1).to(f_out)
    (g_in,) = torch.autograd.grad(f_out, f_in, g_out, retain_graph=True, allow_unused=True)
    if g_in is None:
        return None
    if g_in.shape == g_out.shape and torch.equal(g_in, g_out):
        return math.inf
    if f_out.dim() == 4 and g_in.dim() == 4 and g_in.shape[-1] != g_out.shape[-1]:
        stride = g_in.shape[-1] // max(1, g_out.shape[-1])
        if stride < 2 or g_in.shape[-1] != stride * g_out.shape[-1]:
            return None
        g_in = F.pixel_unshuffle(g_in, stride)
    a, b = _as_samples(g_in).to(torch.float64), _as_samples(g_out).to(torch.float64)
    if a.shape[0] != b.shape[0]:
        return None
    m = a.T @ b / a.shape[0]
    return float(torch.linalg.matrix_norm(m, ord=2))


def trainability_terms(features: list[torch.Tensor], seed: int = 0) -> list[float]:
    """t_l = −σ_l − 1/(σ_l + 1e-6) + 2 of every consecutive pair of blocks, last to first."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i in range(len(features) - 1, 0, -1):
        sigma = _block_sigma(features[i - 1], features[i], gen)
        if sigma is None:
            continue
        out.append(-math.inf if math.isinf(sigma) else -sigma - 1.0 / (sigma + 1e-6) + 2.0)
    return out


def _features(ctx: Context) -> list[torch.Tensor]:
    """Block outputs on Gaussian noise, the network re-initialised, BN on batch statistics."""
    from nasntk.proxies.classic import forward_mode

    def make() -> list[torch.Tensor]:
        model = ctx.model
        names = ctx.blocks if ctx.blocks is not None else find_blocks(model, ctx.x)
        if len(names) < 2:
            raise ScoreUndefined("fewer than two blocks found in the model", math.nan)
        params = kaiming_params(model)
        x = gaussian_batch(ctx.x).requires_grad_(True)
        with forward_mode(model, "batch"), torch.enable_grad():
            feats = block_outputs(
                model, names, lambda: torch.func.functional_call(model, params, (x,), strict=False)
            )
        if len(feats) < 2:
            raise ScoreUndefined("fewer than two block outputs with the batch first", math.nan)
        return feats

    return ctx.cached("az_features", make)


def _entropies(ctx: Context) -> list[float]:
    return ctx.cached("az_entropies", lambda: expressivity_terms(_features(ctx)))


@register(
    "az_expressivity",
    direction="maximize",
    needs=("grad",),
    help="AZ-NAS: Σ over blocks of the entropy of the feature covariance's normalised spectrum",
    family=FAMILY,
    reference=REFERENCE,
)
def az_expressivity(ctx: Context) -> float:
    value = float(np.sum(_entropies(ctx)))
    if math.isnan(value):
        raise ScoreUndefined("a block's features are constant (covariance zero)")
    return value


@register(
    "az_progressivity",
    direction="maximize",
    needs=("grad",),
    help="AZ-NAS: min over consecutive blocks of the gain in feature entropy",
    family=FAMILY,
    reference=REFERENCE,
)
def az_progressivity(ctx: Context) -> float:
    value = progressivity(_entropies(ctx))
    if math.isnan(value):
        raise ScoreUndefined("a block's features are constant (covariance zero)")
    return value


@register(
    "az_trainability",
    direction="maximize",
    needs=("grad",),
    help="AZ-NAS: mean over blocks of −σ − 1/σ + 2, σ the spectral norm of the block's Jacobian",
    family=FAMILY,
    reference=REFERENCE,
)
def az_trainability(ctx: Context) -> float:
    terms = ctx.cached("az_trainability_terms", lambda: trainability_terms(_features(ctx)))
    if not terms:
        raise ScoreUndefined("no block depends on the one before it", math.nan)
    return float(np.mean(terms))


register_aggregate(
    "az_nas",
    ["az_expressivity", "az_progressivity", "az_trainability", "flops"],
    help="AZ-NAS: Σ log(rank/M) of expressivity, progressivity, trainability and FLOPs",
    family=FAMILY,
    reference=REFERENCE,
)
