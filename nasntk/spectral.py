"""Pure matrix maths on a kernel matrix K (N×N, symmetric PSD), in float64 numpy.

Every function takes arrays and returns numbers or arrays; none knows about networks. A quantity
that is undefined for the given kernel raises :class:`ScoreUndefined` with a one-line reason (the
score registry turns it into +inf / nan plus that reason).
"""

from __future__ import annotations

import math
from typing import Optional, Union

import numpy as np
import torch

__all__ = [
    "ScoreUndefined",
    "as_matrix",
    "centered_eigenvalues",
    "condition_number",
    "correlation_centered_eigenvalues",
    "effective_rank",
    "eigenvalues",
    "kernel_regression",
    "kernel_regression_scores",
    "log10_flatness",
    "log10_min_over_gm",
    "one_hot_centered",
    "stratified_split",
]

ArrayLike = Union[np.ndarray, torch.Tensor]


class ScoreUndefined(ValueError):
    """A score has no finite value for this kernel/model.

    ``value`` is what to report instead; ``None`` (the default) means the worst value of the
    score's direction (+inf for a minimised score, −inf for a maximised one).
    """

    def __init__(self, reason: str, value: Optional[float] = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.value = value


def as_matrix(k: ArrayLike) -> np.ndarray:
    """K as a float64 numpy array; raises :class:`ScoreUndefined` on non-finite entries."""
    if isinstance(k, torch.Tensor):
        k = k.detach().to("cpu", torch.float64).numpy()
    k = np.asarray(k, dtype=np.float64)
    if k.ndim != 2:
        raise ValueError(f"expected a matrix, got shape {k.shape}")
    if not np.all(np.isfinite(k)):
        raise ScoreUndefined("kernel has non-finite entries (NaN or inf)")
    return k


def eigenvalues(k: ArrayLike) -> np.ndarray:
    """Ascending eigenvalues of the symmetric part (K + Kᵀ)/2, by LAPACK ``eigvalsh`` in float64."""
    k = as_matrix(k)
    if k.shape[0] != k.shape[1]:
        raise ValueError(f"expected a square matrix, got shape {k.shape}")
    return np.linalg.eigvalsh(0.5 * (k + k.T))


def centered_eigenvalues(k: ArrayLike) -> np.ndarray:
    """Ascending eigenvalues of HKH (H = I − 11ᵀ/N) without its structural zero.

    HKH = Q (QᵀKQ) Qᵀ with Q an orthonormal basis (N×(N−1)) of the complement of 1, so the
    eigenvalues of the (N−1)×(N−1) matrix QᵀKQ are exactly those of HKH minus the zero of the
    eigenvector 1 (no guessing which near-zero eigenvalue to drop).
    """
    k = as_matrix(k)
    n = k.shape[0]
    if n < 2:
        raise ValueError("centring needs at least 2 samples")
    h = np.eye(n) - 1.0 / n
    q, _ = np.linalg.qr(h[:, : n - 1])
    return eigenvalues(q.T @ (0.5 * (k + k.T)) @ q)


def condition_number(eigs: np.ndarray) -> float:
    """log10(λmax / λmin) of a PSD spectrum.

    The kernel is treated as singular — :class:`ScoreUndefined`, reported as +inf — when
    λmin ≤ N · ε · λmax (ε = float64 machine epsilon), the rank tolerance numpy's ``matrix_rank``
    uses; an all-zero kernel is singular too.
    """
    eigs = np.asarray(eigs, dtype=np.float64)
    lmin, lmax = float(eigs.min()), float(eigs.max())
    if lmax <= 0.0:
        raise ScoreUndefined("kernel is zero or negative definite (λmax ≤ 0)")
    tol = len(eigs) * np.finfo(np.float64).eps * lmax
    if lmin <= tol:
        raise ScoreUndefined(f"kernel is singular (λmin = {lmin:.3g} ≤ N·eps·λmax = {tol:.3g})")
    return math.log10(lmax / lmin)


def _check_nonsingular(lam: np.ndarray, what: str) -> None:
    """ScoreUndefined (−inf) unless λmax > 0 and λmin > N·eps·λmax (numpy's rank tolerance)."""
    lmax = float(lam.max())
    if not lmax > 0.0:
        raise ScoreUndefined(f"{what} is zero", -math.inf)
    if float(lam.min()) <= len(lam) * np.finfo(np.float64).eps * lmax:
        raise ScoreUndefined(f"{what} is singular (λmin ≤ N·eps·λmax)", -math.inf)


def correlation_centered_eigenvalues(k: ArrayLike) -> np.ndarray:
    """Eigenvalues of H C H without its structural zero, C = D^-½ K D^-½ (D = diag K).

    C is the kernel of the unit-normalised features (every input's gradient has norm 1), H = I −
    11ᵀ/N removes the direction all inputs share. A sample with K_ii = 0 (no gradient) makes C
    undefined (ScoreUndefined, −inf).
    """
    k = as_matrix(k)
    d = np.diag(k)
    if not np.all(d > 0.0):
        raise ScoreUndefined(
            "a sample has zero pNTK self-similarity (no gradient): correlation undefined",
            -math.inf,
        )
    r = 1.0 / np.sqrt(d)
    return centered_eigenvalues(k * r[:, None] * r[None, :])


def log10_flatness(eigs: np.ndarray, what: str = "kernel") -> float:
    """log10 of the spectral flatness GM/AM of a PSD spectrum: mean_i log10(λ_i / mean λ) ≤ 0.

    0 for a flat (isotropic) spectrum; → −∞ as the spectrum degenerates. A zero or numerically
    singular spectrum (λmin ≤ N·eps·λmax) is undefined (ScoreUndefined, −inf).
    """
    lam = np.asarray(eigs, dtype=np.float64)
    _check_nonsingular(lam, what)
    return float(np.mean(np.log10(lam / lam.mean())))


def log10_min_over_gm(eigs: np.ndarray, what: str = "kernel") -> float:
    """log10(λ_N / GM(λ₂ … λ_N)) = log10 λ_N − mean_{i≥2} log10 λ_i ≤ 0, with λ₁ ≥ … ≥ λ_N.

    How many decades the slowest mode lies below the typical (geometric-mean) one, the dominant
    eigenvalue λ₁ (the direction all inputs share) set aside. Needs N ≥ 3; a zero or numerically
    singular spectrum is undefined (ScoreUndefined, −inf).
    """
    lam = np.sort(np.asarray(eigs, dtype=np.float64))
    if len(lam) < 3:
        raise ScoreUndefined(f"{what}: needs at least 3 samples", -math.inf)
    _check_nonsingular(lam, what)
    return float(np.log10(lam[0]) - np.mean(np.log10(lam[:-1])))


def effective_rank(eigs: np.ndarray) -> float:
    """Effective rank exp(H(p)) of Roy & Vetterli (2007): p_i = λ_i⁺ / Σ λ⁺, H = −Σ p_i log p_i.

    Ranges from 1 (one dominant direction) to N (flat spectrum); negative round-off eigenvalues
    are clipped to 0.
    """
    lam = np.clip(np.asarray(eigs, dtype=np.float64), 0.0, None)
    total = lam.sum()
    if not total > 0.0:
        raise ScoreUndefined("kernel is zero: effective rank undefined")
    p = lam[lam > 0] / total
    return float(math.exp(-np.sum(p * np.log(p))))


def stratified_split(labels: ArrayLike, train_frac: float) -> tuple[np.ndarray, np.ndarray]:
    """Split sample indices into train and held-out parts, class by class, in the given order.

    A class with m samples puts ⌊train_frac·m + ½⌋ of its first samples in the train part,
    clipped to [1, m−1] when m ≥ 2 (so it appears on both sides); a single sample goes to train.
    """
    if not 0.0 < train_frac < 1.0:
        raise ValueError(f"train_frac must be in (0, 1), got {train_frac}")
    y = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels).reshape(-1)
    train, test = [], []
    for c in np.unique(y):
        ix = np.flatnonzero(y == c)
        m = len(ix)
        t = m if m == 1 else min(max(math.floor(train_frac * m + 0.5), 1), m - 1)
        train.append(ix[:t])
        test.append(ix[t:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def one_hot_centered(labels: ArrayLike, num_classes: int) -> np.ndarray:
    """Targets Y[i, c] = 1[y_i = c] − 1/C (one-hot minus its mean over the C classes)."""
    y = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels).reshape(-1)
    out = np.full((len(y), num_classes), -1.0 / num_classes)
    out[np.arange(len(y)), y] += 1.0
    return out


def kernel_regression(
    k_train: ArrayLike, k_test_train: ArrayLike, y_train: np.ndarray, *, ridge: float
) -> np.ndarray:
    """Kernel ridge regression predictions K_te,tr (K_tr,tr + λ·mean(diag K_tr,tr)·I)⁻¹ Y.

    The ridge is relative to the kernel's scale, so the predictions do not change when K is
    multiplied by a constant. This is scikit-learn's ``KernelRidge(kernel="precomputed",
    alpha=λ·mean(diag K_tr,tr))``.
    """
    ktr = as_matrix(k_train)
    kte = as_matrix(k_test_train)
    scale = float(np.mean(np.diag(ktr)))
    if not scale > 0.0:
        raise ScoreUndefined("kernel is zero on the train part: regression undefined")
    a = 0.5 * (ktr + ktr.T) + ridge * scale * np.eye(ktr.shape[0])
    try:
        alpha = np.linalg.solve(a, np.asarray(y_train, dtype=np.float64))
    except np.linalg.LinAlgError:
        raise ScoreUndefined("kernel regression system is singular (use a ridge > 0)") from None
    pred = kte @ alpha
    if not np.all(np.isfinite(pred)):
        raise ScoreUndefined("kernel regression predictions are not finite")
    return pred


def kernel_regression_scores(
    k: ArrayLike,
    labels: ArrayLike,
    num_classes: int,
    *,
    train_frac: float = 0.5,
    ridge: float = 1e-3,
) -> dict[str, float]:
    """Held-out accuracy and MSE of kernel regression on one N×N kernel of N labelled samples.

    The samples are split by :func:`stratified_split`; targets are :func:`one_hot_centered`;
    predictions come from :func:`kernel_regression` on the blocks K_tr,tr and K_te,tr.
    ``accuracy`` = mean 1[argmax_c pred_i = y_i]; ``mse`` = mean over held-out samples and
    classes of (pred_ic − Y_ic)².
    """
    k = as_matrix(k)
    y = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels).reshape(-1)
    tr, te = stratified_split(y, train_frac)
    if len(te) == 0:
        raise ScoreUndefined("no held-out samples: every class has a single image")
    targets = one_hot_centered(y, num_classes)
    pred = kernel_regression(k[np.ix_(tr, tr)], k[np.ix_(te, tr)], targets[tr], ridge=ridge)
    return {
        "accuracy": float(np.mean(pred.argmax(axis=1) == y[te])),
        "mse": float(np.mean((pred - targets[te]) ** 2)),
    }
