"""Tests of nasntk.study.jobs: a worker's share of trials, stopped by systematic failures."""

from __future__ import annotations

import pytest
import torch
from optuna.trial import TrialState, create_trial
from search_toy_space import TINY, ToySpace

from nasntk.errors import NasntkError
from nasntk.study import load_study, search
from nasntk.study.jobs import SystematicFailure


def test_a_setting_that_breaks_every_candidate_stops_the_search(db: str) -> None:
    class Broken(ToySpace):
        def build(self, spec, **kw):
            if torch.empty(0).device.type != "meta":
                raise RuntimeError("no kernel for this machine")
            return super().build(spec, **kw)

    with pytest.raises(NasntkError, match="first 10 candidates all failed with: RuntimeError"):
        search(Broken(), trials=30, storage=db, sampler="grid", **TINY)
    study = load_study(db)
    assert len(study.trials) == 10  # stopped there, the failures are kept


class _Study:
    stopped = False

    def stop(self) -> None:
        self.stopped = True


def _fail(reason: str, **attrs) -> object:
    return create_trial(state=TrialState.FAIL, user_attrs={"fail_reason": reason, **attrs})


def test_the_guard_stops_only_on_identical_failures_before_any_success() -> None:
    study, guard = _Study(), SystematicFailure(limit=3)
    for _ in range(2):
        guard(study, _fail("same"))
    guard(study, _fail("same", duplicate_of=0))  # a reused failure is not evidence
    assert not study.stopped
    guard(study, _fail("same"))
    assert study.stopped and guard.reason == "same"

    study, guard = _Study(), SystematicFailure(limit=3)
    guard(study, create_trial(value=1.0))  # something works: never stop
    for _ in range(5):
        guard(study, _fail("same"))
    assert not study.stopped and guard.reason is None
