"""Tests of nasntk.search, nasntk.leaderboard and nasntk.plots (Python API, one process).

The search runs the real scoring (nasntk.proxies on the real pNTK) on tiny MLPs of
``tests/search_toy_space.py`` with N = 12 digits images at 8x8. Subprocess tests (kill -9,
Ctrl-C, workers) are in test_cli_search.py.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
from collections import Counter
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState
from search_toy_space import DEPTHS, WIDTHS, FlakySpace, ToySpace, expected_failure

from nasntk import proxies
from nasntk.errors import NasntkError
from nasntk.leaderboard import pareto_ranks, render, rows, summary
from nasntk.search import (
    SearchInterrupted,
    build,
    load_study,
    normalize_storage_url,
    open_storage,
    search,
    study_summaries,
)

N = 12
IMG = 8
TINY = {"n_kernel": N, "img_size": IMG}


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'study.db'}"


@pytest.fixture
def build_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each real (non-meta) build of a toy network appends a line here."""
    path = tmp_path / "builds.log"
    monkeypatch.setenv("TOY_SPACE_LOG", str(path))
    return path


def built_specs(path: Path) -> Counter:
    if not path.exists():
        return Counter()
    return Counter(line.split(" ", 1)[1].strip() for line in path.read_text().splitlines())


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------------------------
# The trial record
# ---------------------------------------------------------------------------------------------
def test_trial_records_match_independent_scoring(db: str) -> None:
    study = search(ToySpace(), trials=4, storage=db, seed=0, sampler="random", **TINY)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(study.trials) == 4 and complete
    kernel_scores = [n for n in proxies.names() if "kernel" in proxies.get(n).needs]
    for t in complete:
        spec = json.loads(t.user_attrs["spec"])
        assert t.user_attrs["space"] == "search_toy_space:ToySpace"
        assert t.user_attrs["data"] == "digits"
        assert t.user_attrs["arch"] == ToySpace().format(spec)
        model = ToySpace().build(spec, num_classes=10, in_chans=1, img_size=IMG)
        assert t.user_attrs["params"] == n_params(model)
        assert t.user_attrs["flops"] > 0
        timings = (
            ("time_total",)
            if "duplicate_of" in t.user_attrs
            else ("time_build", "time_score", "time_total")
        )
        for key in timings:
            assert t.user_attrs[key] >= 0
        # The same scores, computed independently through the public scoring API.
        ref = proxies.score(
            spec, space=ToySpace(), data="digits", n=N, img_size=IMG, scores=kernel_scores
        )
        for name in kernel_scores:
            got = t.user_attrs[name]
            got = float(got) if isinstance(got, str) else got
            assert got == pytest.approx(ref[name], rel=1e-9, abs=1e-12) or (
                math.isinf(ref[name]) and got == ref[name]
            )
        assert t.value == pytest.approx(ref["default"], rel=1e-9)
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE  # the default's direction


def test_search_on_the_real_nb201_space(db: str) -> None:
    from nasntk.search_spaces.nb201 import count_params

    study = search("nb201", space_options={"C": 2, "N": 1}, trials=3, storage=db, seed=0, **TINY)
    assert study.study_name == "nb201-C2-N1-digits-default-n12"
    for t in study.get_trials(states=(TrialState.COMPLETE,)):
        ops = json.loads(t.user_attrs["spec"])["ops"]
        # The stored parameter count against the closed form of the NAS-Bench-201 network.
        assert t.user_attrs["params"] == count_params(ops, num_classes=10, in_chans=1, C=2, N=1)
    row = rows(study)[0]
    assert n_params(build(row)) == row["params"]


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
    assert built_specs(build_log) == Counter({k: 1 for k in by_key})
    assert len(rows(study)) == 2  # the leaderboard shows each architecture once
    assert summary(study)["duplicates"] == 6


# ---------------------------------------------------------------------------------------------
# Budgets
# ---------------------------------------------------------------------------------------------
def test_budget_prunes_before_any_kernel(db: str, build_log: Path) -> None:
    budget = (
        700  # by hand: depth 1 (64*w + w + 10w + 10) fits for w <= 8; depth 2 fits for w = 4, 8
    )
    study = search(
        ToySpace(), trials=12, sampler="grid", storage=db, seed=0, max_params=budget, **TINY
    )
    built = built_specs(build_log)  # before the reference builds below add to the log
    over = 0
    for t in study.trials:
        spec = json.loads(t.user_attrs["spec"])
        real = n_params(ToySpace().build(spec, num_classes=10, in_chans=1, img_size=IMG))
        if real > budget:
            over += 1
            assert t.state == TrialState.PRUNED
            assert t.user_attrs["prune_reason"].startswith("over budget: params")
            assert json.dumps(spec, sort_keys=True, separators=(",", ":")) not in built
        else:
            assert t.state == TrialState.COMPLETE
    assert over == 4  # width 16 at either depth, both activations


