"""Tests of nasntk.study.dedup: a spec already in the study is never scored twice."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import optuna
import pytest
from invariants import assert_search_invariant, builds
from optuna.trial import TrialState, create_trial
from search_toy_space import TINY, ToySpace

from nasntk.leaderboard import rows, summary
from nasntk.study import search
from nasntk.study.dedup import _applies, earlier_outcome


def test_duplicates_reuse_values_and_are_never_rebuilt(db: str, build_log: Path) -> None:
    class TwoSpecs(ToySpace):
        def suggest(self, trial):  # only two distinct architectures
            return {"depth": 1, "width": trial.suggest_categorical("width", [4, 8]), "act": "relu"}

        def key(self, spec):  # an opaque key, as mobilenet and regnet have
            return "two:" + str(hash(json.dumps(self.validate(spec), sort_keys=True)) % 10**8)

    study = search(TwoSpecs(), trials=8, storage=db, seed=0, sampler="random", **TINY)
    assert len(study.trials) == 8
    by_key: dict[str, list] = {}
    for t in study.trials:
        assert t.state == TrialState.COMPLETE
        by_key.setdefault(t.user_attrs["spec"], []).append(t)
    assert len(by_key) == 2
    assert {json.loads(t.user_attrs["spec"])["width"] for t in study.trials} == {4, 8}
    for trials in by_key.values():
        first, *dups = trials
        assert "duplicate_of" not in first.user_attrs
        for d in dups:
            assert d.user_attrs["duplicate_of"] == first.number
            assert d.values == first.values
    # Scored (built for real) exactly once per distinct spec.
    assert builds(build_log) == Counter({k: 1 for k in by_key})
    assert_search_invariant(study.trials, counted=8, built=builds(build_log))
    assert len(rows(study)) == 2  # the leaderboard shows each architecture once
    assert summary(study)["duplicates"] == 6


@pytest.mark.parametrize(
    "state, attrs, applies",
    [
        (TrialState.COMPLETE, {}, True),
        (TrialState.FAIL, {"fail_reason": "RuntimeError: boom"}, True),
        (TrialState.FAIL, {"fail_reason": "non-finite default"}, True),
        (TrialState.FAIL, {"fail_reason": "interrupted"}, False),
        (TrialState.FAIL, {"fail_reason": "interrupted: the search process stopped"}, False),
        (TrialState.FAIL, {}, False),  # its process stopped before saying why: score again
        (TrialState.PRUNED, {"prune_reason": "multi-fidelity: default=1 at N=8"}, True),
        (TrialState.PRUNED, {"prune_reason": "over budget: params 9 > max-params 8"}, False),
    ],
)
def test_which_earlier_outcomes_apply(state, attrs, applies) -> None:
    values = [1.0] if state == TrialState.COMPLETE else None
    trial = create_trial(state=state, values=values, user_attrs=attrs)
    assert _applies(trial) is applies


def test_a_later_trial_finds_the_earliest_applicable_one() -> None:
    study = optuna.create_study()
    spec = {"key": "k1", "spec": "{}"}
    study.add_trial(create_trial(state=TrialState.FAIL, user_attrs={**spec, "fail_reason": "x"}))
    study.add_trial(create_trial(value=2.0, user_attrs=spec))
    study.add_trial(create_trial(value=3.0, user_attrs={**spec, "key": "k2"}))
    trial = study.ask()
    assert earlier_outcome(trial, "k1").number == 1  # COMPLETE preferred over the failure
    assert earlier_outcome(trial, "k2").number == 2
    assert earlier_outcome(trial, "k3") is None
