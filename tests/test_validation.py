"""nasntk.validation: honest correlations, seeded selection, resumable runs."""

from __future__ import annotations

import math
import random

import numpy as np
import optuna
import pytest
from scipy import stats

from nasntk import training
from nasntk import validation as V
from nasntk.errors import NasntkError
from nasntk.leaderboard import rows as leaderboard_rows


# ---------------------------------------------------------------------------------------------
# Correlations and selection (pure)
# ---------------------------------------------------------------------------------------------
def _naive_kendall_tau_b(x, y):
    """τ-b = (C − D) / sqrt((n0 − n1)(n0 − n2)) by counting pairs (O(n²))."""
    n = len(x)
    c = d = tx = ty = 0
    for i in range(n):
        for j in range(i + 1, n):
            sx = np.sign(x[i] - x[j])
            sy = np.sign(y[i] - y[j])
            if sx == 0 and sy == 0:
                continue
            if sx == 0:
                tx += 1
            elif sy == 0:
                ty += 1
            elif sx == sy:
                c += 1
            else:
                d += 1
    return (c - d) / math.sqrt((c + d + tx) * (c + d + ty))


def _average_ranks(v):
    order = sorted(range(len(v)), key=lambda i: v[i])
    ranks = [0.0] * len(v)
    i = 0
    while i < len(v):
        j = i
        while j + 1 < len(v) and v[order[j + 1]] == v[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def _naive_spearman(x, y):
    return float(np.corrcoef(_average_ranks(x), _average_ranks(y))[0, 1])


def test_correlate_matches_naive_pair_counting_and_orients_minimize_scores():
    rng = np.random.default_rng(0)
    acc = rng.uniform(0.5, 0.9, 25).round(2).tolist()  # rounding makes ties
    noisy = (np.array(acc) + rng.normal(0, 0.05, 25)).round(2).tolist()
    cond = (-np.array(noisy)).tolist()  # lower is better: the same ranking, negated
    out = V.correlate({"up": noisy, "cond": cond}, acc, {"up": "maximize", "cond": "minimize"})
    assert out["up"]["kendall"] == pytest.approx(_naive_kendall_tau_b(noisy, acc), abs=1e-12)
    assert out["up"]["spearman"] == pytest.approx(_naive_spearman(noisy, acc), abs=1e-12)
    assert out["up"]["kendall"] == pytest.approx(stats.kendalltau(noisy, acc).statistic, abs=1e-12)
    assert out["cond"]["kendall"] == pytest.approx(out["up"]["kendall"], abs=1e-12)
    assert out["cond"]["spearman"] == pytest.approx(out["up"]["spearman"], abs=1e-12)
    assert out["up"]["n"] == 25


def test_correlate_perfect_reversed_and_missing_accuracy():
    acc = [0.1, 0.2, 0.3, 0.4, math.nan]
    out = V.correlate({"a": [1, 2, 3, 4, 100], "b": [4, 3, 2, 1, -100]}, acc)
    assert out["a"]["kendall"] == pytest.approx(1.0) and out["a"]["spearman"] == pytest.approx(1.0)
    assert out["b"]["kendall"] == pytest.approx(-1.0) and out["b"]["spearman"] == pytest.approx(
        -1.0
    )
    assert out["a"]["n"] == 4  # the untrainable candidate is dropped
    assert math.isnan(V.correlate({"c": [1, 1, 1, 1, 1]}, acc)["c"]["kendall"])


def test_select_takes_top_then_seeded_random_from_the_rest():
    ranked = [{"rank": i + 1, "trial": 100 + i} for i in range(20)]
    a = V.select(ranked, top=3, random_k=4, seed=5)
    assert [r["rank"] for r in a[:3]] == [1, 2, 3] and {r["role"] for r in a[:3]} == {"top"}
    tail = [r["rank"] for r in a[3:]]
    assert len(tail) == 4 and all(r > 3 for r in tail) and tail == sorted(tail)
    assert {r["role"] for r in a[3:]} == {"random"}
    expected = sorted(random.Random(5).sample(range(17), 4))
    assert tail == [i + 4 for i in expected]
    assert V.select(ranked, top=3, random_k=4, seed=5) == a
    assert len(V.select(ranked[:5], top=3, random_k=10)) == 5  # capped by what there is
    with pytest.raises(NasntkError):
        V.select(ranked, top=0, random_k=0)


# ---------------------------------------------------------------------------------------------
# validate() on a real (tiny) study: stored results, resume, budgets, report files, the CLI
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    from nasntk.study import search

    folder = tmp_path_factory.mktemp("validate")
    url = f"sqlite:///{folder / 'study.db'}"
    search(
        "nb201",
        data="digits",
        trials=6,
        n_kernel=8,
        img_size=8,
        space_options={"C": 2, "N": 1},
        storage=url,
        study_name="tiny",
        seed=0,
        sampler="random",
        threads=1,
    )
    return url


def test_validate_resumes_instead_of_retraining(tiny_study, tmp_path, monkeypatch):
    calls = []
    real = training.train

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "train", counting)
    opts = dict(storage=tiny_study, top=2, random_k=2, epochs=1, n=200, batch_size=32)
    first = V.validate("tiny", out=tmp_path / "rep", **opts)
    assert len(calls) == 4 and first.trained == 4 and first.reused == 0
    assert [r["role"] for r in first.rows] == ["top", "top", "random", "random"]
    assert all(0.0 <= r["val_acc"] <= 1.0 for r in first.rows)

    # A fresh study object from the storage: the results were written to the database.
    second = V.validate("tiny", **opts)
    assert len(calls) == 4 and second.trained == 0 and second.reused == 4
    assert [r["val_acc"] for r in second.rows] == [r["val_acc"] for r in first.rows]
    assert second.correlations == first.correlations

    # Another budget trains again; --retrain ignores what is stored.
    third = V.validate("tiny", **{**opts, "epochs": 2})
    assert len(calls) == 8 and third.trained == 4
    V.validate("tiny", retrain=True, **opts)
    assert len(calls) == 12

    # Every stored score is correlated; the report and one plot per score exist.
    names = V.score_names(
        leaderboard_rows(optuna.load_study(study_name="tiny", storage=tiny_study))
    )
    assert "default" in names and "params" in names
    assert set(first.correlations) == set(names)
    for name in names:
        assert (tmp_path / "rep" / f"scatter_{name}.png").stat().st_size > 1000
    report = (tmp_path / "rep" / "report.md").read_text()
    assert "Kendall" in report and "| default |" in report


