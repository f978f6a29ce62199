"""Rank aggregation: a score made of the ranks of other scores over a population.

AZ-NAS (Lee & Ham, CVPR 2024), VKDNW_agg (Dvořák et al., CVPR 2025) and TE-NAS (Chen et al.,
ICLR 2021) combine terms on incomparable scales through their ranks. For M candidates and a term
t, let r_t(i) ∈ [1, M] be candidate i's rank with the best value ranked M (ties: the average
rank; a non-finite value is the worst). The aggregate is

    A(i) = Σ_t log(r_t(i) / M)  ≤ 0,

so a candidate that is bad on any one term sinks (a product of percentiles), and no weight is
fitted. In ``nasntk benchmark`` the population is the truth file's cells (:func:`rank_aggregate`).

A search needs a value that never changes once a trial completes, is the same for every worker
and survives resume: each term becomes a percentile against a fixed **reference sample** of the
space (seeded, scored once when the study is created and stored in it):

    p_t(v) = (1 + #{r ∈ R_t : r worse than v} + ½·#{r ∈ R_t : r = v}) / (|R_t| + 1),
    A(v)   = Σ_t log p_t(v)                                           (:func:`percentile_aggregate`)

— the rank v would have among R_t ∪ {v}, over |R_t| + 1; with R_t the rest of the population it
is exactly the population rank aggregate. A search uses it as it is. A smoothed form (each
reference member counting Φ((v − r)/h), a kernel estimate of the distribution function,
:func:`percentile` with ``smooth``) orders the candidates beyond the reference's range, where the
step counts tie; measured against the step counts on the dev suites it ranks worse (the default,
R = 32 random cells: NB201 C10 τ 0.764 against 0.773, NB101 0.624 against 0.645;
experiments/README.md §7), so it is not used.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.special import ndtr
from scipy.stats import rankdata

from nasntk.spectral import ScoreUndefined

__all__ = ["aggregate_value", "oriented", "percentile_aggregate", "rank_aggregate"]


def oriented(values: Sequence[float], direction: str) -> np.ndarray:
    """Values turned so that larger is better; nan and the worst infinity become −inf."""
    v = np.asarray(values, dtype=np.float64)
    v = -v if direction == "minimize" else v.copy()
    v[~np.isfinite(v) & ~(v == np.inf)] = -np.inf
    return v


RULES = ("log", "rank")


def _combine(share: np.ndarray | float, rule: str) -> np.ndarray | float:
    """One term's contribution: log(share) (AZ-NAS, VKDNW) or the share itself (TE-NAS)."""
    return np.log(share) if rule == "log" else share


def rank_aggregate(
    values: Mapping[str, Sequence[float]], directions: Mapping[str, str], rule: str = "log"
) -> np.ndarray:
    """Σ_t log(r_t / M) (``rule="log"``; Σ_t r_t / M with ``rule="rank"``) over the terms in
    ``values`` (each a length-M sequence), the best of a term ranked M, ties averaged;
    −inf-oriented values rank last."""
    if not values:
        raise ValueError("rank_aggregate needs at least one term")
    total = None
    for name, vs in values.items():
        v = oriented(vs, directions.get(name, "maximize"))
        r = rankdata(np.where(np.isneginf(v), -np.finfo(np.float64).max, v), method="average")
        term = _combine(r / len(v), rule)
        total = term if total is None else total + term
    return total


def percentile(
    value: float, reference: Sequence[float], direction: str, smooth: bool = False
) -> float:
    """p(v) = (1 + #{worse} + ½·#{equal}) / (|R| + 1) of ``value`` against ``reference``; with
    ``smooth``, each finite member r counts Φ((v − r)/h) instead of [r < v] + ½[r = v] (the
    kernel estimate of the reference's distribution function, Gaussian kernel, Silverman's
    bandwidth h = 1.06·sd·m^(−1/5) over its m finite members), so that values beyond the
    reference's range still order (the step counts tie there). h = 0 gives the step count."""
    ref = oriented(reference, direction)
    (v,) = oriented([value], direction)
    finite = ref[np.isfinite(ref)]
    h = 1.06 * float(np.std(finite)) * len(finite) ** -0.2 if len(finite) > 1 else 0.0
    if smooth and h > 0 and math.isfinite(v):
        below = float(np.sum(ndtr((v - finite) / h))) + float(np.sum(np.isneginf(ref)))
        return (1.0 + below) / (len(ref) + 1.0)
    fin = np.finfo(np.float64).max
    ref, v = np.where(np.isneginf(ref), -fin, ref), (-fin if np.isneginf(v) else v)
    worse = float(np.sum(ref < v))
    equal = float(np.sum(ref == v))
    return (1.0 + worse + 0.5 * equal) / (len(ref) + 1.0)


def percentile_aggregate(
    values: Mapping[str, float],
    reference: Mapping[str, Sequence[float]],
    directions: Mapping[str, str],
    rule: str = "log",
    smooth: bool = False,
) -> float:
    """Σ_t log p_t(v_t) (or Σ_t p_t, ``rule="rank"``) of one candidate's term values against the
    reference sample (``smooth``: the kernel-smoothed p_t of :func:`percentile`)."""
    missing = [t for t in values if t not in reference or len(reference[t]) == 0]
    if missing:
        raise ScoreUndefined(
            f"an aggregate needs a reference population for {', '.join(missing)} "
            "(a search study's reference sample or a benchmark's cells)",
            math.nan,
        )
    return float(
        sum(
            _combine(percentile(v, reference[t], directions.get(t, "maximize"), smooth), rule)
            for t, v in values.items()
        )
    )


def aggregate_value(
    proxy: Any, values: Mapping[str, float], reference: Mapping[str, Sequence[float]]
) -> float:
    """The registered aggregate ``proxy``'s value for one candidate's term ``values`` against a
    reference sample (its rule, step percentiles)."""
    from nasntk.proxies.registry import get

    directions = {t: get(t).direction for t in proxy.terms}
    return percentile_aggregate(
        {t: values[t] for t in proxy.terms}, reference, directions, proxy.rule
    )


def register_aggregate(
    name: str,
    terms: Sequence[str],
    *,
    help: str,
    family: str,
    reference: str = "",
    rule: str = "log",
) -> None:
    """Register ``name`` as the percentile aggregate of the registered scores ``terms`` (which
    must be registered first); its needs are the union of theirs plus "population"."""
    from nasntk.proxies.registry import get, register

    proxies = [get(t) for t in terms]
    needs = dict.fromkeys(n for p in proxies for n in p.needs)

    def fn(ctx) -> float:  # noqa: ANN001 - a Context
        from nasntk.proxies.scoring import value_of

        values = {p.name: value_of(p, ctx)[0] for p in proxies}
        return aggregate_value(get(name), values, ctx.reference)

    fn.__doc__ = f"Σ {rule} percentile of {', '.join(terms)} against the reference sample."
    register(
        name,
        direction="maximize",
        needs=(*needs, "population"),
        help=help,
        family=family,
        reference=reference,
        terms=tuple(terms),
        rule=rule,
    )(fn)
