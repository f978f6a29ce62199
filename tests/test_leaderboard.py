"""Tests of nasntk.leaderboard: ranked rows of a study and their renderings."""

from __future__ import annotations

import csv
import io
import json

import pytest
from optuna.trial import TrialState
from search_toy_space import TINY, ToySpace

from nasntk.errors import NasntkError
from nasntk.leaderboard import export_row, pareto_ranks, render, rows, study_info, summary
from nasntk.study import search


def test_pareto_ranks_small_example() -> None:
    # minimise both: (1,3) (2,2) (3,1) are the front; (2,3) is dominated by (1,3) and (2,2);
    # (3,3) is dominated by (2,3) too, so it is on the third front.
    points = [(1, 3), (2, 2), (3, 1), (2, 3), (3, 3)]
    assert pareto_ranks(points) == [1, 1, 1, 2, 3]


def test_multi_objective_leaderboard_is_pareto_sorted(db: str) -> None:
    study = search(
        ToySpace(),
        trials=10,
        objective="pntk_cond,params:min",
        sampler="nsga2",
        seed=0,
        storage=db,
        **TINY,
    )
    assert [d.name for d in study.directions] == ["MINIMIZE", "MINIMIZE"]
    ranked = rows(study)
    assert ranked and [r["rank"] for r in ranked] == list(range(1, len(ranked) + 1))
    pts = [(r["pntk_cond"], r["params"]) for r in ranked]

    def dominates(a, b):
        return all(x <= y for x, y in zip(a, b, strict=True)) and any(
            x < y for x, y in zip(a, b, strict=True)
        )

    for r, p in zip(ranked, pts, strict=True):  # naive check of each row's front
        better = [
            q for q, s in zip(pts, ranked, strict=True) if s["pareto_rank"] < r["pareto_rank"]
        ]
        same = [q for q, s in zip(pts, ranked, strict=True) if s["pareto_rank"] == r["pareto_rank"]]
        assert not any(dominates(q, p) for q in same)
        if r["pareto_rank"] > 1:
            assert any(dominates(q, p) for q in better)
    assert [r["pareto_rank"] for r in ranked] == sorted(r["pareto_rank"] for r in ranked)


def test_single_objective_leaderboard_order(db: str) -> None:
    study = search(ToySpace(), trials=6, objective="pntk_cond", storage=db, seed=3, **TINY)
    ranked = rows(study)
    values = [r["pntk_cond"] for r in ranked]
    assert values == sorted(values)  # minimised
    best = min(t.value for t in study.trials if t.state == TrialState.COMPLETE)
    assert ranked[0]["pntk_cond"] == best
    assert len(rows(study, top=2)) == min(2, len(ranked))
    with pytest.raises(NasntkError, match="--top must be at least 1"):
        rows(study, top=0)


def test_leaderboard_exports_parse_back(db: str) -> None:
    study = search(ToySpace(), trials=5, storage=db, seed=0, **TINY)
    ranked = rows(study)
    parsed = list(csv.DictReader(io.StringIO(render(ranked, "csv"))))
    assert [int(r["rank"]) for r in parsed] == [r["rank"] for r in ranked]
    assert [int(r["trial"]) for r in parsed] == [r["trial"] for r in ranked]
    assert [float(r["default"]) for r in parsed] == [r["default"] for r in ranked]
    assert [json.loads(r["spec"]) for r in parsed] == [r["spec"] for r in ranked]

    as_json = json.loads(render(ranked, "json"))
    assert [r["trial"] for r in as_json] == [r["trial"] for r in ranked]
    assert [r["spec"] for r in as_json] == [r["spec"] for r in ranked]

    md = render(ranked, "markdown").splitlines()
    assert len(md) == 2 + len(ranked) and md[0].startswith("| rank | trial | arch")
    assert md[1].startswith("|---|---|---|")

    page = render(ranked, "html", images={"history": b"\x89PNG fake"}, title="t")
    assert page.startswith("<!DOCTYPE html>") and page.count("<tr>") == len(ranked) + 1
    for r in ranked:
        assert f'<td class="arch"><div title="{r["arch"]}">' in page
    assert "data:image/png;base64,iVBORyBmYWtl" in page
    with pytest.raises(NasntkError, match="unknown format"):
        render(ranked, "xml")

    row = export_row(study, 2)
    assert row["trial"] == ranked[1]["trial"] and row["study"] == study.study_name
    with pytest.raises(NasntkError, match="no rank 99"):
        export_row(study, 99)
    info = study_info(study)
    assert info["space"] == "search_toy_space:ToySpace" and info["objectives"] == "default"
    assert info["trials"].startswith(f"{summary(study)['trials']} (")


def test_chance_warning_for_kernel_regression_below_chance():
    from nasntk.leaderboard import chance_warnings

    rows = [{"pntk_krr": v, "num_classes": 10} for v in (0.033, 0.1, 0.05, 0.2)]
    (warning,) = chance_warnings(rows)  # median 0.075 < 1/10
    assert "0.075" in warning and "chance (0.100 for 10 classes)" in warning
    assert chance_warnings([{"pntk_krr": v, "num_classes": 10} for v in (0.3, 0.4)]) == []
    assert chance_warnings([{"default": 1.0, "num_classes": 10}]) == []  # no KRR recorded
