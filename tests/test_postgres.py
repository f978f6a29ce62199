"""Distributed search on a real PostgreSQL server: processes sharing one fresh database.

Needs a server (``bash .ci/postgres.sh`` starts a throwaway one on 127.0.0.1 and writes its URL
to ``.ci/postgres.url``); skips with the reason when there is none. CI runs it.

Each test gets a *fresh, empty* database: a new PostgreSQL schema, selected through the URL
(``?options=-csearch_path=…``), so Optuna finds no tables and every process that starts creates
them — the race of machines started at the same instant on a new database.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from invariants import assert_search_invariant

from nasntk import leaderboard

pytestmark = pytest.mark.postgres

TRIALS = (3, 3)  # asked of worker A and worker B
TESTS = Path(__file__).resolve().parent
#: The two-process search: the toy space, whose first build waits until both processes are in
#: it (a barrier, not a timing window), so that each plans its share before the other finishes.
TOY = ["--space", "search_toy_space:ToySpace", "--img-size", "8"]
# A process that imports everything, says it is ready, waits for "go", then opens the storage.
RACER = r"""
import sys, time
from pathlib import Path
how, url, folder, i = sys.argv[1:]
import optuna
if how == "nasntk":
    from nasntk.study.storage import open_storage
Path(folder, f"ready{i}").touch()
while not Path(folder, "go").exists():
    time.sleep(0.001)
try:
    open_storage(url) if how == "nasntk" else optuna.storages.RDBStorage(url)
    print("ok")
except Exception as exc:
    print("failed:", " ".join(str(exc).split())[:200])
"""


def _driver_url(url: str) -> str:
    """``postgresql://`` names SQLAlchemy's default driver (psycopg 3 since SQLAlchemy 2.1);
    name psycopg2 explicitly when that is the driver installed."""
    scheme, rest = url.split("://", 1)
    if "+" in scheme or importlib.util.find_spec("psycopg") is not None:
        return url
    return f"postgresql+psycopg2://{rest}"


def _nasntk(*args: str) -> list[str]:
    return [sys.executable, "-m", "nasntk", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "NASNTK_VERBOSE": "1"}


@contextlib.contextmanager
def _fresh_database(postgres_url: str) -> Iterator[str]:
    """The URL of a new, empty schema of the test database (dropped afterwards)."""
    import psycopg2

    schema = f"pytest_{uuid.uuid4().hex[:10]}"
    con = psycopg2.connect(postgres_url.replace("+psycopg2", ""))
    con.autocommit = True
    con.cursor().execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{_driver_url(postgres_url)}?options=-csearch_path%3D{schema}"
    finally:
        con.cursor().execute(f"DROP SCHEMA {schema} CASCADE")
        con.close()


@pytest.fixture
def fresh_url(postgres_url):
    with _fresh_database(postgres_url) as url:
        yield url


def _race(url: str, how: str, folder: Path, n: int = 4) -> list[str]:
    """``n`` processes open ``url`` within a millisecond of each other; what each reported."""
    folder.mkdir()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, how, url, str(folder), str(i)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        for i in range(n)
    ]
    deadline = time.monotonic() + 120
    while len(list(folder.glob("ready*"))) < n and time.monotonic() < deadline:
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        time.sleep(0.01)
    (folder / "go").touch()
    return [p.communicate(timeout=120)[0].strip() for p in procs]


def test_processes_racing_to_create_the_tables_of_a_fresh_database(fresh_url, tmp_path):
    assert _race(fresh_url, "nasntk", tmp_path / "nasntk") == ["ok"] * 4
    assert optuna.storages.RDBStorage(fresh_url).get_all_studies() == []  # the tables exist


def test_the_race_is_real(postgres_url, tmp_path):
    """Control: plain Optuna on a fresh database loses the same race (so the test above tests)."""
    failed: list[str] = []
    for attempt in range(8):  # (it usually collides at the first attempt; retried if it did not)
        with _fresh_database(postgres_url) as url:
            failed = [r for r in _race(url, "optuna", tmp_path / f"optuna{attempt}") if r != "ok"]
        if failed:
            break
    if not failed:  # a scheduling outcome, not a property of nasntk: say so rather than fail
        pytest.skip("four processes opened a fresh database 8 times and never collided here")
    assert all("already exists" in r or "duplicate key" in r for r in failed), failed


def test_two_search_processes_share_one_fresh_postgres_study(fresh_url, tmp_path):
    name = f"pytest-{uuid.uuid4().hex[:10]}"
    common = [*TOY, "--data", "digits", "--n-kernel", "8", "--storage", fresh_url]
    common += ["--objective", "pntk_live_g"]  # the 12 toy specs would all be reference members
    barrier = {"PYTHONPATH": str(TESTS), "TOY_SPACE_BARRIER": f"2:{tmp_path / 'barrier'}"}
    common += ["--study", name]
    # No table exists yet: both processes create them (the race above), then share the study.
    # The same sampler seed in both: they propose the same architectures at the same time, the
    # hardest case for "never score a spec twice".
    procs = [
        subprocess.Popen(
            _nasntk("search", *common, "--trials", str(k), "--seed", "0", "--no-live"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**_env(), **barrier},
            cwd=tmp_path,
        )
        for k in TRIALS
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, f"worker failed:\n{out}\n{err}"

    study = optuna.load_study(study_name=name, storage=fresh_url)
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == sum(TRIALS), f"{len(trials)} trials, asked for {sum(TRIALS)}"
    assert_search_invariant(trials, counted=sum(TRIALS))
    workers = {t.user_attrs.get("worker") for t in trials}
    assert len(workers) == 2, "both processes ran trials"

    # Each worker (machine) exports the leaderboard; both equal the one read from the database.
    expected = json.loads(leaderboard.render(leaderboard.rows(study), "json"))
    assert expected, "some trial completed"
    exports = [
        subprocess.Popen(
            _nasntk("leaderboard", "--storage", fresh_url, "--study", name, "--format", "json")
            + ["--out", str(tmp_path / f"worker{i}.json")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**_env(), "PYTHONPATH": str(TESTS)},
            cwd=tmp_path,
        )
        for i in range(2)
    ]
    for p in exports:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, f"export failed:\n{out}\n{err}"
    for i in range(2):
        assert json.loads((tmp_path / f"worker{i}.json").read_text()) == expected
