"""Rank statistics of a score against accuracies: orientation, Kendall τ / Spearman ρ, top-k
hit rates, the quality of the top (:func:`top_quality`), and bootstrap confidence intervals
(single and paired).

A score is *oriented* so that larger means "predicted better": scores whose direction is
``"minimize"`` (e.g. the log condition number) are negated; a non-finite oriented score (a failed
kernel) ranks last, as it would in a search. The top-k hit rate is |top_k(s) ∩ top_k(a)| / k.
Confidence intervals are percentile bootstraps over cells (``scipy.stats.bootstrap``).

The top of a ranking is what a search hands a user, so it is measured on its own: with T_k(s) the
k cells a score ranks first (ties broken by position) and a the true accuracies,

- precision@k = |T_k(s) ∩ T_k(a)| / k (the top-k hit rate);
- regret@k = max(a) − max_{i ∈ T_k(s)} a_i: what the best of the k cells a user would take
  misses of the best cell on the table (0 when the best cell is among them);
- rank-1 accuracy a_{T_1(s)}, and its percentile: the share of cells strictly better than it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Optional

import numpy as np
from scipy import stats

from nasntk.errors import NasntkError

#: k of the top-k hit rate.
TOP_K = 10
#: The k of :func:`top_quality`.
TOP_KS = (1, 5, 10)


# ------------------------------------------------------------------------------------------------
# Rank statistics
# ------------------------------------------------------------------------------------------------
def orient(values: Sequence[float], direction: str = "maximize") -> np.ndarray:
    """Map a score to "larger is better": negate ``minimize`` scores; non-finite → −inf (last)."""
    if direction not in ("maximize", "minimize"):
        raise NasntkError(f"direction must be 'maximize' or 'minimize', got {direction!r}")
    v = np.asarray(values, dtype=np.float64)
    v = -v if direction == "minimize" else v.copy()
    v[~np.isfinite(v)] = -np.inf
    return v


def _finite_ranks(v: np.ndarray) -> np.ndarray:
    # -inf ties at the bottom; scipy handles ties in ranks, and ±inf is ordered correctly.
    return stats.rankdata(v)


def rank_correlations(score: Sequence[float], acc: Sequence[float]) -> dict[str, float]:
    """Kendall τ-b and Spearman ρ between an oriented score and accuracies (NaN if constant)."""
    s = _finite_ranks(np.asarray(score, dtype=np.float64))
    a = np.asarray(acc, dtype=np.float64)
    if s.shape != a.shape:
        raise NasntkError(f"score has {s.size} values but accuracy has {a.size}")
    if np.ptp(s) == 0 or np.ptp(a) == 0:
        return {"kendall": math.nan, "spearman": math.nan}
    return {
        "kendall": float(stats.kendalltau(s, a).statistic),
        "spearman": float(stats.spearmanr(s, a).statistic),
    }


def top_k_hit_rate(score: Sequence[float], acc: Sequence[float], k: int = TOP_K) -> float:
    """|top_k(score) ∩ top_k(acc)| / k for an oriented score (ties broken by position)."""
    s = np.asarray(score, dtype=np.float64)
    a = np.asarray(acc, dtype=np.float64)
    k = min(k, s.size)
    if k <= 0:
        return math.nan
    top_s = set(np.argsort(-s, kind="stable")[:k].tolist())
    top_a = set(np.argsort(-a, kind="stable")[:k].tolist())
    return len(top_s & top_a) / k


def _top_k(v: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-v, kind="stable")[:k]


def top_quality(
    score: Sequence[float], acc: Sequence[float], ks: Sequence[int] = TOP_KS
) -> dict[str, float]:
    """How good the cells an oriented score ranks first are (module docstring for the maths).

    Returns ``{"precision@k", "regret@k" for each k, "rank1_acc", "rank1_share_better"}``;
    ``rank1_share_better`` is the fraction of cells strictly more accurate than rank 1 (0 = the
    score's rank 1 is the best cell). Cells whose accuracy is not finite are left out.
    """
    s = np.asarray(score, dtype=np.float64)
    a = np.asarray(acc, dtype=np.float64)
    if s.shape != a.shape:
        raise NasntkError(f"score has {s.size} values but accuracy has {a.size}")
    keep = np.isfinite(a)
    s, a = s[keep], a[keep]
    out: dict[str, float] = {}
    if a.size == 0:
        return {"rank1_acc": math.nan, "rank1_share_better": math.nan}
    best = float(a.max())
    for k in ks:
        mine = _top_k(s, min(k, a.size))
        out[f"precision@{k}"] = top_k_hit_rate(s, a, k)
        out[f"regret@{k}"] = best - float(a[mine].max())
    first = float(a[_top_k(s, 1)[0]])
    out["rank1_acc"] = first
    out["rank1_share_better"] = float(np.mean(a > first))
    return out


def correlations(
    scores: Mapping[str, Sequence[float]],
    truth: Mapping[str, Sequence[float]],
    directions: Optional[Mapping[str, str]] = None,
) -> dict[str, dict[str, dict[str, float]]]:
    """``{score: {column: {"kendall": τ, "spearman": ρ}}}`` for every score × accuracy column."""
    directions = directions or {}
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name, values in scores.items():
        oriented = orient(values, directions.get(name, "maximize"))
        out[name] = {col: rank_correlations(oriented, acc) for col, acc in truth.items()}
    return out


def _check_statistic(statistic: str) -> None:
    if statistic not in ("kendall", "spearman"):
        raise NasntkError(f"statistic must be 'kendall' or 'spearman', got {statistic!r}")


def _percentile_bootstrap(
    samples: tuple[np.ndarray, ...],
    statistic: Callable[..., float],
    *,
    n_boot: int,
    level: float,
    seed: int,
) -> tuple[float, float]:
    """(low, high) of a percentile bootstrap that resamples cells: ``samples`` are per-cell
    arrays drawn together (``scipy.stats.bootstrap`` with ``paired=True``). A degenerate sample
    (a handful of cells) gives nan or equal bounds, silently."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stats.bootstrap(
            samples,
            statistic,
            paired=True,
            vectorized=False,
            n_resamples=n_boot,
            confidence_level=level,
            method="percentile",
            random_state=np.random.default_rng(seed),
        )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def bootstrap_ci(
    score: Sequence[float],
    acc: Sequence[float],
    *,
    statistic: str = "kendall",
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(point estimate, low, high): percentile bootstrap CI of τ or ρ, resampling cells (the
    score and the accuracy of a cell drawn together)."""
    _check_statistic(statistic)
    s = np.asarray(score, dtype=np.float64)
    a = np.asarray(acc, dtype=np.float64)
    point = rank_correlations(s, a)[statistic]
    if not math.isfinite(point):
        return point, math.nan, math.nan
    low, high = _percentile_bootstrap(
        (s, a),
        lambda x, y: rank_correlations(x, y)[statistic],
        n_boot=n_boot,
        level=level,
        seed=seed,
    )
    return point, low, high


def paired_difference_ci(
    score_a: Sequence[float],
    score_b: Sequence[float],
    acc: Sequence[float],
    *,
    statistic: str = "kendall",
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(point, low, high) of τ(a) − τ(b) (or ρ) on the same cells: a paired percentile bootstrap
    (each resample draws cells, and both scores are ranked on the same draw). Oriented scores:
    larger = predicted better."""
    _check_statistic(statistic)
    a, b, y = (np.asarray(v, dtype=np.float64) for v in (score_a, score_b, acc))

    def diff(sa: np.ndarray, sb: np.ndarray, ya: np.ndarray) -> float:
        return rank_correlations(sa, ya)[statistic] - rank_correlations(sb, ya)[statistic]

    point = diff(a, b, y)
    if not math.isfinite(point):
        return point, math.nan, math.nan
    low, high = _percentile_bootstrap((a, b, y), diff, n_boot=n_boot, level=level, seed=seed)
    return point, low, high