def test_budget_that_excludes_everything_is_refused(db: str) -> None:
    with pytest.raises(NasntkError, match="budget excludes every architecture"):
        search(ToySpace(), trials=2, storage=db, max_params=10, **TINY)


# ---------------------------------------------------------------------------------------------
# Failures
# ---------------------------------------------------------------------------------------------
def test_failures_are_counted_by_reason_and_the_search_goes_on(db: str) -> None:
    study = search(FlakySpace(), trials=18, sampler="grid", storage=db, seed=1, **TINY)
    assert len(study.trials) == 18  # the grid: 2 depths x 3 widths x 3 activations
    expected = Counter()
    for t in study.trials:
        kind = expected_failure(json.loads(t.user_attrs["spec"]))
        if kind is None:
            assert t.state == TrialState.COMPLETE
            continue
        assert t.state == TrialState.FAIL
        reason = t.user_attrs["fail_reason"]
        if kind == "build":
            assert reason == "RuntimeError: toy: cannot build depth 2 at width 16"
        else:
            assert reason.startswith("non-finite default")
        expected[reason] += 1
    s = summary(study)
    assert s["failures"] == dict(expected)
    assert s["fail"] == sum(expected.values()) == 2 * 3 + 2  # 6 'zero' nets + 2 unbuildable
    assert s["complete"] == 18 - s["fail"]


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


# ---------------------------------------------------------------------------------------------
# Multi-objective and leaderboard ranking
# ---------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------
# Multi-fidelity
# ---------------------------------------------------------------------------------------------
def test_multi_fidelity_prunes_before_the_full_kernel(db: str) -> None:
    study = search(
        ToySpace(),
        trials=12,
        n_kernel=16,
        n_low=8,
        img_size=IMG,
        sampler="grid",
        seed=0,
        storage=db,
    )
    pruned = study.get_trials(states=(TrialState.PRUNED,))
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert pruned and complete
    for t in pruned:
        assert t.user_attrs["prune_reason"].startswith("multi-fidelity")
        assert 1 in t.intermediate_values
        assert "pntk_cond" not in t.user_attrs  # the full-N kernel was never computed
    for t in complete:
        assert 1 in t.intermediate_values and "pntk_cond" in t.user_attrs
    # Successive halving (eta = 3) keeps a candidate only if its small-N score is among the
    # top floor(m/3) of the m small-N scores seen so far, itself included (the best one while
    # m < 3; ties kept): check each decision by hand.
    seen: list[float] = []
    for t in sorted(pruned + complete, key=lambda t: t.number):
        low = t.intermediate_values[1]
        competing = sorted(seen + [low], reverse=True)
        k = max(len(competing) // 3, 1)
        assert (t.state == TrialState.COMPLETE) == (low >= competing[k - 1])
        seen.append(low)


# ---------------------------------------------------------------------------------------------
# Storage, resume, studies
# ---------------------------------------------------------------------------------------------
def test_resume_counts_existing_trials(db: str) -> None:
    first = search(ToySpace(), trials=3, storage=db, seed=0, **TINY)
    before = [(t.number, t.state, t.values) for t in first.trials]
    again = search(ToySpace(), trials=5, storage=db, seed=0, **TINY)
    assert again.study_name == first.study_name
    assert len(again.trials) == 5
    assert [(t.number, t.state, t.values) for t in again.trials[:3]] == before
    done = search(ToySpace(), trials=5, storage=db, seed=0, **TINY)  # nothing left to do
    assert len(done.trials) == 5


def test_resume_with_other_settings_is_refused(db: str) -> None:
    search(ToySpace(), trials=1, storage=db, study_name="s", **TINY)
    with pytest.raises(NasntkError, match="exists with n_kernel"):
        search(ToySpace(), trials=1, storage=db, study_name="s", n_kernel=16, img_size=IMG)
    with pytest.raises(NasntkError, match="other objectives"):
        search(ToySpace(), trials=1, storage=db, study_name="s", objective="pntk_cond", **TINY)


def test_journal_storage_and_study_listing(tmp_path: Path) -> None:
    url = f"journal:{tmp_path / 'runs.log'}"
    study = search(ToySpace(), trials=3, storage=url, seed=0, **TINY)
    # Read back with Optuna's own journal storage, independently of nasntk.
    from optuna.storages.journal import JournalFileBackend

    plain = optuna.load_study(
        study_name=study.study_name,
        storage=optuna.storages.JournalStorage(JournalFileBackend(str(tmp_path / "runs.log"))),
    )
    assert [t.values for t in plain.trials] == [t.values for t in study.trials]
    (summary_,) = study_summaries(url)
    assert summary_["study"] == study.study_name and summary_["trials"] == 3
    assert load_study(url).study_name == study.study_name


@pytest.mark.parametrize(
    "url, message",
    [
        ("nonsense", "malformed storage URL"),
        ("redis://localhost/0", "unknown scheme"),
        ("sqlite://relative.db", "malformed storage URL"),
        ("sqlite:////no/such/folder/x.db", "does not exist"),
        ("journal:", "malformed storage URL"),
        ("postgresql://nobody:secret@127.0.0.1:1/nasntk", "cannot open storage"),
    ],
)
def test_bad_storage_urls_are_one_line_errors(url: str, message: str) -> None:
    with pytest.raises(NasntkError, match=message) as err:
        open_storage(url)
    assert "\n" not in str(err.value)
    assert "secret" not in str(err.value)  # passwords are redacted


def test_storage_url_shortcuts() -> None:
    assert normalize_storage_url(None) == "sqlite:///nasntk.db"
    assert normalize_storage_url("runs.db") == "sqlite:///runs.db"
    assert normalize_storage_url("runs.log") == "journal:runs.log"
    assert normalize_storage_url("postgres://u@h/d") == "postgresql://u@h/d"


def test_reading_a_missing_storage_does_not_create_it(tmp_path: Path) -> None:
    with pytest.raises(NasntkError, match="no storage"):
        load_study(f"sqlite:///{tmp_path / 'missing.db'}")
    assert not (tmp_path / "missing.db").exists()


# ---------------------------------------------------------------------------------------------
# Samplers, bad input
# ---------------------------------------------------------------------------------------------
def test_grid_sampler_visits_every_spec_once(db: str) -> None:
    study = search(ToySpace(), trials=12, sampler="grid", storage=db, seed=0, **TINY)
    keys = [t.user_attrs["spec"] for t in study.trials]
    expected = {
        json.dumps({"act": a, "depth": d, "width": w}, separators=(",", ":"))
        for d, w, a in itertools.product(DEPTHS, WIDTHS, ("relu", "tanh"))
    }
    assert sorted(keys) == sorted(expected)


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
    ],
)
def test_bad_input_raises_nasntk_error(db: str, kwargs: dict, message: str) -> None:
    opts = {**TINY, **kwargs}
    with pytest.raises(NasntkError, match=message):
        search(ToySpace(), trials=1, storage=db, **opts)


