"""Samplers that mutate what the study has already scored: regularized evolution and local search.

Both are Optuna samplers, so storage, resume, parallel workers and dedup work as with TPE: all
their state is the study's trials, read afresh for every trial. A *mutation* changes one
parameter of a trial — one ``suggest_*`` call of the space — to another value of its
distribution: for NB201 one edge's op, for NB101 one vertex's op or one edge bit, for DARTS one
op or one node's input pair, for the timm families one field. A child whose parameters equal a
trial already in the study (any state) is redrawn, so a search does not spend trials on
architectures it has seen.

Regularized (aging) evolution (Real et al., AAAI 2019): the population is the last P finished
trials; the parent is the fittest of S members drawn at random (a tournament); the child is one
mutation of the parent. Old trials leave the population however good they were, which keeps the
search moving.

Local search (hill climbing from the incumbent; White et al., "Local search is state of the art
for NAS benchmarks", 2021): propose the unseen one-mutation neighbours of the best trial, in a
random order; when every neighbour of the best trial has been seen (a local optimum), move on to
the next best trial with an unseen neighbour; when none has one, restart at random.

Fitness with one objective is its value (negated when minimised); with several it is minus the
number of population members that Pareto-dominate the trial (0 on the front). The first
``n_startup`` trials are drawn at random.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

__all__ = ["EvolutionSampler", "LocalSearchSampler", "fitness", "neighbours"]

_FINISHED = (TrialState.COMPLETE,)
#: How many mutations are drawn before a child that the study has not seen is given up on.
_TRIES = 32


# ------------------------------------------------------------------------------------------------
# Pure parts: fitness, mutation, neighbourhoods
# ------------------------------------------------------------------------------------------------
def fitness(trials: Sequence[FrozenTrial], directions: Sequence[StudyDirection]) -> list[float]:
    """Larger = fitter: the (oriented) value for one objective; for several, minus how many of
    ``trials`` Pareto-dominate each trial."""
    signs = [1.0 if d == StudyDirection.MAXIMIZE else -1.0 for d in directions]
    vals = [[s * v for s, v in zip(signs, t.values, strict=True)] for t in trials]
    if len(signs) == 1:
        return [v[0] for v in vals]

    def dominates(a: list[float], b: list[float]) -> bool:
        return all(x >= y for x, y in zip(a, b, strict=True)) and a != b

    return [-float(sum(dominates(o, v) for o in vals)) for v in vals]


def _choices(dist: BaseDistribution) -> list[Any] | None:
    """Every value of a finite distribution (None for a continuous one or a very large range)."""
    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices)
    if isinstance(dist, IntDistribution) and not dist.log:
        n = (dist.high - dist.low) // dist.step + 1
        return [dist.low + i * dist.step for i in range(n)] if n <= 64 else None
    return None


def _other_value(dist: BaseDistribution, value: Any, rng: random.Random) -> Any:
    """A value of ``dist`` other than ``value`` (a fresh draw for continuous distributions)."""
    choices = _choices(dist)
    if choices is not None:
        others = [c for c in choices if c != value]
        return rng.choice(others) if others else value
    if isinstance(dist, IntDistribution):
        if dist.log:
            return round(math.exp(rng.uniform(math.log(dist.low), math.log(dist.high))))
        return rng.randrange(dist.low, dist.high + 1, dist.step)
    assert isinstance(dist, FloatDistribution)
    if dist.log:
        return math.exp(rng.uniform(math.log(dist.low), math.log(dist.high)))
    return rng.uniform(dist.low, dist.high)


def _mutable(trial: FrozenTrial) -> list[str]:
    """The parameters of ``trial`` that can take another value."""
    return [n for n, d in trial.distributions.items() if not d.single()]


def mutate(trial: FrozenTrial, rng: random.Random) -> dict[str, Any]:
    """``trial``'s parameters with one of them changed to another value of its distribution."""
    params = dict(trial.params)
    names = _mutable(trial)
    if names:
        name = rng.choice(names)
        params[name] = _other_value(trial.distributions[name], params[name], rng)
    return params


