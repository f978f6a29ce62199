"""pNTK scores: functions of K = ``nasntk.kernels.pntk(model, x, bn=..., dtype=float64)``.

    pntk_cond           log10 λmax(K)/λmin(K)                                    (minimize)
    pntk_cond_centered  the same for HKH, H = I − 11ᵀ/N, without its zero eigenvalue (minimize)
    pntk_krr            held-out accuracy of kernel ridge regression on K        (maximize)
    pntk_krr_mse        held-out mean squared error of that regression           (minimize)
    pntk_flatness       log10 GM/AM of the eigenvalues of the centred correlation  (maximize)
    pntk_trace          tr K = Σ λ_i                                              (maximize)
    pntk_eff_rank       exp(entropy of λ/Σλ), Roy & Vetterli 2007                (maximize)
    pntk_slow           log10 λmin/GM(λ₂…λ_N) of K with BatchNorm on the batch's statistics
                        (the default's kernel term; ≤ 0, larger = faster slowest mode) (maximize)

(definitions in :mod:`nasntk.spectral`). The kernel is the context's, computed once.
"""

from __future__ import annotations

import numpy as np

from nasntk import spectral
from nasntk.proxies.context import Context
from nasntk.proxies.registry import register

PNTK = "pntk"
REF = "Mohamadi, Bae & Sutherland, ICML 2023 (pNTK)"


def _centred_correlation_eigenvalues(ctx: Context) -> np.ndarray:
    """Eigenvalues of H C H of the context's kernel (cached; see spectral)."""
    return ctx.cached("corr_ceigs", lambda: spectral.correlation_centered_eigenvalues(ctx.kernel()))


@register(
    "pntk_cond",
    direction="minimize",
    needs=("kernel",),
    help="log10 condition number λmax/λmin of the pNTK (float64 eigvalsh)",
    family=PNTK,
    reference=REF,
)
def pntk_cond(ctx: Context) -> float:
    return spectral.condition_number(ctx.eigenvalues())


@register(
    "pntk_cond_centered",
    direction="minimize",
    needs=("kernel",),
    help="log10 condition number of the centred pNTK HKH (H = I − 11ᵀ/N), zero eigenvalue dropped",
    family=PNTK,
    reference=REF,
)
def pntk_cond_centered(ctx: Context) -> float:
    return spectral.condition_number(ctx.centered_eigenvalues())


@register(
    "pntk_krr",
    direction="maximize",
    needs=("kernel", "labels"),
    help="held-out accuracy of pNTK kernel ridge regression (options train_frac, ridge)",
    family=PNTK,
    reference=REF,
)
def pntk_krr(ctx: Context) -> float:
    return ctx.regression()["accuracy"]


@register(
    "pntk_krr_mse",
    direction="minimize",
    needs=("kernel", "labels"),
    help="held-out MSE of pNTK kernel ridge regression on centred one-hot targets",
    family=PNTK,
    reference=REF,
)
def pntk_krr_mse(ctx: Context) -> float:
    return ctx.regression()["mse"]


@register(
    "pntk_flatness",
    direction="maximize",
    needs=("kernel",),
    help="log10 spectral flatness GM/AM of the centred pNTK correlation (1 = isotropic)",
    family=PNTK,
    reference=REF,
)
def pntk_flatness(ctx: Context) -> float:
    return spectral.log10_flatness(
        _centred_correlation_eigenvalues(ctx), "centred pNTK correlation"
    )


@register(
    "pntk_trace",
    direction="maximize",
    needs=("kernel",),
    help="trace of the pNTK, Σ λ_i",
    family=PNTK,
    reference=REF,
)
def pntk_trace(ctx: Context) -> float:
    return float(np.trace(ctx.kernel()))


@register(
    "pntk_eff_rank",
    direction="maximize",
    needs=("kernel",),
    help="effective rank exp(H(λ/Σλ)) of the pNTK spectrum (Roy & Vetterli 2007), 1..N",
    family=PNTK,
    reference=REF,
)
def pntk_eff_rank(ctx: Context) -> float:
    return spectral.effective_rank(ctx.eigenvalues())


@register(
    "pntk_slow",
    direction="maximize",
    needs=("kernel",),
    help="log10 λmin/GM(λ₂…λ_N) of the pNTK, BatchNorm on batch statistics: the slowest mode",
    family=PNTK,
    reference=REF,
)
def pntk_slow(ctx: Context) -> float:
    """log10 G, G = λ_N / GM(λ₂, …, λ_N) ∈ (0, 1] of the pNTK with BatchNorm frozen at the
    batch's statistics (:func:`nasntk.spectral.log10_min_over_gm`)."""
    return spectral.log10_min_over_gm(ctx.eigenvalues("frozen"), "pNTK")
