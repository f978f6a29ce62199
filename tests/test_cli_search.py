"""End-to-end tests of `nasntk search | leaderboard | export | plot | studies | spaces`.

Real processes where it matters: kill -9 and Ctrl-C of a running search, then the same command
again; two worker processes on one storage. The space is the tiny MLP family of
``tests/search_toy_space.py`` (``--space search_toy_space:ToySpace`` with ``PYTHONPATH=tests``);
``TOY_SPACE_LOG`` records every real build, independently of what the study says, and
``TOY_SPACE_HOLD`` stops a build mid-trial until the test has sent its signal.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from invariants import assert_search_invariant, builds

from nasntk.cli.main import main

TESTS = Path(__file__).resolve().parent
NASNTK = [sys.executable, "-m", "nasntk"]
TOY = "search_toy_space:ToySpace"


def search_args(db: str, trials: int, *extra: str) -> list[str]:
    return [
        "search",
        "--space",
        TOY,
        "--trials",
        str(trials),
        "--n-kernel",
        "8",
        "--img-size",
        "8",
        "--storage",
        db,
        "--sampler",
        "random",
        "--seed",
        "0",
        "--no-live",
        # a per-candidate objective: the toy space's 12 specs would all be members of the
        # aggregate default's reference sample, and no trial would build anything
        *([] if "--objective" in extra else ["--objective", "pntk_live_g"]),
        *extra,
    ]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(TESTS), e.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    e["OMP_NUM_THREADS"] = "1"
    e["TOY_SPACE_LOG"] = str(tmp_path / "builds.log")
    e.pop("NASNTK_VERBOSE", None)
    return e


def run(
    args: list[str], env: dict[str, str], cwd: Path, timeout: float = 60
) -> subprocess.CompletedProcess:
    return subprocess.run(
        NASNTK + args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def completed(db_file: Path) -> dict[int, float]:
    with sqlite3.connect(db_file, timeout=5) as con:
        rows = con.execute(
            "SELECT t.number, v.value FROM trials t JOIN trial_values v ON v.trial_id = t.trial_id "
            "WHERE t.state = 'COMPLETE'"
        ).fetchall()
    return dict(rows)


def wait_for(predicate, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("timed out waiting")


def load(db: str):
    from nasntk.study import load_study

    return load_study(db)


def check_consistent(db: str, trials: int, built: Counter | None = None) -> None:
    """Nothing lost, nothing scored twice; the leaderboard is the distinct completed trials."""
    from optuna.trial import TrialState

    from nasntk.leaderboard import rows

    study = load(db)
    assert_search_invariant(study.trials, counted=trials, built=built)
    ranked = rows(study)
    distinct = {
        t.number
        for t in study.get_trials(states=(TrialState.COMPLETE,))
        if "duplicate_of" not in t.user_attrs
    }
    assert {r["trial"] for r in ranked} == distinct
    values = [r["pntk_live_g"] for r in ranked]
    assert values == sorted(values, reverse=True)  # the objective is maximised


# ---------------------------------------------------------------------------------------------
# End to end
# ---------------------------------------------------------------------------------------------
def test_search_leaderboard_export_plot_end_to_end(
    tmp_path: Path, env: dict[str, str], capsys: pytest.CaptureFixture, monkeypatch
) -> None:
    db = f"sqlite:///{tmp_path / 'e2e.db'}"
    res = run(search_args(db, 6), env, tmp_path)
    assert res.returncode == 0, res.stderr
    assert "top" in res.stdout and "rank" in res.stdout
    assert "6 trials" in res.stderr
    assert "data digits: 1,797 images, 10 classes, 1 channel(s)" in res.stderr
    assert "at 8×8" in res.stderr  # the toy search's --img-size 8
    # not a terminal: one log line per trial, with what the trials came to so far
    assert "trial 0 [1/6] complete" in res.stderr and "[6/6]" in res.stderr
    assert "[6/6] complete" in res.stderr and " scored" in res.stderr
    check_consistent(db, 6, builds(tmp_path / "builds.log"))
    # the same command again: nothing runs, and the summary does not pretend it took time
    again = run(search_args(db, 6), env, tmp_path)
    assert again.returncode == 0 and "nothing to run" in again.stderr
    assert "6 trials —" in again.stderr and " s —" not in again.stderr
    # --refine K: the top K trained briefly and re-ranked after the search (stored: a rerun
    # reads them back)
    refined = run(search_args(db, 6, "--refine", "2"), env, tmp_path)
    assert refined.returncode == 0, refined.stderr
    assert "refining the top 2" in refined.stderr and "rank 1 after refinement" in refined.stdout
    assert "trained 2" in refined.stdout
    again = run(search_args(db, 6, "--refine", "2"), env, tmp_path)
    assert "trained 0, read back from the study 2" in " ".join(again.stdout.split())

    # The other commands read the study; they run in this process (same entry point, no torch
    # import per command).
    out = tmp_path / "lb"
    for fmt in ("csv", "json", "html", "markdown"):
        assert main(["leaderboard", "--storage", db, "--format", fmt, "--out", f"{out}.{fmt}"]) == 0
    from nasntk.leaderboard import rows

    ranked = rows(load(db))
    parsed = list(csv.DictReader(io.StringIO(Path(f"{out}.csv").read_text())))
    assert [int(r["trial"]) for r in parsed] == [r["trial"] for r in ranked]
    as_json = json.loads(Path(f"{out}.json").read_text())
    assert [r["spec"] for r in as_json] == [r["spec"] for r in ranked]
    page = Path(f"{out}.html").read_text()
    assert all(f'<td class="arch"><div title="{r["arch"]}">' in page for r in ranked)
    assert page.count("data:image/png;base64,") == 3  # history, score vs params, distributions
    assert Path(f"{out}.markdown").read_text().count("\n") == len(ranked) + 2
    # --columns picks the columns of any format; an unknown one is a one-line error
    lb = ["leaderboard", "--storage", db]
    assert main([*lb, "-f", "csv", "--columns", "rank,arch", "--out", f"{out}.cols.csv"]) == 0
    assert Path(f"{out}.cols.csv").read_text().splitlines()[0] == "rank,arch"
    capsys.readouterr()
    assert main([*lb, "--columns", "rank,bogus"]) == 2
    assert "unknown column(s) bogus" in capsys.readouterr().err
    # show: the winner at a glance (the toy space has no rebuild without nasntk)
    assert main(["show", "--storage", db]) == 0
    shown = capsys.readouterr().out
    assert ranked[0]["arch"] in shown and "params" in shown and "Sequential" in shown
    assert "without nasntk" not in shown and "nasntk.build" in shown
    assert main(["show", "--storage", db, "--rank", "99"]) == 2

    assert (
        main(["export", "--storage", db, "--rank", "1", "--out", str(tmp_path / "best.json")]) == 0
    )
    import nasntk

    row = json.loads((tmp_path / "best.json").read_text())
    model = nasntk.build(row)
    assert sum(p.numel() for p in model.parameters()) == ranked[0]["params"]
    assert row["trial"] == ranked[0]["trial"]

    assert main(["plot", "--storage", db, "--out", str(tmp_path / "figs")]) == 0
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == [
        "history.png",
        "score_distributions.png",
        "score_vs_params.png",
    ]
    capsys.readouterr()
    monkeypatch.setenv("COLUMNS", "200")  # rich's console width when not a terminal
    assert main(["studies", "--storage", db]) == 0
    assert "search_toy_space:ToySpace-digits-pntk_live_g-n8" in capsys.readouterr().out
    assert main(["spaces"]) == 0
    assert "nb201" in capsys.readouterr().out
    # the space options are listed with their defaults, and a wrong one names the valid ones
    assert main(["spaces", "--space", "nb201"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "--space-opt C=…" in out and "int, default 16" in out and "default 5" in out
    assert main(["search", "--space", "nb201", "--space-opt", "bogus=1", "--trials", "1"]) == 2
    err = capsys.readouterr().err
    assert "unknown option(s) bogus" in err and "C (default 16)" in err


# ---------------------------------------------------------------------------------------------
# Kill -9 and Ctrl-C: nothing completed is lost, the same command finishes the job
# ---------------------------------------------------------------------------------------------
def _interrupt_then_resume(
    tmp_path: Path, env: dict[str, str], sig: int
) -> subprocess.CompletedProcess:
    db_file = tmp_path / "kill.db"
    db = f"sqlite:///{db_file}"
    args = search_args(db, 8)
    held = tmp_path / "held"
    # The 4th build (after 3 scored trials) announces itself through `held` and waits there,
    # inside its trial's objective, until the signal comes: no timing window.
    hold = {**env, "TOY_SPACE_HOLD": f"4:{held}"}
    proc = subprocess.Popen(
        NASNTK + args,
        env=hold,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a test run started in the background by a non-interactive shell inherits SIGINT
        # ignored (POSIX), and Python then leaves it ignored: give the search the default back
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:

        def holding() -> bool:
            assert proc.poll() is None, f"search ended early: {proc.communicate()}"
            return held.exists()

        wait_for(holding, timeout=120)
        before = completed(db_file)
        assert len(before) >= 3
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    first = subprocess.CompletedProcess(args, proc.returncode, out, err)
    after_kill = completed(db_file)
    assert set(before) <= set(after_kill)  # every completed trial survived the signal
    assert all(after_kill[k] == v for k, v in before.items())

    again = run(args, env, tmp_path)  # the same command
    assert again.returncode == 0, again.stderr
    said = " ".join(again.stderr.split())
    assert "resuming study" in said and "of 8 trials already done" in said
    final = completed(db_file)
    assert all(final[k] == v for k, v in after_kill.items())  # kept, unchanged
    built = builds(tmp_path / "builds.log")
    check_consistent(db, 8, built)
    study = load(db)
    interrupted = [
        t
        for t in study.trials
        if str(t.user_attrs.get("fail_reason", "")).startswith("interrupted")
    ]
    assert len(interrupted) == 1  # the trial that was running when the signal came
    retried = [t for t in study.trials if t.user_attrs.get("retry_of") == interrupted[0].number]
    assert len(retried) == 1 and retried[0].params == interrupted[0].params
    # No architecture was built for scoring twice (the log is independent of the study),
    # except the interrupted one, whose first build never finished.
    key = interrupted[0].user_attrs["spec"]
    assert all(n == 1 for k, n in built.items() if k != key) and built[key] == 2
    return first


def test_kill_9_loses_no_completed_trial(tmp_path: Path, env: dict[str, str]) -> None:
    first = _interrupt_then_resume(tmp_path, env, signal.SIGKILL)
    assert first.returncode == -signal.SIGKILL


def test_ctrl_c_finishes_cleanly(tmp_path: Path, env: dict[str, str]) -> None:
    first = _interrupt_then_resume(tmp_path, env, signal.SIGINT)
    assert first.returncode == 130
    assert "interrupted" in first.stderr and "rank" in first.stdout  # leaderboard printed
    assert "Traceback" not in first.stderr


# ---------------------------------------------------------------------------------------------
# Workers
# ---------------------------------------------------------------------------------------------
def test_two_workers_lose_nothing_and_score_nothing_twice(
    tmp_path: Path, env: dict[str, str]
) -> None:
    db = f"sqlite:///{tmp_path / 'workers.db'}"
    res = run(search_args(db, 14, "--workers", "2"), env, tmp_path, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "resuming" not in res.stderr  # a fresh study, though workers finish trials meanwhile
    built = builds(tmp_path / "builds.log")
    check_consistent(db, 14, built)  # 14 trials of a 12-spec space: no double scoring
    study = load(db)
    assert len(study.trials) == 14  # none lost, none extra
    assert len({t.user_attrs["worker"] for t in study.trials}) == 2  # both processes worked
    scored = {t.user_attrs["spec"] for t in study.trials if "duplicate_of" not in t.user_attrs}
    assert set(built) == scored


# ---------------------------------------------------------------------------------------------
# Bad input: exit code 2 and exactly one line on stderr
# ---------------------------------------------------------------------------------------------
BAD = [
    ["search", "--space", "no_such_space"],
    ["search", "--space", TOY, "--objective", "no_such_score"],
    ["search", "--space", TOY, "--space-opt", "C"],
    ["search", "--space", TOY, "--data", "npz:/no/such/file.npz"],
    ["search", "--space", TOY, "--storage", "nonsense"],
    ["search", "--space", TOY, "--storage", "postgresql://u:pw@127.0.0.1:1/nasntk"],
    ["search", "--space", TOY, "--storage", "sqlite:////no/such/folder/x.db"],
    ["search", "--space", TOY, "--n-kernel", "2"],
    ["search", "--space", TOY, "--max-params", "10"],
    ["search", "--space", TOY, "--max-params", "lots"],
    ["search", "--space", TOY, "--sampler", "annealing"],
    ["search", "--space", TOY, "--trials", "many"],
    ["search", "--space", TOY, "--db-patience", "-1"],
    ["leaderboard", "--storage", "sqlite:///missing.db"],
    ["leaderboard", "--storage", "journal:missing.log", "--format", "xml"],
]


@pytest.mark.parametrize("args", BAD, ids=[" ".join(a[1:])[:40] for a in BAD])
def test_bad_input_is_one_line_and_exit_2(
    args: list[str], tmp_path: Path, capsys, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(TESTS))
    rc = main(args)
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("nasntk: error: ")
    assert "pw@" not in err  # passwords are never echoed


def test_bad_input_in_a_real_process(tmp_path: Path, env: dict[str, str]) -> None:
    res = run(
        [
            "search",
            "--space",
            TOY,
            "--n-kernel",
            "3",
            "--storage",
            f"sqlite:///{tmp_path / 'x.db'}",
        ],
        env,
        tmp_path,
    )
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [res.stderr.strip()]
    assert "N (--n-kernel) must be an integer >= 4" in res.stderr


def test_export_of_a_missing_rank(tmp_path: Path, env: dict[str, str], capsys, monkeypatch) -> None:
    from search_toy_space import ToySpace

    from nasntk import search

    db = f"sqlite:///{tmp_path / 'one.db'}"
    search(ToySpace(), trials=1, n_kernel=8, img_size=8, storage=db)
    assert main(["export", "--storage", db, "--rank", "5"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "no rank 5" in err


def test_a_folder_of_24px_images_is_scored_at_24px_and_the_search_says_so(
    tmp_path: Path, env: dict[str, str]
) -> None:
    from PIL import Image

    for k, name in enumerate(("cat", "dog")):
        (tmp_path / "imgs" / name).mkdir(parents=True)
        for i in range(6):
            Image.new("RGB", (24, 24), (40 * k + 7 * i,) * 3).save(
                tmp_path / "imgs" / name / f"{i}.png"
            )
    db = f"sqlite:///{tmp_path / 'f.db'}"
    args = ["search", "--data", f"folder:{tmp_path / 'imgs'}", "--trials", "2", "--n-kernel", "8"]
    res = run([*args, "--storage", db, "--no-live"], env, tmp_path)
    assert res.returncode == 0, res.stderr
    said = " ".join(res.stderr.split())
    assert "12 images, 2 classes, 3 channel(s); networks scored on 8 of them at 24×24" in said
    study = load(db)
    from nasntk.leaderboard import rows

    assert {r["img_size"] for r in rows(study)} == {24}  # the networks saw 24×24 inputs
    assert study.study_name.startswith("nb201") and ":" not in study.study_name
    # more images asked for than there are: the error names the fix
    res = run([*args, "--n-kernel", "60", "--storage", db, "--study", "x"], env, tmp_path)
    assert res.returncode == 2 and "--n-kernel 12" in res.stderr
