"""The default score: what ``nasntk search`` optimises unless told otherwise."""

from __future__ import annotations

import math

from nasntk.proxies.context import Context
from nasntk.proxies.pntk import pntk_slow
from nasntk.proxies.registry import DEFAULT, register
from nasntk.spectral import ScoreUndefined


@register(
    DEFAULT,
    direction="maximize",
    needs=("kernel", "grad"),
    family="pntk",
    reference="nasntk",
    help="log10(#live params · λmin/GM(λ) of the pNTK with BatchNorm on batch statistics, "
    "its top mode set aside)",
)
def default_score(ctx: Context) -> float:
    """log10 P + log10 G = log10(P·G): the live parameters, discounted by the pNTK's slowest mode.

    * P: the number of trainable parameters the pNTK sees (capacity): those with a non-zero
      gradient of the summed logit (``live_params``; parameters behind a multiplication by
      zero or cut off from the output never train). For most models: every parameter.
    * G = λ_N / GM(λ₂, …, λ_N) ∈ (0, 1] for the eigenvalues λ₁ ≥ … ≥ λ_N of the pNTK K with
      BatchNorm on the batch's statistics (``bn="frozen"``: the network as it trains, whatever
      the context's mode): how far the slowest direction in function space lies below the
      typical (geometric-mean) one, the dominant eigenvalue λ₁ — the direction all inputs
      share — set aside. Under gradient flow on the squared loss the residual along mode i
      decays as exp(−ηλ_i t), so 1/G is the slowest mode's training time in units of the
      typical mode's: log10 G ≤ 0 counts the decades by which the network is slower to fit its
      hardest direction. λmin is compared with the whole spectrum, not with one other eigenvalue
      as the condition number does (which makes κ noisy from one initialisation to the next).

    Two logs summed with weight 1 (the ranking does not depend on the log base): nothing is
    fitted, the definition is the same for every space, and the value is per candidate. One
    pNTK per candidate. It is defined wherever BatchNorm keeps the signal alive: unlike BN in
    eval mode at initialisation (running statistics 0 / 1), under which nets that rely on BN
    for their scale (timm's EfficientNet, LCNet, TinyNet, EfficientViT) have vanishing
    features and a numerically rank-one pNTK.

    Chosen by measurement on the dev splits of NAS-Bench-201, NAS-Bench-101 and NAS-Bench-301
    side by side (N = 64 CIFAR-10 images, one initialisation; ``experiments/suites.py``, all
    configurations and CIs in experiments/README.md). The previous default, log10 P + log10 F
    + log10 G(eval) with F the spectral flatness of the centred pNTK correlation, ranked NB201
    as well but fell below #params on NB101 and far below it on NB301.
    """
    slow = pntk_slow(ctx)
    live = ctx.live_params()
    if not live > 0:
        raise ScoreUndefined("no trainable parameter reaches the output", -math.inf)
    return math.log10(live) + slow
