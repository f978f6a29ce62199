"""Tests of nasntk.study.record: the trial record as it is on disk, and its readers."""

from __future__ import annotations

import math

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from nasntk.leaderboard import rows, summary
from nasntk.study import record
from nasntk.study.record import Failure, Prune

# What a study written by nasntk holds (literal: the format on disk, never to change).
STORED_CONFIG = {
    "space_options": {},
    "data": "digits",
    "objectives": ["default"],
    "directions": ["maximize"],
    "scores": ["default", "pntk_cond"],
    "n_kernel": 8,
    "seeds": 1,
    "bn": None,
    "init_seed": 0,
    "data_seed": 0,
    "img_size": 8,
    "proxy_options": {},
    "space": "search_toy_space:ToySpace",
    "num_classes": 10,
    "in_chans": 1,
}
ATTRS = {
    "worker": "host:123:45678",
    "space": "search_toy_space:ToySpace",
    "data": "digits",
    "num_classes": 10,
    "in_chans": 1,
    "img_size": 8,
    "spec": '{"act":"relu","depth":1,"width":4}',
    "key": "d1-w4-relu",
    "arch": "d1-w4-relu",
    "params": 310,
    "flops": 300,
    "time_budget": 0.001,
    "default": 1.5,
    "pntk_cond": "inf",
    "reasons": {"pntk_cond": "singular"},
    "n": 8,
    "time_build": 0.01,
    "time_score": 0.02,
    "time_total": 0.05,
}


@pytest.mark.parametrize(
    "reason, kind",
    [
        ("interrupted", Failure.INTERRUPTED),
        ("interrupted: the search process stopped", Failure.INTERRUPTED),
        (None, Failure.INTERRUPTED),  # FAIL without a reason: its process stopped mid-trial
        ("suggest: toy: spec out of range", Failure.SUGGEST),
        ("out of memory", Failure.OUT_OF_MEMORY),
        ("non-finite default: singular", Failure.NON_FINITE),
        ("RuntimeError: toy: cannot build depth 2 at width 16", Failure.ERROR),
        ("unknown score option(s) x", Failure.ERROR),
    ],
)
def test_failure_kinds_of_stored_reasons(reason, kind) -> None:
    assert Failure.of(reason) is kind


def test_failure_reasons_are_written_as_before() -> None:
    assert Failure.INTERRUPTED.reason() == "interrupted"
    assert Failure.INTERRUPTED.reason("the search process stopped") == (
        "interrupted: the search process stopped"
    )
    assert Failure.SUGGEST.reason("boom") == "suggest: boom"
    assert Failure.OUT_OF_MEMORY.reason() == "out of memory"
    assert Failure.NON_FINITE.reason("default: why") == "non-finite default: why"
    assert Failure.ERROR.reason("ValueError: x") == "ValueError: x"
    assert Prune.OVER_BUDGET.reason("params 9 > max-params 8") == (
        "over budget: params 9 > max-params 8"
    )
    assert Prune.of("multi-fidelity: default=1 at N=8") is Prune.MULTI_FIDELITY
    assert Prune.of("something else") is None and Prune.of(None) is None


def test_which_trials_count() -> None:
    def fail(**attrs):
        return create_trial(state=TrialState.FAIL, user_attrs=attrs)

    assert record.counted(create_trial(value=1.0))
    assert record.counted(create_trial(state=TrialState.PRUNED))
    assert record.counted(fail(fail_reason="out of memory"))
    assert not record.counted(fail(fail_reason="interrupted"))
    assert not record.counted(fail())
    assert record.interrupted(fail()) and not record.interrupted(create_trial(value=1.0))


def test_scores_are_every_number_that_is_no_record_key() -> None:
    trial = create_trial(value=1.5, user_attrs={**ATTRS, "default_std": 0.1})
    got = record.scores(trial)
    assert list(got) == ["default", "pntk_cond", "default_std"]
    assert got["default"] == 1.5 and math.isinf(got["pntk_cond"])
    assert record.spec(trial) == {"act": "relu", "depth": 1, "width": 4}


def test_values() -> None:
    assert record.encode_float(math.inf) == "inf" and record.encode_float(2.0) == 2.0
    assert math.isnan(record.decode_float("nan")) and record.decode_float("abc") == "abc"
    assert record.encode_spec({"b": 1, "a": [1, 2]}) == '{"a":[1,2],"b":1}'


def test_objective_names() -> None:
    foreign = optuna.create_study()
    assert record.objective_names(foreign) == ["value"]
    assert record.objective_names(optuna.create_study(directions=["minimize"] * 2)) == [
        "value_0",
        "value_1",
    ]
    ours = optuna.create_study(direction="maximize")
    ours.set_user_attr(record.STUDY_ATTR, STORED_CONFIG)
    assert record.objective_names(ours) == ["default"]
    assert record.study_config(ours) == STORED_CONFIG


def test_a_study_on_disk_displays_as_before() -> None:
    """A study as written by earlier versions gives the same row, field for field."""
    study = optuna.create_study(direction="maximize")
    study.set_user_attr(record.STUDY_ATTR, STORED_CONFIG)
    study.add_trial(create_trial(value=1.5, user_attrs=ATTRS))
    dup = {**ATTRS, "duplicate_of": 0, "time_total": 0.001}
    study.add_trial(create_trial(value=1.5, user_attrs=dup))
    failed = {"fail_reason": "interrupted: the search process stopped"}
    study.add_trial(create_trial(state=TrialState.FAIL, user_attrs=failed))
    (row,) = rows(study)
    assert row == {
        "rank": 1,
        "trial": 0,
        "arch": "d1-w4-relu",
        "default": 1.5,
        "pntk_cond": math.inf,
        "params": 310,
        "flops": 300,
        "time_s": 0.05,
        "space": "search_toy_space:ToySpace",
        "data": "digits",
        "num_classes": 10,
        "in_chans": 1,
        "img_size": 8,
        "spec": {"act": "relu", "depth": 1, "width": 4},
    }
    s = summary(study)
    assert (s["complete"], s["duplicates"], s["fail"]) == (2, 1, 1)
    assert s["failures"] == {"interrupted: the search process stopped": 1}
    assert record.counted_trials(study) == 2
