"""Samplers and pruners by name, the grid of a discrete space, and per-worker sampler seeds."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import optuna

from nasntk.errors import NasntkError
from nasntk.study.silence import no_warnings

if TYPE_CHECKING:  # the spaces import torch
    from nasntk.search_spaces import SearchSpace

__all__ = ["PRUNERS", "SAMPLERS", "grid_of", "make_pruner", "make_sampler", "worker_seed"]

#: Samplers by name.
SAMPLERS = ("tpe", "evolution", "local", "random", "nsga2", "grid")
#: Pruners by name (``None`` picks successive halving when ``n_low`` is given, else none).
PRUNERS = ("none", "sha", "median", "hyperband")


def make_sampler(
    sampler: str | optuna.samplers.BaseSampler,
    seed: int | None,
    *,
    space: SearchSpace,
    parallel: bool = False,
) -> optuna.samplers.BaseSampler:
    """A sampler by name; TPE uses the constant liar when several workers share the study.
    ``evolution`` and ``local`` mutate the study's trials (:mod:`nasntk.study.mutation`)."""
    if isinstance(sampler, optuna.samplers.BaseSampler):
        return sampler
    with no_warnings():
        if sampler == "tpe":
            return optuna.samplers.TPESampler(seed=seed, constant_liar=parallel)
        if sampler in ("evolution", "local"):
            from nasntk.study.mutation import EvolutionSampler, LocalSearchSampler

            return (EvolutionSampler if sampler == "evolution" else LocalSearchSampler)(seed=seed)
        if sampler == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if sampler == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed)
        if sampler == "grid":
            return optuna.samplers.GridSampler(grid_of(space), seed=seed)
    raise NasntkError(f"unknown sampler {sampler!r}; choose from {', '.join(SAMPLERS)}")


def make_pruner(
    pruner: str | optuna.pruners.BasePruner | None, n_low: int | None
) -> optuna.pruners.BasePruner:
    """A pruner by name; the pruners that compare small-N scores need ``n_low``."""
    if isinstance(pruner, optuna.pruners.BasePruner):
        return pruner
    if pruner is None:
        pruner = "sha" if n_low else "none"
    if pruner == "none":
        return optuna.pruners.NopPruner()
    if pruner not in PRUNERS:
        raise NasntkError(f"unknown pruner {pruner!r}; choose from {', '.join(PRUNERS)}")
    if not n_low:
        raise NasntkError(f"pruner {pruner!r} needs a first, small N (--n-low)")
    if pruner == "sha":
        # One rung at step 1 (the small-N score): keep the top 1/3 of the candidates seen so far.
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    if pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0)
    return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=2, reduction_factor=3)


def worker_seed(seed: int | None, worker: int, done: int) -> int | None:
    """The sampler seed of worker ``worker`` when the study holds ``done`` trials.

    The first worker of a fresh study uses ``seed`` itself; every other worker and every resume
    derives its own from it (so that parallel or resumed runs do not replay the same proposals).
    """
    if seed is None or not (worker or done):
        return seed
    text = ":".join(str(p) for p in (seed, worker, done))
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


class GridProbe:
    """A stand-in for an Optuna trial that records what ``space.suggest`` asks for.

    Categorical parameters give their choices; integer ranges give every value. Each call returns
    a random choice, so repeated probes explore the branches of conditional parameters.
    """

    def __init__(self, rng: random.Random, grid: dict[str, list[Any]]) -> None:
        self.rng = rng
        self.grid = grid
        self.params: dict[str, Any] = {}

    def _pick(self, name: str, choices: Sequence[Any]) -> Any:
        if not choices:
            raise NasntkError(f"grid sampler: parameter {name!r} has no choices")
        known = self.grid.setdefault(name, [])
        for c in choices:
            if c not in known:
                known.append(c)
        value = choices[self.rng.randrange(len(choices))]
        self.params[name] = value
        return value

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self._pick(name, list(choices))

    def suggest_int(self, name: str, low: int, high: int, step: int = 1, log: bool = False) -> int:
        values = list(range(low, high + 1, step))
        if len(values) > 4096:
            raise NasntkError(
                f"grid sampler: parameter {name!r} has too many values ({len(values)})"
            )
        return self._pick(name, values)

    def suggest_float(self, name: str, *args: Any, **kwargs: Any) -> float:
        raise NasntkError(
            f"grid sampler needs a discrete space, but parameter {name!r} is continuous; "
            "use --sampler tpe or random"
        )

    def suggest_uniform(self, name: str, *args: Any, **kwargs: Any) -> float:
        return self.suggest_float(name)

    suggest_loguniform = suggest_uniform
    suggest_discrete_uniform = suggest_uniform

    def set_user_attr(self, key: str, value: Any) -> None:
        pass


def grid_of(space: SearchSpace, probes: int = 256) -> dict[str, list[Any]]:
    """The grid (parameter name -> choices) of a discrete space, found by probing ``suggest``.

    Conditional parameters are collected over ``probes`` random suggestions; parameters that a
    spec does not use make some grid points duplicates, which the search reuses without scoring.
    """
    rng = random.Random(0)
    grid: dict[str, list[Any]] = {}
    for _ in range(probes):
        space.suggest(GridProbe(rng, grid))
    if not grid:
        raise NasntkError(f"grid sampler: space {space.name!r} suggests no parameters")
    return grid
