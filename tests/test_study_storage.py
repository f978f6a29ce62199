"""Tests of nasntk.study.storage: URLs, opening storages, loading and listing studies."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import optuna
import pytest
from search_toy_space import TINY, ToySpace

from nasntk.errors import NasntkError
from nasntk.study import load_study, normalize_storage_url, open_storage, search, study_summaries
from nasntk.study import storage as storage_mod


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
    assert summary_["space"] == "search_toy_space:ToySpace" and summary_["objectives"] == [
        "default"
    ]
    assert load_study(url).study_name == study.study_name


def test_commands_default_to_the_study_searched_last(db: str) -> None:
    first = search(ToySpace(), trials=2, storage=db, seed=0, study_name="first", **TINY)
    second = search(ToySpace(), trials=2, storage=db, seed=0, study_name="second", **TINY)
    assert load_study(db).study_name == second.study_name  # the newest, searched last
    # resuming the older study makes it the one a bare `nasntk validate` / `leaderboard` reads
    search(ToySpace(), trials=3, storage=db, seed=0, study_name="first", **TINY)
    assert load_study(db).study_name == first.study_name
    assert load_study(db, "second").study_name == "second"


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
    assert normalize_storage_url("journal://runs.log") == "journal:runs.log"
    assert normalize_storage_url("postgres://u@h/d") == "postgresql://u@h/d"
    assert storage_mod.redact("postgresql://me:pw@host/db") == "postgresql://me:***@host/db"


def test_reading_a_missing_storage_does_not_create_it(tmp_path: Path) -> None:
    with pytest.raises(NasntkError, match="no storage"):
        load_study(f"sqlite:///{tmp_path / 'missing.db'}")
    assert not (tmp_path / "missing.db").exists()
    url = f"sqlite:///{tmp_path / 'one.db'}"
    optuna.create_study(study_name="one", storage=url)
    with pytest.raises(NasntkError, match="no study 'nope' in the storage; studies: one"):
        load_study(url, "nope")


def test_sqlite_runs_in_write_ahead_log_mode(tmp_path: Path) -> None:
    store = open_storage(f"sqlite:///{tmp_path / 'wal.db'}")
    optuna.create_study(storage=store, study_name="s")
    with sqlite3.connect(tmp_path / "wal.db") as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_the_table_creation_race_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    """Losers of the CREATE TABLE race of a fresh database retry; other errors do not."""
    calls = []

    def racing(url, **kwargs):
        calls.append(url)
        if len(calls) < 3:
            raise RuntimeError('type "studydirection" already exists')
        return "opened"

    monkeypatch.setattr(optuna.storages, "RDBStorage", racing)
    monkeypatch.setattr(storage_mod.time, "sleep", lambda s: None)
    assert storage_mod._create_rdb("postgresql://x", {}, {}) == "opened" and len(calls) == 3

    def down(url, **kwargs):
        calls.append(url)
        raise RuntimeError("connection refused")

    calls.clear()
    monkeypatch.setattr(optuna.storages, "RDBStorage", down)
    with pytest.raises(RuntimeError, match="refused"):
        storage_mod._create_rdb("postgresql://x", {}, {})
    assert len(calls) == 1
