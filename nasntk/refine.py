"""Refine the top of a leaderboard with a little training: the zero-cost top-K, re-ranked.

A zero-cost score orders the bulk of a space well and its first few rows less well (the rows a
user takes). :func:`refine` (``nasntk refine``, ``nasntk search --refine K``) trains the K
leading candidates of a study for a short, stated budget with the training loop of
:mod:`nasntk.training` and re-ranks those K by the accuracy they reach on held-out images; ties
and failed runs keep their zero-cost order (a failed run goes last). Everything outside the top K
keeps its zero-cost rank. The training results are stored in the study under the budget's key
exactly as :func:`nasntk.validation.validate` stores them, so a second call with the same budget
trains nothing, an interrupted one resumes, and ``nasntk validate`` reads them too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional, Union

import optuna

from nasntk.errors import NasntkError
from nasntk.validation import Progress, validate

__all__ = ["Refinement", "refine"]


@dataclass(frozen=True)
class Refinement:
    """The top-K of a study re-ranked by a short training run.

    ``rows``: the K candidates in their new order, each a leaderboard row with ``rank`` (the
    zero-cost rank), ``refined_rank`` (1…K), ``val_acc`` and the training fields of
    :func:`nasntk.validation.validate`.
    """

    study: str
    budget: str
    rows: list[dict[str, Any]]
    trained: int = 0
    reused: int = 0

    @property
    def best(self) -> dict[str, Any]:
        """The new rank 1."""
        return self.rows[0]


def _order(row: dict[str, Any]) -> tuple[float, float]:
    acc = row.get("val_acc")
    acc = float(acc) if isinstance(acc, (int, float)) and math.isfinite(acc) else -math.inf
    return (-acc, float(row.get("rank") or math.inf))


def refine(
    study_or_name: Union[optuna.Study, str],
    *,
    storage: Optional[str] = None,
    top: int = 10,
    epochs: int = 1,
    progress: Optional[Progress] = None,
    **train_options: Any,
) -> Refinement:
    """Train the ``top`` leading candidates for ``epochs`` epochs and re-rank them.

    ``train_options`` are :func:`nasntk.validation.validate`'s budget and recipe options
    (``data``, ``n``, ``val_fraction``, ``seed``, ``optimizer``, ``lr``, ``weight_decay``,
    ``batch_size``, ``augment``, ``device``, ``retrain``).
    """
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise NasntkError(f"--refine / --top must be a positive number of candidates, got {top!r}")
    if "random_k" in train_options or "out" in train_options:
        raise NasntkError("refine trains the leading candidates only (no random_k, no out)")
    v = validate(
        study_or_name,
        storage=storage,
        top=top,
        random_k=0,
        epochs=epochs,
        progress=progress,
        **train_options,
    )
    rows = sorted(v.rows, key=_order)
    for i, r in enumerate(rows, 1):
        r["refined_rank"] = i
    return Refinement(study=v.study, budget=v.budget, rows=rows, trained=v.trained, reused=v.reused)
