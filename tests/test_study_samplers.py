"""Tests of nasntk.study.samplers: samplers and pruners by name, grids, per-worker seeds."""

from __future__ import annotations

import itertools
import json

import optuna
import pytest
from search_toy_space import DEPTHS, TINY, WIDTHS, ToySpace

from nasntk.errors import NasntkError
from nasntk.study import search
from nasntk.study.samplers import grid_of, make_pruner, make_sampler, worker_seed


def test_grid_sampler_visits_every_spec_once(db: str) -> None:
    study = search(ToySpace(), trials=12, sampler="grid", storage=db, seed=0, **TINY)
    keys = [t.user_attrs["spec"] for t in study.trials]
    expected = {
        json.dumps({"act": a, "depth": d, "width": w}, separators=(",", ":"))
        for d, w, a in itertools.product(DEPTHS, WIDTHS, ("relu", "tanh"))
    }
    assert sorted(keys) == sorted(expected)


def test_grid_of_a_space() -> None:
    assert grid_of(ToySpace()) == {"depth": [1, 2], "width": [4, 8, 16], "act": ["relu", "tanh"]}

    class Continuous(ToySpace):
        def suggest(self, trial):
            return {"depth": 1, "width": 4, "act": "relu", "lr": trial.suggest_float("lr", 0, 1)}

    with pytest.raises(NasntkError, match="is continuous"):
        grid_of(Continuous())


def test_samplers_and_pruners_by_name() -> None:
    space = ToySpace()
    assert isinstance(make_sampler("random", 0, space=space), optuna.samplers.RandomSampler)
    assert isinstance(make_sampler("grid", 0, space=space), optuna.samplers.GridSampler)
    own = optuna.samplers.TPESampler(seed=1)
    assert make_sampler(own, 0, space=space) is own
    assert isinstance(make_pruner(None, None), optuna.pruners.NopPruner)
    assert isinstance(make_pruner(None, 8), optuna.pruners.SuccessiveHalvingPruner)
    with pytest.raises(NasntkError, match="needs a first, small N"):
        make_pruner("median", None)
    with pytest.raises(NasntkError, match="unknown pruner"):
        make_pruner("sometimes", 8)


def test_worker_seeds() -> None:
    assert worker_seed(7, 0, 0) == 7  # the first worker of a fresh study: the seed itself
    seeds = {worker_seed(7, i, done) for i in range(3) for done in (0, 5)}
    assert len(seeds) == 6  # every worker and every resume its own
    assert worker_seed(7, 1, 5) == worker_seed(7, 1, 5)
    assert worker_seed(None, 1, 5) is None