def neighbours(trial: FrozenTrial) -> list[dict[str, Any]]:
    """Every one-mutation neighbour of ``trial`` over its finite parameters (for an integer, the
    adjacent values; continuous parameters are not enumerated)."""
    out = []
    for name in _mutable(trial):
        dist, value = trial.distributions[name], trial.params[name]
        if isinstance(dist, IntDistribution) and not dist.log:
            values = [
                v for v in (value - dist.step, value + dist.step) if dist.low <= v <= dist.high
            ]
        else:
            values = [c for c in (_choices(dist) or []) if c != value]
        out += [{**trial.params, name: v} for v in values]
    return out


def _key(params: dict[str, Any]) -> frozenset:
    return frozenset((k, repr(v)) for k, v in params.items())


# ------------------------------------------------------------------------------------------------
# The samplers
# ------------------------------------------------------------------------------------------------
class _PlannedSampler(optuna.samplers.BaseSampler):
    """A sampler that decides a trial's whole parameter set at its first ``suggest`` (the plan)
    and answers every call from it; names outside the plan are drawn at random."""

    def __init__(self, seed: int | None = None, n_startup: int = 10) -> None:
        self._seed = seed
        self._n_startup = n_startup
        self._random = optuna.samplers.RandomSampler(seed=seed)
        self._plans: dict[int, dict[str, Any] | None] = {}
        self._lock = threading.Lock()

    def reseed_rng(self) -> None:
        self._random.reseed_rng()

    def infer_relative_search_space(self, study: Any, trial: FrozenTrial) -> dict:
        return {}

    def sample_relative(self, study: Any, trial: FrozenTrial, search_space: dict) -> dict:
        return {}

    def _rng(self, trial: FrozenTrial) -> random.Random:
        return random.Random(f"{self._seed}:{trial.number}")

    def sample_independent(
        self, study: Any, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        with self._lock:
            if trial._trial_id not in self._plans:
                self._plans[trial._trial_id] = self._plan(study, trial)
            plan = self._plans[trial._trial_id]
        if plan is not None and param_name in plan:
            value = plan[param_name]
            try:
                if param_distribution._contains(param_distribution.to_internal_repr(value)):
                    return value
            except (ValueError, TypeError):
                pass
        return self._random.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self, study: Any, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None
    ) -> None:
        with self._lock:
            self._plans.pop(trial._trial_id, None)

    def _plan(self, study: Any, trial: FrozenTrial) -> dict[str, Any] | None:
        trials = study.get_trials(deepcopy=False)
        finished = [t for t in trials if t.state in _FINISHED and t.values is not None]
        if len(finished) < self._n_startup:
            return None
        seen = {_key(t.params) for t in trials if t.number != trial.number and t.params}
        return self._propose(finished, seen, list(study.directions), self._rng(trial))

    def _propose(
        self,
        finished: list[FrozenTrial],
        seen: set,
        directions: list[StudyDirection],
        rng: random.Random,
    ) -> dict[str, Any] | None:
        raise NotImplementedError


class EvolutionSampler(_PlannedSampler):
    """Regularized (aging) evolution: population of the last ``population`` finished trials,
    tournaments of ``tournament``, one mutation per child (module docstring)."""

    def __init__(
        self,
        seed: int | None = None,
        *,
        population: int = 20,
        tournament: int = 5,
        n_startup: int | None = None,
    ) -> None:
        super().__init__(seed, population if n_startup is None else n_startup)
        self.population = population
        self.tournament = tournament

    def _propose(self, finished, seen, directions, rng):  # type: ignore[no-untyped-def]
        pop = sorted(finished, key=lambda t: t.number)[-self.population :]
        fit = fitness(pop, directions)
        for _ in range(_TRIES):
            drawn = rng.sample(range(len(pop)), min(self.tournament, len(pop)))
            parent = pop[max(drawn, key=lambda i: fit[i])]
            child = mutate(parent, rng)
            if _key(child) not in seen:
                return child
        return None  # everything near the population is known: a random draw


class LocalSearchSampler(_PlannedSampler):
    """Hill climbing from the incumbent over one-mutation neighbours (module docstring)."""

    def __init__(self, seed: int | None = None, *, n_startup: int = 10) -> None:
        super().__init__(seed, n_startup)

    def _propose(self, finished, seen, directions, rng):  # type: ignore[no-untyped-def]
        fit = fitness(finished, directions)
        order = sorted(range(len(finished)), key=lambda i: (-fit[i], finished[i].number))
        for i in order:
            unseen = [p for p in neighbours(finished[i]) if _key(p) not in seen]
            if unseen:
                return rng.choice(unseen)
        return None  # every finished trial's neighbourhood is explored: restart at random
