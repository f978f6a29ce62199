"""Where studies live: storage URLs, opening storages, loading and listing studies.

A SQLite file in the working directory by default, so rerunning the same command resumes the same
study; any Optuna storage URL (``sqlite:///…``, ``postgresql://…``, ``mysql://…``, ``journal:PATH``)
or a bare file path (``runs.db``, ``runs.log``).

Database errors are handled here and only here (the role of Optuna's ``_create_scoped_session``):
:func:`opening` turns any failure to open a storage into one :class:`NasntkError` line (password
redacted), :func:`_create_rdb` retries the table-creation race of a fresh database, and
:func:`best_effort` wraps the writes that must never stop a search (marking another process's
trial failed, Optuna's stale-trial sweep).
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from nasntk.errors import NasntkError, one_line
from nasntk.study import record
from nasntk.study.silence import no_warnings

__all__ = [
    "DEFAULT_STORAGE",
    "create_or_load_study",
    "load_study",
    "normalize_storage_url",
    "open_storage",
    "redact",
    "study_summaries",
]

#: Where studies live unless ``storage=`` says otherwise (relative to the working directory).
DEFAULT_STORAGE = "sqlite:///nasntk.db"
_DIALECTS = ("sqlite", "postgresql", "postgres", "mysql", "mariadb")
_USAGE = "sqlite:///FILE.db, postgresql://USER@HOST/DB or journal:FILE.log"


def redact(url: str) -> str:
    """The URL with any password replaced by ``***`` (safe for error messages)."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", url)


def normalize_storage_url(url: str | None) -> str:
    """The canonical storage URL: the default, ``journal:PATH``, or an SQLAlchemy database URL.

    Bare file paths are accepted too: ``*.db``/``*.sqlite``/``*.sqlite3`` mean SQLite and
    ``*.log``/``*.journal``/``*.jsonl`` mean an Optuna journal file.
    """
    if url is None or not str(url).strip():
        return DEFAULT_STORAGE
    url = str(url).strip()
    if url.startswith("journal:"):
        path = url[len("journal:") :].removeprefix("//")
        if not path:
            raise NasntkError(f"malformed storage URL {url!r}: expected journal:PATH")
        return f"journal:{path}"
    if "://" in url:
        scheme = url.split("://", 1)[0].lower()
        dialect = scheme.split("+", 1)[0]
        if dialect not in _DIALECTS:
            raise NasntkError(
                f"malformed storage URL {redact(url)!r}: unknown scheme {scheme!r}; use "
                "sqlite:///FILE.db, postgresql://USER@HOST/DB, mysql://… or journal:FILE.log"
            )
        if dialect == "postgres":
            url = "postgresql" + url[len("postgres") :]
        return url
    suffix = Path(url).suffix.lower()
    if suffix in (".db", ".sqlite", ".sqlite3"):
        return f"sqlite:///{url}"
    if suffix in (".log", ".journal", ".jsonl"):
        return f"journal:{url}"
    raise NasntkError(f"malformed storage URL {url!r}: use {_USAGE}")


# ---------------------------------------------------------------------------------------------
# The one place for database errors
# ---------------------------------------------------------------------------------------------
@contextlib.contextmanager
def opening(url: str, what: str = "storage") -> Iterator[None]:
    """Turn any failure to open a storage into one line: driver missing, server down, bad file."""
    with no_warnings():
        try:
            yield
        except NasntkError:
            raise
        except ImportError as exc:
            raise NasntkError(
                f"{what} {redact(url)!r} needs a database driver that is not installed: "
                f"{one_line(exc)}"
            ) from None
        except Exception as exc:
            raise NasntkError(f"cannot open {what} {redact(url)!r}: {one_line(exc)}") from None


@contextlib.contextmanager
def best_effort() -> Iterator[None]:
    """A write that must not stop the search: a failure is ignored (the next sweep retries it)."""
    with no_warnings(), contextlib.suppress(Exception):
        yield


def _schema_race(exc: Exception) -> bool:
    """Whether ``exc`` is a lost race to create the tables (or types) of a fresh database."""
    text = str(exc).lower()
    return "already exists" in text or "duplicate key" in text


def _create_rdb(url: str, engine_kwargs: dict, heartbeat: dict) -> optuna.storages.RDBStorage:
    """``RDBStorage(url)``, retried when processes race to create the tables of a new database.

    Workers started at the same instant on an empty database all run Optuna's ``CREATE TABLE``
    / ``CREATE TYPE``; the losers fail with "already exists" — after a short random pause the
    tables exist and opening succeeds.
    """
    attempts = 8
    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **heartbeat)
        except Exception as exc:
            if attempt == attempts - 1 or not _schema_race(exc):
                raise
            time.sleep(0.2 + random.random() * 0.5)
    raise AssertionError("unreachable")


