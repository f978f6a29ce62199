"""How well do training-free scores rank architectures? The benchmark behind ``nasntk benchmark``.

:func:`benchmark` scores the cells of a truth CSV (:mod:`nasntk.groundtruth`) through the
resumable score cache (:mod:`nasntk.scorecache`) and measures, for every score and every anchor
of the CSV against every accuracy column, Kendall τ-b, Spearman ρ, the top-10 hit rate and the
quality of the top (precision and regret of the top 1/5/10, the true accuracy of rank 1;
:func:`nasntk.rankstats.top_quality`), plus the paired bootstrap CI of the default minus the best
anchor.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional, Union

import numpy as np

from nasntk.errors import NasntkError
from nasntk.groundtruth import Truth, as_float, read_truth
from nasntk.rankstats import (
    correlations,
    orient,
    paired_difference_ci,
    rank_correlations,
    top_k_hit_rate,
    top_quality,
)
from nasntk.scorecache import Computer, score_names, score_specs


# ------------------------------------------------------------------------------------------------
# The benchmark
# ------------------------------------------------------------------------------------------------
@dataclass
class BenchmarkResult:
    """Rank quality of every score, and of every anchor of the truth CSV, against every accuracy
    column; anchors are published values of the same cells (:class:`Truth`), maximised as given."""

    n: int
    seconds_per_cell: float
    default: str
    scores: dict[str, dict[str, dict[str, float]]]
    top10: dict[str, dict[str, float]] = field(default_factory=dict)
    top: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    directions: dict[str, str] = field(default_factory=dict)
    values: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    truth: Optional[Truth] = field(default=None, repr=False)
    anchors: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """``{"n", "seconds_per_cell", "default", "scores": {s: {col: {τ, ρ}}}, "anchors": {a:
        {col: {τ, ρ}}}, "top": {s or a: {col: top_quality}}}``: the same shape for every suite
        (``anchors`` may be empty)."""

        def corr(table: Mapping[str, Mapping[str, Mapping[str, float]]]) -> dict[str, Any]:
            return {
                s: {
                    c: {"kendall": v["kendall"], "spearman": v["spearman"]} for c, v in cols.items()
                }
                for s, cols in table.items()
            }

        return {
            "n": int(self.n),
            "seconds_per_cell": float(self.seconds_per_cell),
            "default": self.default,
            "scores": corr(self.scores),
            "anchors": corr(self.anchors),
            "top": {
                s: {c: {k: float(v) for k, v in t.items()} for c, t in cols.items()}
                for s, cols in self.top.items()
            },
        }

    def best_anchor(self, column: str) -> Optional[str]:
        """The anchor with the highest Kendall τ on ``column`` (None without anchors)."""
        taus = {a: v[column]["kendall"] for a, v in self.anchors.items()}
        taus = {a: t for a, t in taus.items() if math.isfinite(t)}
        return max(taus, key=lambda a: taus[a]) if taus else None

    def versus_best_anchor(
        self, column: str, score: Optional[str] = None, *, n_boot: int = 1000
    ) -> Optional[tuple[str, float, float, float]]:
        """(anchor, τ(score) − τ(anchor), low, high): the paired bootstrap CI of the difference
        between ``score`` (default: the default score) and the best anchor on ``column``."""
        score = score or self.default
        best = self.best_anchor(column)
        if best is None or self.truth is None or score not in self.values:
            return None
        mine = orient(self.values[score], self.directions.get(score, "maximize"))
        theirs = orient(self.truth.anchors[best])
        point, low, high = paired_difference_ci(
            mine, theirs, self.truth.columns[column], n_boot=n_boot
        )
        return best, point, low, high


def evaluate(
    rows: Sequence[Mapping[str, Any]],
    truth: Truth,
    names: Sequence[str],
    directions: Mapping[str, str],
    default: str = "default",
    aggregates: Optional[Mapping[str, tuple[Sequence[str], str]]] = None,
) -> BenchmarkResult:
    """Correlations, top-10 hit rates, the quality of the top and mean seconds of scored rows
    aligned with ``truth``. ``aggregates`` maps a score to (its terms, its rule): its values are
    the exact rank aggregate of the terms over the rows (the population is the truth's cells;
    :func:`nasntk.proxies.aggregate.rank_aggregate`), whatever the rows hold for it."""
    from nasntk.proxies.aggregate import rank_aggregate

    if len(rows) != len(truth):
        raise NasntkError(f"{len(rows)} scored rows for {len(truth)} truth cells")
    values = {nm: np.array([as_float(r.get(nm)) for r in rows]) for nm in names}
    for nm, (terms, rule) in (aggregates or {}).items():
        if nm in values:
            terms_values = {t: np.array([as_float(r.get(t)) for r in rows]) for t in terms}
            values[nm] = rank_aggregate(terms_values, directions, rule)
    corr = correlations(values, truth.columns, directions)
    top10 = {
        nm: {
            col: top_k_hit_rate(orient(values[nm], directions.get(nm, "maximize")), acc)
            for col, acc in truth.columns.items()
        }
        for nm in names
    }
    anchors = {
        a: {col: rank_correlations(orient(v), acc) for col, acc in truth.columns.items()}
        for a, v in truth.anchors.items()
    }
    for a, v in truth.anchors.items():
        top10[a] = {col: top_k_hit_rate(orient(v), acc) for col, acc in truth.columns.items()}
    oriented = {nm: orient(values[nm], directions.get(nm, "maximize")) for nm in names}
    oriented.update({a: orient(v) for a, v in truth.anchors.items()})
    top = {
        nm: {col: top_quality(v, acc) for col, acc in truth.columns.items()}
        for nm, v in oriented.items()
    }
    secs = np.array([as_float(r.get("seconds")) for r in rows])
    return BenchmarkResult(
        n=len(rows),
        seconds_per_cell=float(np.nanmean(secs)) if np.isfinite(secs).any() else math.nan,
        default=default if default in names else "",
        scores=corr,
        top10=top10,
        top=top,
        directions=dict(directions),
        values=values,
        truth=truth,
        anchors=anchors,
    )


def benchmark(
    space: Any = "nb201",
    *,
    truth: Union[str, os.PathLike],
    data: Any,
    limit: Optional[int] = None,
    scores: Optional[Sequence[str]] = None,
    n: int = 64,
    seeds: int = 1,
    bn: Optional[str] = None,
    cache: Optional[Union[str, os.PathLike]] = None,
    compute: Optional[Computer] = None,
    directions: Optional[Mapping[str, str]] = None,
    progress: Optional[Callable[[int, int], None]] = None,
    space_options: Optional[Mapping[str, Any]] = None,
    img_size: Optional[int] = None,
    **opts: Any,
) -> BenchmarkResult:
    """Score the cells of a truth CSV and measure how well each score ranks them.

    ``cache`` is a resumable score CSV (as written by :func:`score_specs`): cells already scored
    there with the same configuration are not scored again. ``progress(done, total)`` is called
    after each cell. ``directions`` defaults to the registry's (``nasntk.proxies.get(name)``).
    ``space_options`` are the space's constructor options (e.g. a narrower proxy network).
    ``img_size`` resizes the images to that side length, at which the networks are built and
    scored (``--img-size``, as in ``nasntk search``; default: the data's own size).
    """
    from nasntk.data import check_img_size
    from nasntk.search_spaces import get as get_space

    check_img_size(img_size)
    if isinstance(space, str):
        space = get_space(space, **dict(space_options or {}))
    tr = read_truth(truth, limit=limit)
    names = score_names(scores) if compute is None else list(scores or [])
    from nasntk import proxies

    aggregates: dict[str, tuple[Sequence[str], str]] = {}
    if compute is None:  # the library's scores: an aggregate's terms are scored with it
        for nm in list(names):
            p = proxies.get(nm)
            if p.is_aggregate:
                aggregates[nm] = (p.terms, p.rule)
                names += [t for t in p.terms if t not in names]
    if directions is None:
        directions = {nm: proxies.get(nm).direction for nm in names}
    rows = []
    for row in score_specs(
        space,
        tr.archs,
        data=data,
        out=cache,
        scores=names,
        n=n,
        seeds=seeds,
        bn=bn,
        compute=compute,
        img_size=img_size,
        **opts,
    ):
        rows.append(row)
        if progress is not None:
            progress(len(rows), len(tr))
    return evaluate(rows, tr, names, directions, aggregates=aggregates)
