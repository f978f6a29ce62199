"""Tests of the facade nasntk.search (= nasntk.study.search): resume, bad input, the Python API."""

from __future__ import annotations

from pathlib import Path

import pytest
from optuna.trial import TrialState
from search_toy_space import IMG, TINY, ToySpace

import nasntk
from nasntk.errors import NasntkError
from nasntk.study import SearchConfig, search


def test_the_package_function_is_the_facade() -> None:
    assert nasntk.search is search and callable(nasntk.search)
    assert nasntk.build is nasntk.study.build


def test_resume_counts_existing_trials(db: str) -> None:
    first = search(ToySpace(), trials=3, storage=db, seed=0, **TINY)
    before = [(t.number, t.state, t.values) for t in first.trials]
    again = search(ToySpace(), trials=5, storage=db, seed=0, **TINY)
    assert again.study_name == first.study_name
    assert len(again.trials) == 5
    assert [(t.number, t.state, t.values) for t in again.trials[:3]] == before
    done = search(ToySpace(), trials=5, storage=db, seed=0, **TINY)  # nothing left to do
    assert len(done.trials) == 5


def test_a_config_and_keyword_options_run_the_same_search(tmp_path: Path) -> None:
    a = search(ToySpace(), trials=3, storage=f"sqlite:///{tmp_path / 'a.db'}", seed=0, **TINY)
    config = SearchConfig(ToySpace(), trials=3, storage=f"sqlite:///{tmp_path / 'b.db'}", seed=0)
    b = search(config, **TINY)
    assert a.study_name == b.study_name
    assert [t.values for t in a.trials] == [t.values for t in b.trials]


def test_resume_with_other_settings_is_refused(db: str) -> None:
    search(ToySpace(), trials=1, storage=db, study_name="s", **TINY)
    with pytest.raises(NasntkError, match="exists with n_kernel"):
        search(ToySpace(), trials=1, storage=db, study_name="s", n_kernel=16, img_size=IMG)
    with pytest.raises(NasntkError, match="other objectives"):
        search(ToySpace(), trials=1, storage=db, study_name="s", objective="pntk_cond", **TINY)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"objective": "no_such_score"}, "unknown score"),
        ({"n_kernel": 3}, ">= 4"),
        ({"n_low": 20}, "n-low"),
        ({"sampler": "annealing"}, "unknown sampler"),
        ({"data": "npz:/no/such/file.npz"}, "file.npz"),
        ({"workers": 0}, "workers"),
        ({"objective": "pntk_cond:sideways"}, "suffix"),
        ({"objective": "pntk_cond,pntk_krr", "n_low": 4}, "single objective"),
        ({"no_such_option": 1}, "unknown score option"),
        ({"max_params": 10}, "budget excludes every architecture"),
    ],
)
def test_bad_input_raises_nasntk_error(db: str, kwargs: dict, message: str) -> None:
    opts = {**TINY, **kwargs}
    with pytest.raises(NasntkError, match=message):
        search(ToySpace(), trials=1, storage=db, **opts)


def test_unknown_space_is_a_nasntk_error(db: str) -> None:
    with pytest.raises(NasntkError, match="unknown search space"):
        search("no_such_space", trials=1, storage=db, **TINY)


def test_a_timeout_alone_runs_until_the_deadline(db: str) -> None:
    study = search(ToySpace(), timeout=1.0, storage=db, seed=0, **TINY)
    finished = study.get_trials(states=(TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED))
    assert finished and not study.get_trials(states=(TrialState.RUNNING,))
