"""The default score: what ``nasntk search`` optimises unless told otherwise.

The default is a **rank aggregate** (:mod:`nasntk.proxies.aggregate`) of complementary terms —
the pNTK's (:func:`nasntk.proxies.pntk.pntk_live_g`: live parameters discounted by the pNTK's
slowest mode) and the peers' signals listed in :data:`DEFAULT_TERMS` — each ranked over the
candidates, summed as Σ_t log(rank_t / M): a candidate that is bad on any one term sinks, and no
weight is fitted (one definition for every space). The rule "the default is per candidate, no
ranks over a population" of the earlier sessions is lifted because the aggregate measured better
on all three dev suites (experiments/README.md §7).

Where the population comes from:

* ``nasntk benchmark``: the truth file's cells (exact ranks);
* ``nasntk search``: the study's reference sample (:mod:`nasntk.study.reference`), each term a
  percentile against it — a trial's value never changes once it completes;
* a model scored alone (``nasntk.score(model)``, ``nasntk score`` on a file of specs, no study):
  there is no population, and the default is the pNTK term alone, ``pntk_live_g``.
"""

from __future__ import annotations

from nasntk.proxies.aggregate import aggregate_value
from nasntk.proxies.context import Context
from nasntk.proxies.registry import DEFAULT, get, register

__all__ = ["DEFAULT_TERMS", "LONE_DEFAULT", "default_score"]

#: The default's terms, ranked over the population and summed as Σ log(rank/M): the pNTK term,
#: AZ-NAS's four (expressivity, progressivity, trainability, FLOPs) and MeCo's — the candidate
#: with the highest mean Kendall τ over the five dev columns (NB201 ×3, NB101, NB301) among those
#: within twice today's seconds per cell (adding ZiCo and SWAP measured 0.673 against 0.667, at
#: 2.6× the cost; experiments/README.md §7).
DEFAULT_TERMS = (
    "pntk_live_g",
    "az_expressivity",
    "az_progressivity",
    "az_trainability",
    "flops",
    "meco",
)
#: The default of a model scored without a population.
LONE_DEFAULT = "pntk_live_g"


def _needs() -> tuple[str, ...]:
    needs = dict.fromkeys(n for t in DEFAULT_TERMS for n in get(t).needs)
    return (*needs, "population")


@register(
    DEFAULT,
    direction="maximize",
    needs=_needs(),
    family="default",
    reference="nasntk (rank aggregate of the pNTK term and the peers' terms)",
    help="Σ log(rank/M) of " + ", ".join(DEFAULT_TERMS) + f" (alone: {LONE_DEFAULT})",
    terms=DEFAULT_TERMS,
)
def default_score(ctx: Context) -> float:
    """Σ_t log p_t of :data:`DEFAULT_TERMS` against the context's reference sample; without one
    (a model scored alone), the value of :data:`LONE_DEFAULT`."""
    from nasntk.proxies.scoring import value_of

    if not all(t in ctx.reference for t in DEFAULT_TERMS):
        value, why = value_of(get(LONE_DEFAULT), ctx)
        if why is not None:
            from nasntk.spectral import ScoreUndefined

            raise ScoreUndefined(why, value)
        return value
    values = {t: value_of(get(t), ctx)[0] for t in DEFAULT_TERMS}
    return aggregate_value(get(DEFAULT), values, ctx.reference)
