"""Tests of nasntk.study.plan: what is resolved and checked before any trial runs."""

from __future__ import annotations

import pytest
from search_toy_space import TINY, ToySpace

from nasntk.errors import NasntkError
from nasntk.study.config import SearchConfig
from nasntk.study.plan import check_budget_feasible, prepare


def test_prepare_resolves_the_space_the_shape_and_the_study(db: str) -> None:
    plan = prepare(SearchConfig(ToySpace(), storage=db, **TINY))
    assert plan.space_ref == "search_toy_space:ToySpace"
    assert plan.shape == {"num_classes": 10, "in_chans": 1, "img_size": 8}
    assert plan.study_name == "search_toy_space:ToySpace-digits-default-n12" and plan.url == db


def test_the_remaining_trials_are_split_among_the_workers(db: str) -> None:
    plan = prepare(SearchConfig(ToySpace(), storage=db, trials=7, workers=3, seed=4, **TINY))
    jobs = plan.jobs(done=2)
    assert [j.n_trials for j in jobs] == [2, 2, 1]
    assert len({j.seed for j in jobs}) == 3  # each worker its own sampler seed
    assert all(j.config.space == plan.space_ref for j in jobs)  # what a process can rebuild
    assert [j.n_trials for j in plan.jobs(done=6)] == [1]  # workers with nothing to do: none
    assert plan.jobs(done=7) == []
    assert [
        j.n_trials for j in prepare(SearchConfig(ToySpace(), timeout=5, storage=db)).jobs(0)
    ] == [None]


def test_budgets_that_exclude_every_architecture_are_refused() -> None:
    shape = {"num_classes": 10, "in_chans": 1, "img_size": 8}
    check_budget_feasible(ToySpace(), shape, max_params=700, max_flops=None)
    with pytest.raises(NasntkError, match=r"--max-params 10 \(smallest sampled: 3"):
        check_budget_feasible(ToySpace(), shape, max_params=10, max_flops=None)


def test_data_smaller_than_n_is_refused(db: str) -> None:
    with pytest.raises(NasntkError, match="fewer than N=5000; use --n-kernel 1797 or fewer"):
        prepare(SearchConfig(ToySpace(), storage=db, n_kernel=5000))


def test_a_new_study_names_its_metrics_for_optuna_tools(db: str) -> None:
    # optuna-dashboard reads Study.metric_names; without them it shows "Objective 0"
    config = SearchConfig(ToySpace(), storage=db, objective="default,params:min", **TINY)
    study = prepare(config).open_study()
    assert study.metric_names == ["default", "params"]
    reopened = prepare(config).open_study()  # resuming keeps them
    assert reopened.metric_names == ["default", "params"]
