"""The registry of named scores: what a score is called, which way is better, what it needs.

A score is a :class:`Proxy`: a function of a :class:`nasntk.proxies.context.Context` (one model
at one initialisation, one batch, the options) returning a float, plus

* ``direction``: "maximize" or "minimize";
* ``needs``: what computing it takes — "kernel" (a pNTK), "grad" (backward passes), "forward"
  (forward passes only), "labels" (the batch's labels), "params" (nothing but the model),
  "population" (ranks over a set of candidates: an aggregate, see :mod:`nasntk.proxies.aggregate`),
  "measure" (timed or memory-profiled runs on the scoring device, see
  :mod:`nasntk.proxies.hardware`: not a function of the weights alone, it varies run to run);
* ``family``: the method it comes from ("pntk", "classic", "zico", "az_nas", ...);
* ``reference``: the paper it implements;
* ``terms``: for an aggregate, the registered scores whose ranks it sums, and ``rule`` how
  ("log": Σ log(rank/M), "rank": Σ rank/M).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nasntk.errors import NasntkError

if TYPE_CHECKING:
    from nasntk.proxies.context import Context

__all__ = ["DEFAULT", "DIRECTIONS", "NEEDS", "Proxy", "describe", "get", "names", "register"]

DEFAULT = "default"
DIRECTIONS = ("maximize", "minimize")
NEEDS = ("params", "forward", "grad", "kernel", "labels", "population", "measure")

ScoreFn = Callable[["Context"], float]


@dataclass(frozen=True)
class Proxy:
    """A named score: ``fn(ctx) -> float``; ``direction`` says whether higher or lower is better."""

    name: str
    direction: str
    needs: tuple[str, ...]
    help: str
    fn: ScoreFn
    family: str = "other"
    reference: str = ""
    terms: tuple[str, ...] = ()
    rule: str = "log"

    @property
    def worst(self) -> float:
        """The value reported when the score is undefined: +inf (minimize) or −inf (maximize)."""
        return math.inf if self.direction == "minimize" else -math.inf

    @property
    def is_aggregate(self) -> bool:
        """True for a score made of the ranks of other scores over a population."""
        return bool(self.terms)


_REGISTRY: dict[str, Proxy] = {}


def register(
    name: str,
    *,
    direction: str,
    needs: Sequence[str],
    help: str,
    family: str = "other",
    reference: str = "",
    terms: Sequence[str] = (),
    rule: str = "log",
    replace: bool = False,
) -> Callable[[ScoreFn], ScoreFn]:
    """Decorator adding ``fn(ctx) -> float`` to the registry under ``name``."""
    if direction not in DIRECTIONS:
        raise NasntkError(f"direction must be 'maximize' or 'minimize', got {direction!r}")
    unknown = sorted(set(needs) - set(NEEDS))
    if unknown:
        raise NasntkError(f"unknown needs {', '.join(unknown)}; known: {', '.join(NEEDS)}")

    def deco(fn: ScoreFn) -> ScoreFn:
        if name in _REGISTRY and not replace:
            raise NasntkError(f"score {name!r} is already registered")
        _REGISTRY[name] = Proxy(
            name, direction, tuple(needs), help, fn, family, reference, tuple(terms), rule
        )
        return fn

    return deco


def names() -> list[str]:
    """Every registered score name, in registration order."""
    return list(_REGISTRY)


def get(name: str) -> Proxy:
    """The :class:`Proxy` registered under ``name``."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise NasntkError(f"unknown score {name!r}; known: {', '.join(_REGISTRY)}") from None


def describe() -> list[dict[str, object]]:
    """One plain dict per registered score (name, direction, family, needs, reference, help,
    terms, default), in registration order: what ``nasntk scores`` lists."""
    return [
        {
            "name": p.name,
            "direction": p.direction,
            "family": p.family,
            "needs": list(p.needs),
            "reference": p.reference,
            "help": p.help,
            "terms": list(p.terms),
            "rule": p.rule if p.terms else "",
            "default": p.name == DEFAULT,
        }
        for p in _REGISTRY.values()
    ]
