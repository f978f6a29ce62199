"""An aggregate score as a search objective: the study's reference sample (nasntk.study.reference)
is drawn once, stored in the study, reused on resume, and every trial's value is the percentile
aggregate of its own terms against it — checked independently through the public scoring API."""

from __future__ import annotations

import json

import numpy as np
import pytest
from optuna.trial import TrialState
from search_toy_space import IMG, TINY, ToySpace

from nasntk import proxies
from nasntk.proxies.aggregate import percentile_aggregate
from nasntk.proxies.default import DEFAULT_TERMS
from nasntk.study import search
from nasntk.study.reference import REFERENCE_ATTR, aggregate_terms, stored_reference

N = TINY["n_kernel"]
TERMS = ["tenas_ntk", "tenas_lr"]


def test_aggregate_terms_of_the_requested_scores():
    assert aggregate_terms(["pntk_live_g", "pntk_cond"]) == []
    assert aggregate_terms(["tenas", "az_nas"]) == [*TERMS, *proxies.get("az_nas").terms]
    assert aggregate_terms(["default"]) == list(DEFAULT_TERMS)


def test_an_aggregate_objective_is_ranked_against_the_stored_reference(db: str) -> None:
    kw = dict(storage=db, seed=0, sampler="random", objective="tenas", reference_size=5, **TINY)
    study = search(ToySpace(), trials=3, **kw)
    stored = study.user_attrs[REFERENCE_ATTR]
    assert stored["size"] == 5 and len(stored["specs"]) == len(set(stored["specs"])) == 5
    ref = stored_reference(study.user_attrs).values
    assert set(TERMS) <= set(ref)
    # each member's terms, recomputed independently
    space = ToySpace()
    for i, text in enumerate(stored["specs"]):
        got = proxies.score(text, space=space, data="digits", n=N, img_size=IMG, scores=TERMS)
        for t in TERMS:
            assert ref[t][i] == pytest.approx(got[t], rel=1e-9, nan_ok=True)
    directions = {t: proxies.get(t).direction for t in TERMS}
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert complete
    for trial in complete:
        spec = json.loads(trial.user_attrs["spec"])
        if trial.user_attrs.get("reference_member"):
            assert space.format(spec) in stored["specs"]
        mine = proxies.score(spec, space=space, data="digits", n=N, img_size=IMG, scores=TERMS)
        want = percentile_aggregate({t: mine[t] for t in TERMS}, ref, directions, "rank")
        assert trial.value == pytest.approx(want, rel=1e-9)
    # resume: the reference is not drawn again, the completed values stay
    before = {t.number: t.value for t in complete}
    again = search(ToySpace(), trials=5, **kw)
    assert again.user_attrs[REFERENCE_ATTR] == stored
    for t in again.get_trials(states=(TrialState.COMPLETE,)):
        if t.number in before:
            assert t.value == before[t.number]


def test_no_reference_without_an_aggregate(db: str) -> None:
    study = search(
        ToySpace(), trials=2, storage=db, seed=0, sampler="random", objective="pntk_live_g", **TINY
    )
    assert REFERENCE_ATTR not in study.user_attrs
    assert np.all([not proxies.get(s).is_aggregate for s in proxies.names()[:8]])