def test_validate_accuracy_is_a_real_training_result(tiny_study):
    """Recompute one stored number by hand: rebuild, split, train with the same recipe."""
    from nasntk import data, leaderboard
    from nasntk.study import build, load_study

    study = load_study(tiny_study, "tiny")
    res = V.validate(study, top=1, random_k=0, epochs=1, n=200, batch_size=32)
    row = leaderboard.rows(study)[0]
    batch = data.load("digits", 200, seed=0, in_chans=1, img_size=8)
    split = training.split(batch.x, batch.y, val_fraction=0.2, seed=0)
    model = build(row, seed=0, num_classes=10, in_chans=1, img_size=8)
    ref = training.train(model, *split, training.TrainConfig(epochs=1, batch_size=32, seed=0))
    assert res.rows[0]["val_acc"] == pytest.approx(ref.val_acc)


def test_validate_cli(tiny_study, tmp_path, capsys):
    from nasntk.cli.main import main

    args = ["validate", "--storage", tiny_study, "--study", "tiny", "--top", "1", "--random", "1"]
    args += ["--epochs", "1", "--n", "200", "--out", str(tmp_path / "out")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Kendall" in out and "default" in out
    assert (tmp_path / "out" / "report.md").is_file()
    assert main(["validate", "--storage", tiny_study, "--study", "nope"]) == 2
    assert main(["validate", "--storage", tiny_study, "--study", "tiny", "--optimizer", "x"]) == 2
    err = capsys.readouterr().err
    assert "nope" in err and "optimizer" in err


# ---------------------------------------------------------------------------------------------
# refine(): the top-K re-ranked by a short training run
# ---------------------------------------------------------------------------------------------
def test_refine_reranks_the_top_by_trained_accuracy_and_reuses_validate_results(tiny_study):
    from nasntk.refine import refine
    from nasntk.study import load_study

    study = load_study(tiny_study, "tiny")
    opts = dict(top=4, epochs=2, n=200, batch_size=32)
    res = refine(study, **opts)
    assert [r["refined_rank"] for r in res.rows] == [1, 2, 3, 4]
    # the same four candidates as the zero-cost top 4, now ordered by validation accuracy (ties
    # keep the zero-cost order)
    assert sorted(r["rank"] for r in res.rows) == [1, 2, 3, 4]
    keys = [(-r["val_acc"], r["rank"]) for r in res.rows]
    assert keys == sorted(keys) and res.best is res.rows[0]
    # each accuracy is validate's for the same budget (one store: the second call trains nothing)
    ref = V.validate(study, top=4, random_k=0, epochs=2, n=200, batch_size=32)
    assert ref.trained == 0 and ref.reused == 4
    by_trial = {r["trial"]: r["val_acc"] for r in ref.rows}
    assert all(r["val_acc"] == by_trial[r["trial"]] for r in res.rows)
    again = refine(study, **opts)
    assert again.trained == 0 and [r["trial"] for r in again.rows] == [r["trial"] for r in res.rows]
    with pytest.raises(NasntkError, match="positive number"):
        refine(study, top=0)


def test_refine_cli(tiny_study, capsys):
    from nasntk.cli.main import main

    args = ["refine", "--storage", tiny_study, "--study", "tiny", "--top", "2", "--n", "200"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "rank 1 after refinement" in out and "zero-cost rank" in out


def test_validate_cli_defaults_report_folder_last_study_and_ci(tiny_study, tmp_path, capsys,
                                                               monkeypatch):  # fmt: skip
    from nasntk.cli.main import main

    monkeypatch.chdir(tmp_path)
    args = ["validate", "--storage", tiny_study, "--top", "2", "--random", "1", "--epochs", "1"]
    assert main([*args, "--n", "200"]) == 0
    captured = capsys.readouterr()
    assert "validating study tiny (the one searched last)" in captured.err
    said = " ".join(captured.out.split())
    assert (tmp_path / "validate" / "tiny" / "report.md").is_file()
    assert "report: validate/tiny/report.md" in said
    assert "τ 95% CI" in captured.out and "3 pairs only" in said  # fewer than 10: warned
    report = (tmp_path / "validate" / "tiny" / "report.md").read_text()
    assert "τ 95 % CI" in report and "3 pairs only" in report


def test_correlate_bootstrap_ci_brackets_tau():
    rng = np.random.default_rng(0)
    acc = rng.normal(size=40)
    score = acc + rng.normal(scale=0.8, size=40)
    c = V.correlate({"s": score}, acc)["s"]
    assert c["kendall_low"] < c["kendall"] < c["kendall_high"]
    ref = stats.kendalltau(score, acc).statistic
    assert c["kendall"] == pytest.approx(ref)
    assert 0 < c["kendall_low"] and c["kendall_high"] < 1
