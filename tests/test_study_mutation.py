"""Tests of nasntk.study.mutation: regularized evolution and local search as Optuna samplers."""

from __future__ import annotations

import json
import random

import optuna
from optuna.distributions import CategoricalDistribution, IntDistribution
from optuna.study import StudyDirection
from optuna.trial import TrialState, create_trial
from search_toy_space import TINY, ToySpace

from nasntk.study import search
from nasntk.study.mutation import (
    EvolutionSampler,
    LocalSearchSampler,
    fitness,
    mutate,
    neighbours,
)

EDGES = [f"e{i}" for i in range(6)]
OPS = ["a", "b", "c", "d", "e"]
TARGET = ["c", "a", "e", "b", "d", "c"]


def _cells(trial: optuna.Trial) -> float:
    """A separable toy landscape over 5^6 = 15,625 'cells': how many edges match TARGET."""
    ops = [trial.suggest_categorical(n, OPS) for n in EDGES]
    return float(sum(o == t for o, t in zip(ops, TARGET, strict=True)))


def _trial(params: dict, values: list[float], number: int = 0) -> optuna.trial.FrozenTrial:
    dists = {n: CategoricalDistribution(OPS) for n in params}
    t = create_trial(params=params, distributions=dists, values=values)
    t.number = number
    return t


def test_fitness_one_and_several_objectives() -> None:
    ts = [_trial({"e0": "a"}, [v]) for v in (1.0, 3.0, 2.0)]
    assert fitness(ts, [StudyDirection.MAXIMIZE]) == [1.0, 3.0, 2.0]
    assert fitness(ts, [StudyDirection.MINIMIZE]) == [-1.0, -3.0, -2.0]
    # two objectives, both maximised: (1, 1) is dominated by both others; they do not dominate
    # each other
    ts = [_trial({"e0": "a"}, v) for v in ([1.0, 1.0], [3.0, 0.5], [2.0, 2.0])]
    assert fitness(ts, [StudyDirection.MAXIMIZE] * 2) == [-1.0, 0.0, 0.0]


def test_mutate_changes_exactly_one_parameter_within_its_distribution() -> None:
    parent = _trial(dict(zip(EDGES, TARGET, strict=True)), [6.0])
    rng = random.Random(0)
    for _ in range(50):
        child = mutate(parent, rng)
        changed = [n for n in EDGES if child[n] != parent.params[n]]
        assert len(changed) == 1 and child[changed[0]] in OPS
    # an integer parameter moves to another value of its range; a one-value one never changes
    t = create_trial(
        params={"depth": 3, "fixed": "x"},
        distributions={
            "depth": IntDistribution(1, 4),
            "fixed": CategoricalDistribution(["x"]),
        },
        values=[0.0],
    )
    for _ in range(20):
        child = mutate(t, rng)
        assert child["fixed"] == "x" and child["depth"] in (1, 2, 4)


def test_neighbours_of_a_cell_are_every_single_edge_change() -> None:
    parent = _trial(dict(zip(EDGES, TARGET, strict=True)), [6.0])
    near = neighbours(parent)
    assert len(near) == 6 * 4  # six edges, four other ops each
    assert len({json.dumps(p, sort_keys=True) for p in near}) == 24
    assert all(sum(p[n] != parent.params[n] for n in EDGES) == 1 for p in near)
    t = create_trial(params={"d": 1}, distributions={"d": IntDistribution(1, 4)}, values=[0.0])
    assert neighbours(t) == [{"d": 2}]  # integers: the adjacent values inside the range


def _climb(s: optuna.samplers.BaseSampler, trials: int) -> tuple[int | None, int]:
    """(the first trial that finds the optimum or None, how many distinct cells were tried)."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(direction="maximize", sampler=s)
    study.optimize(_cells, n_trials=trials)
    first = next((t.number for t in study.trials if t.value == 6.0), None)
    return first, len({json.dumps(t.params, sort_keys=True) for t in study.trials})


def test_mutation_samplers_climb_a_landscape_random_search_cannot() -> None:
    # 15,625 cells, one optimum: random search finds it within 300 trials with probability 1.9 %
    # (the control below); one-edge mutations from the fittest trials reach it.
    for seed in range(3):  # hill climbing: ≤ 10 random + 6 edges × 4 ops, in practice ~35
        first, distinct = _climb(LocalSearchSampler(seed=seed), 200)
        assert first is not None and first < 200 and distinct == 200  # never a cell twice
    # aging evolution climbs more slowly (a 5-match parent mutates the right edge to the right op
    # with probability 1/24), but gets there
    runs = [_climb(EvolutionSampler(seed=seed), 300) for seed in range(5)]
    assert sum(first is not None for first, _ in runs) >= 3
    assert all(distinct == 300 for _, distinct in runs)
    assert _climb(optuna.samplers.RandomSampler(seed=0), 300)[0] is None


def test_evolution_and_local_search_through_the_search(db: str) -> None:
    for name in ("evolution", "local"):
        study = search(
            ToySpace(), trials=14, storage=db, seed=0, sampler=name, study_name=name, **TINY
        )
        done = study.get_trials(states=(TrialState.COMPLETE,))
        assert len(study.trials) == 14 and len(done) >= 12
        # after the random start-up, every proposal is a one-parameter change of a scored trial
        params = [t.params for t in study.trials]
        for t in study.trials[10:]:
            diffs = [sum(t.params[k] != p[k] for k in p) for p in params[: t.number]]
            assert 1 in diffs, (name, t.number)