def test_unknown_space_is_a_nasntk_error(db: str) -> None:
    with pytest.raises(NasntkError, match="unknown search space"):
        search("no_such_space", trials=1, storage=db, **TINY)


# ---------------------------------------------------------------------------------------------
# Ctrl-C inside the process
# ---------------------------------------------------------------------------------------------
def test_interrupt_keeps_completed_trials_and_marks_the_running_one(db: str) -> None:
    class InterruptOnThird(ToySpace):
        calls = 0

        def build(self, spec, **kw):
            if torch.empty(0).device.type != "meta":
                InterruptOnThird.calls += 1
                if InterruptOnThird.calls == 3:
                    raise KeyboardInterrupt
            return super().build(spec, **kw)

    space = InterruptOnThird()
    with pytest.raises(SearchInterrupted) as err:
        search(space, trials=12, sampler="grid", storage=db, seed=0, **TINY)
    study = err.value.study
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.FAIL]
    assert study.trials[2].user_attrs["fail_reason"] == "interrupted"
    # Resuming: the interrupted trial does not count, the completed ones are kept.
    again = search(space, trials=12, sampler="grid", storage=db, seed=0, **TINY)
    assert [t.values for t in again.trials[:2]] == [t.values for t in study.trials[:2]]
    counted = [t for t in again.trials if t.state != TrialState.FAIL]
    assert len(counted) == 12


# ---------------------------------------------------------------------------------------------
# Rebuilding and exporting
# ---------------------------------------------------------------------------------------------
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

    page = render(ranked, "html", images={"history": b"\x89PNG fake"}, title="t")
    assert page.startswith("<!DOCTYPE html>") and page.count("<tr>") == len(ranked) + 1
    for r in ranked:
        assert f"<td>{r['arch']}</td>" in page
    assert "data:image/png;base64,iVBORyBmYWtl" in page
    with pytest.raises(NasntkError, match="unknown format"):
        render(ranked, "xml")


def test_plots_are_png_files(db: str, tmp_path: Path) -> None:
    from nasntk.plots import save

    study = search(ToySpace(), trials=4, objective="pntk_krr,params:min", storage=db, **TINY)
    paths = save(study, tmp_path / "figs")
    assert sorted(p.name for p in paths) == [
        "history.png",
        "pareto_front.png",
        "score_vs_params.png",
    ]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