# ---------------------------------------------------------------------------------------------
# Opening
# ---------------------------------------------------------------------------------------------
def _check_file(path: str, url: str, create: bool) -> None:
    """The folder of a storage file exists and is writable; the file exists unless ``create``."""
    parent = Path(path).expanduser().resolve().parent
    if not parent.is_dir():
        raise NasntkError(f"storage {url!r}: folder {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK):
        raise NasntkError(f"storage {url!r}: folder {str(parent)!r} is not writable")
    if not create and not Path(path).expanduser().is_file():
        raise NasntkError(f"no storage at {path!r}; run `nasntk search` first")


def open_storage(url: str | None = None, *, create: bool = True) -> optuna.storages.BaseStorage:
    """Open the Optuna storage at ``url``; one-line :class:`NasntkError` if that fails.

    With ``create=False`` a missing SQLite or journal file is an error instead of a new, empty
    storage (for commands that only read). SQLite files wait up to 60 s for a lock (several
    worker processes share one file); server databases (PostgreSQL, MySQL) record a heartbeat so
    that the running trials of a killed machine become FAIL after a minute.
    """
    url = normalize_storage_url(url)
    if url.startswith("journal:"):
        return _open_journal(url, create)
    dialect = url.split("://", 1)[0].split("+", 1)[0].lower()
    if dialect == "sqlite":
        return _open_sqlite(url, create)
    engine_kwargs: dict[str, Any] = {}
    if dialect == "postgresql":
        engine_kwargs = {"connect_args": {"connect_timeout": 10}}
        url = _postgres_driver(url)
    heartbeat = {"heartbeat_interval": 10, "grace_period": 60}
    with opening(url):
        return _create_rdb(url, engine_kwargs, heartbeat)


def _open_journal(url: str, create: bool) -> optuna.storages.BaseStorage:
    path = url[len("journal:") :]
    _check_file(path, url, create)
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    with opening(path, "journal storage"):
        backend = JournalFileBackend(path, lock_obj=JournalFileOpenLock(path))
        return optuna.storages.JournalStorage(backend)


def _open_sqlite(url: str, create: bool) -> optuna.storages.RDBStorage:
    path = url.split("://", 1)[1]
    if not path.startswith("/") or path in ("/", "/:memory:"):
        raise NasntkError(
            f"malformed storage URL {url!r}: use sqlite:///relative/path.db or "
            "sqlite:////absolute/path.db"
        )
    _check_file(path[1:], url, create)
    with opening(url):
        store = _create_rdb(url, {"connect_args": {"timeout": 60}}, {})
        _use_wal(store)
        return store


def _postgres_driver(url: str) -> str:
    """``postgresql://`` with the driver that is installed.

    SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3; with only psycopg2 installed
    (the ``postgres`` extra), name it explicitly.
    """
    import importlib.util

    if not url.startswith("postgresql://"):
        return url
    if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2"):
        return "postgresql+psycopg2://" + url[len("postgresql://") :]
    return url


def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _use_wal(store: optuna.storages.RDBStorage) -> None:
    """SQLite in write-ahead-log mode with ``synchronous=NORMAL``.

    Each ``set_user_attr`` is a transaction; with the default rollback journal every one costs
    an fsync (~20 ms), which would dominate the trial time of small networks. In WAL mode a
    commit is an append to the log: a killed process (even SIGKILL) loses no committed trial,
    only a power cut can lose the last few transactions.
    """
    from sqlalchemy import event

    event.listen(store.engine, "connect", _sqlite_pragmas)
    store.engine.dispose()  # pooled connections predate the listener


# ---------------------------------------------------------------------------------------------
# Studies
# ---------------------------------------------------------------------------------------------
def load_study(storage: str | None = None, study: str | None = None) -> optuna.Study:
    """Load a study by name; without a name, the study a search opened last (the most recently
    created one when no search has said)."""
    store = open_storage(storage, create=False)
    studies = store.get_all_studies()
    names = [s.study_name for s in studies]
    if not names:
        raise NasntkError(
            f"no studies in storage {redact(normalize_storage_url(storage))!r}; "
            "run `nasntk search` first"
        )
    if study is None:
        stamps = [
            (float(s.user_attrs.get(record.SEARCHED_AT, 0) or 0), i) for i, s in enumerate(studies)
        ]
        name = names[max(stamps)[1]] if stamps else names[-1]
    else:
        name = study
    if name not in names:
        raise NasntkError(f"no study {name!r} in the storage; studies: {', '.join(names)}")
    with no_warnings():
        return optuna.load_study(study_name=name, storage=store)


def create_or_load_study(
    storage: optuna.storages.BaseStorage, name: str, directions: list[str]
) -> optuna.Study:
    """The study ``name`` of ``storage``, created with ``directions`` if it does not exist."""
    with no_warnings():
        return optuna.create_study(
            storage=storage, study_name=name, directions=directions, load_if_exists=True
        )


def fail_stale(study: optuna.Study) -> None:
    """Optuna's heartbeat sweep: running trials of machines silent for a minute become FAIL."""
    with best_effort():
        optuna.storages.fail_stale_trials(study)


def study_summaries(storage: str | None = None) -> list[dict[str, Any]]:
    """One dict per study: name, space, data, objectives, and trial counts by state."""
    store = open_storage(storage, create=False)
    out = []
    for summary in store.get_all_studies():
        study_id = store.get_study_id_from_name(summary.study_name)
        trials = store.get_all_trials(study_id, deepcopy=False)
        counts = {s.name.lower(): 0 for s in (TrialState.COMPLETE, TrialState.PRUNED)}
        counts.update({"fail": 0, "running": 0})
        for t in trials:
            key = t.state.name.lower()
            counts[key] = counts.get(key, 0) + 1
        config = record.config_of(summary.user_attrs)
        starts = [t.datetime_start for t in trials if t.datetime_start is not None]
        out.append(
            {
                "study": summary.study_name,
                "space": config.get("space", ""),
                "data": config.get("data", ""),
                "objectives": list(config.get("objectives", [])),
                "directions": [d.name.lower() for d in summary.directions],
                "trials": len(trials),
                **counts,
                "started": min(starts).isoformat(timespec="seconds") if starts else "",
            }
        )
    return out
