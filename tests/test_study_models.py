"""Tests of nasntk.study.models: rebuilding the scored networks from rows, specs and records."""

from __future__ import annotations

import json

import pytest
import torch
from search_toy_space import TINY, ToySpace, n_params

from nasntk.errors import NasntkError
from nasntk.leaderboard import render, rows
from nasntk.study import build, search
from nasntk.study.models import seeded_build, shape_of


def test_build_from_rows_and_specs(db: str) -> None:
    study = search(ToySpace(), trials=3, storage=db, seed=0, **TINY)
    row = rows(study)[0]
    model = build(row)
    assert n_params(model) == row["params"]
    best = study.best_trial.user_attrs  # the README's `build(study.best_trial.user_attrs)`
    assert n_params(build(best)) == best["params"]
    exported = json.loads(render([row], "json"))[0]  # what `nasntk export` writes
    assert n_params(build(exported)) == row["params"]
    torch.manual_seed(0)
    assert isinstance(
        build("d2-w8-relu", space=ToySpace(), num_classes=3, in_chans=1, img_size=4),
        torch.nn.Module,
    )
    with pytest.raises(NasntkError, match="must look like"):
        build("d2-x8", space=ToySpace())
    with pytest.raises(NasntkError, match="name the space"):
        build({"depth": 1, "width": 4, "act": "relu"})


def test_a_seeded_build_is_the_same_network_every_time() -> None:
    spec = {"depth": 1, "width": 4, "act": "relu"}
    shape = {"num_classes": 3, "in_chans": 1, "img_size": 4}
    a, b = (seeded_build(ToySpace(), spec, shape, seed=5) for _ in range(2))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    rebuilt = build({"space": "search_toy_space:ToySpace", "spec": spec, **shape}, seed=5)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), rebuilt.parameters(), strict=True))


def test_shape_of_a_batch() -> None:
    from nasntk import data

    batch = data.load("digits", 12, img_size=8)
    assert shape_of(batch) == {"num_classes": 10, "in_chans": 1, "img_size": 8}
