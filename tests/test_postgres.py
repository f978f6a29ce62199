"""Distributed search on a real PostgreSQL server: two `nasntk search` processes, one study.

Needs a server (``bash .ci/postgres.sh`` starts a throwaway one on 127.0.0.1 and writes its URL
to ``.ci/postgres.url``); skips with the reason when there is none. CI runs it.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import subprocess
import sys
import uuid
from collections import Counter

import optuna
import pytest
from optuna.trial import TrialState

pytestmark = pytest.mark.postgres

TRIALS = (3, 3)  # asked of worker A and worker B
SPACE = ["--space", "nb201", "--space-opt", "C=2", "--space-opt", "N=1", "--img-size", "8"]


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


@pytest.fixture
def study_name(postgres_url):
    name = f"pytest-{uuid.uuid4().hex[:10]}"
    yield name
    try:
        optuna.delete_study(study_name=name, storage=_driver_url(postgres_url))
    except KeyError:
        pass


def test_two_search_processes_share_one_postgres_study(postgres_url, study_name, tmp_path):
    url = _driver_url(postgres_url)
    # Create Optuna's tables first: on a fresh database, processes that start at the same instant
    # race to create them ("type studydirection already exists"); see the report of issue 6.
    optuna.storages.RDBStorage(url).remove_session()
    common = [
        *SPACE,
        "--data",
        "digits",
        "--n-kernel",
        "8",
        "--storage",
        url,
        "--study",
        study_name,
    ]
    # The same sampler seed in both: they propose the same architectures at the same time, the
    # hardest case for "never score a spec twice".
    procs = [
        subprocess.Popen(
            _nasntk("search", *common, "--trials", str(k), "--seed", "0", "--no-live"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
            cwd=tmp_path,
        )
        for k in TRIALS
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, f"worker failed:\n{out}\n{err}"

    study = optuna.load_study(study_name=study_name, storage=url)
    trials = study.get_trials(deepcopy=False)
    states = Counter(t.state for t in trials)
    assert states[TrialState.RUNNING] == 0
    assert len(trials) == sum(TRIALS), f"{len(trials)} trials, asked for {sum(TRIALS)}: {states}"

    # No spec scored twice: among trials that computed their scores (not reused duplicates)
    # every spec is unique, and each duplicate reuses a trial with the same spec.
    by_number = {t.number: t for t in trials}
    scored = [t for t in trials if "duplicate_of" not in t.user_attrs and "spec" in t.user_attrs]
    specs = Counter(t.user_attrs["spec"] for t in scored)
    assert max(specs.values()) == 1, f"scored twice: {[s for s, c in specs.items() if c > 1]}"
    for t in trials:
        if "duplicate_of" in t.user_attrs:
            original = by_number[int(t.user_attrs["duplicate_of"])]
            assert original.user_attrs["spec"] == t.user_attrs["spec"]
            assert "duplicate_of" not in original.user_attrs
            if t.state == TrialState.COMPLETE:
                assert t.values == original.values
    workers = {t.user_attrs.get("worker") for t in trials}
    assert len(workers) == 2, "both processes ran trials"

    # Each worker (machine) exports the leaderboard; both equal the one read from the database.
    leaderboard = importlib.import_module("nasntk.leaderboard")  # not the lazy `rows` alias
    expected = json.loads(leaderboard.render(leaderboard.rows(study), "json"))
    assert expected, "some trial completed"
    exports = [
        subprocess.Popen(
            _nasntk(
                "leaderboard",
                "--storage",
                url,
                "--study",
                study_name,
                "--format",
                "json",
                "--out",
                str(tmp_path / f"worker{i}.json"),
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
            cwd=tmp_path,
        )
        for i in range(2)
    ]
    for p in exports:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, f"export failed:\n{out}\n{err}"
    for i in range(2):
        assert json.loads((tmp_path / f"worker{i}.json").read_text()) == expected
