"""Where studies live: storage URLs, opening storages, loading and listing studies.

A SQLite file in the working directory by default, so rerunning the same command resumes the same
study; any Optuna storage URL (``sqlite:///…``, ``postgresql://…``, ``mysql://…``, ``journal:PATH``)
or a bare file path (``runs.db``, ``runs.log``).

Database errors are handled here and only here (the role of Optuna's ``_create_scoped_session``):
:func:`opening` turns any failure to open a storage into one :class:`NasntkError` line (password
redacted), :func:`_create_rdb` retries the table-creation race of a fresh database,
:func:`best_effort` wraps the writes that must never stop a search (marking another process's
trial failed, Optuna's stale-trial sweep), and :class:`RetryPolicy` / :class:`RetryingStorage`
carry a search through database restarts and outages: every storage call a search makes is
retried on a transient failure with exponential backoff and jitter, for up to ``patience``
seconds of outage, after which :class:`DatabaseUnavailable` stops the search in one line.
"""

from __future__ import annotations

import abc
import contextlib
import math
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.trial import TrialState

from nasntk.errors import DatabaseUnavailable, NasntkError, one_line
from nasntk.study import record
from nasntk.study.silence import no_warnings

__all__ = [
    "DEFAULT_STORAGE",
    "DatabaseUnavailable",
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


def _create_rdb(
    url: str, engine_kwargs: dict, heartbeat: dict, policy: RetryPolicy | None = None
) -> optuna.storages.RDBStorage:
    """``RDBStorage(url)``, retried when processes race to create the tables of a new database
    and, under ``policy``, while the server is unreachable.

    Workers started at the same instant on an empty database all run Optuna's ``CREATE TABLE``
    / ``CREATE TYPE``; the losers fail with "already exists" — after a short random pause the
    tables exist and opening succeeds.
    """

    def create() -> optuna.storages.RDBStorage:
        attempts = 8
        for attempt in range(attempts):
            try:
                return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **heartbeat)
            except Exception as exc:
                if attempt == attempts - 1 or not _schema_race(exc):
                    raise
                time.sleep(0.2 + random.random() * 0.5)
        raise AssertionError("unreachable")

    return create() if policy is None else policy.call(create)


# ---------------------------------------------------------------------------------------------
# Riding out database restarts and outages
# ---------------------------------------------------------------------------------------------
#: Seconds SQLite itself waits for another process's write lock before "database is locked"
#: (after which, in a search, the retry policy waits on).
SQLITE_LOCK_WAIT = 60.0
#: Seconds of database outage a search waits through by default (``--db-patience``).
DEFAULT_PATIENCE = 300.0
#: Seconds the commands that read a study (leaderboard, show, studies, …) wait for it.
READ_PATIENCE = 30.0
#: Exponential backoff: the n-th wait is drawn from [d/2, d] with d = min(CAP, BASE · 2ⁿ) s.
BACKOFF_BASE, BACKOFF_CAP = 0.25, 10.0
#: What a connection error says when the server restarts, stops, fails over or is locked.
_TRANSIENT_TEXT = (
    "server closed the connection",
    "connection refused",
    "could not connect",
    "connection to server",
    "terminating connection",
    "the database system is",  # … starting up / shutting down / in recovery mode
    "connection already closed",
    "connection is closed",
    "connection reset",
    "connection timed out",
    "timeout expired",
    "broken pipe",
    "ssl connection has been closed",
    "no connection to the server",
    "consuming input failed",
    "server has gone away",
    "lost connection",
    "could not serialize access",  # serialization failure: retry the transaction
    "deadlock detected",
    "lock timeout",
    "lock not available",
    "database is locked",  # SQLite: another process holds the write lock
    "database is busy",
)
#: Errors that look like connection errors but will not heal by waiting.
_PERMANENT_TEXT = (
    "password authentication failed",
    "authentication failed",
    "no pg_hba.conf entry",
    "does not exist",
    "permission denied",
    "no such table",
)


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the errors it was raised from (``__cause__`` / ``__context__``)."""
    seen: set[int] = set()
    chain: list[BaseException] = []
    node: BaseException | None = exc
    while node is not None and id(node) not in seen and len(chain) < 16:
        seen.add(id(node))
        chain.append(node)
        node = node.__cause__ or node.__context__
    return chain


def transient(exc: BaseException) -> bool:
    """Whether ``exc`` (or an error it was raised from) is a database failure that heals by
    waiting: a connection refused or closed, a server restarting, a serialization failure, a
    lock timeout, SQLite's "database is locked". Authentication and schema errors are not."""
    chain = _chain(exc)
    texts = " ".join(str(e).lower() for e in chain)
    if any(t in texts for t in _PERMANENT_TEXT):
        return False
    if any(getattr(e, "connection_invalidated", False) for e in chain):  # SQLAlchemy
        return True
    return any(t in texts for t in _TRANSIENT_TEXT)


def failure_text(exc: BaseException) -> str:
    """The driver's own words for a database failure, on one line (Optuna's wrapper says "an
    exception is raised during the commit" whatever happened)."""
    chain = _chain(exc)
    for e in reversed(chain):
        text = str(e).strip()
        if any(t in text.lower() for t in _TRANSIENT_TEXT):
            first = text.splitlines()[0] if text else type(e).__name__
            return one_line(Exception(first.split("(Background on this error")[0]), 160)
    return one_line(chain[-1], 160)


@dataclass(frozen=True)
class DbEvent:
    """What the database is doing, for the search's display: ``down`` (the first failure of an
    outage), ``retrying`` (each later wait), ``back`` or ``gave_up``."""

    kind: str
    waited: float  # seconds since the outage began
    patience: float
    error: str = ""

    def line(self) -> str:
        """The one-line message (``database unreachable, retrying (12 s of 300 s): …``)."""
        if self.kind == "back":
            return f"database back after {self.waited:.0f} s"
        if self.kind == "gave_up":
            return f"database unreachable for {self.waited:.0f} s: giving up"
        why = f": {self.error}" if self.error else ""
        return f"database unreachable, retrying ({self.waited:.0f} s of {self.patience:.0f} s){why}"


DbListener = Callable[[DbEvent], None]


class RetryPolicy:
    """Retry transient database failures with exponential backoff and jitter, up to ``patience``
    seconds of outage (counted from the outage's first failure, across threads and calls).

    ``call(fn)`` returns ``fn()``; a transient failure is retried after a wait drawn from
    [d/2, d], d = min(``cap``, ``base`` · 2ⁿ) for the n-th retry ("equal jitter": workers that
    lost the server together do not come back in lockstep); any other error is raised at once.
    When the outage outlasts ``patience``, :class:`DatabaseUnavailable` is raised, and from then
    on every call of this policy raises it at once, so the process stops promptly.
    ``on_event`` hears about the outage (:class:`DbEvent`).
    """

    def __init__(
        self,
        url: str,
        patience: float = DEFAULT_PATIENCE,
        on_event: DbListener | None = None,
        *,
        base: float = BACKOFF_BASE,
        cap: float = BACKOFF_CAP,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = redact(url)
        self.patience = float(patience)
        self.on_event = on_event
        self.base, self.cap, self.clock, self.sleep = base, cap, clock, sleep
        self._lock = threading.Lock()
        self.down_since: float | None = None
        self.gave_up: str | None = None
        #: Checked before each wait: True stops waiting (a Ctrl-C remembered for later).
        self.should_stop: Callable[[], bool] = lambda: False

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_lock"]
        state["on_event"] = None
        state.pop("should_stop", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self.should_stop = lambda: False

    def stop_waiting(self) -> None:
        """From now on a transient failure is raised at once (clean-up after a Ctrl-C)."""
        self.patience = 0.0

    def delay(self, attempt: int) -> float:
        """The wait before retry number ``attempt`` (0-based), jittered."""
        d = min(self.cap, self.base * 2.0 ** min(attempt, 60))
        return d / 2 + random.random() * d / 2

    def call(self, fn: Callable[[], Any], *, quiet: bool = False) -> Any:
        """``fn()``, retried through a transient outage.

        ``quiet`` (the heartbeat thread): the call keeps its own clock and neither starts nor
        ends the outage the listener hears about, so "database back" is said by the search's
        own call, whichever thread reaches the database first.
        """
        attempt = 0
        since: float | None = None  # a quiet call's own outage clock
        while True:
            if self.gave_up is not None:
                raise DatabaseUnavailable(self.gave_up)
            try:
                result = fn()
            except Exception as exc:
                if self.patience <= 0 or not transient(exc):
                    raise
                if quiet:
                    since = self.clock() if since is None else since
                    waited = self.clock() - since
                    if waited >= self.patience:
                        raise DatabaseUnavailable(
                            f"database unreachable for {waited:.0f} s"
                        ) from None
                else:
                    waited = self._failed(exc)
                    if waited >= self.patience or self.should_stop():
                        self._give_up(exc, waited)
                self.sleep(min(self.delay(attempt), max(0.0, self.patience - waited) + 0.05))
                attempt += 1
                continue
            if self.down_since is not None and not quiet:
                self._back()
            return result

    def _emit(self, event: DbEvent) -> None:
        if self.on_event is not None:
            with best_effort():
                self.on_event(event)

    def _failed(self, exc: BaseException) -> float:
        now = self.clock()
        with self._lock:
            first = self.down_since is None
            if self.down_since is None:
                self.down_since = now
            waited = now - self.down_since
        kind = "down" if first else "retrying"
        self._emit(DbEvent(kind, waited, self.patience, failure_text(exc)))
        return waited

    def _back(self) -> None:
        with self._lock:
            since, self.down_since = self.down_since, None
        if since is not None:
            self._emit(DbEvent("back", self.clock() - since, self.patience))

    def _give_up(self, exc: BaseException, waited: float) -> None:
        how = (
            f"unreachable for {waited:.0f} s (--db-patience {self.patience:g})"
            if waited >= self.patience
            else f"unreachable for {waited:.0f} s and the search was interrupted"
        )
        self.gave_up = (
            f"database {self.url!r} {how}: {failure_text(exc)}; completed trials are saved — "
            "when it is back, rerun the same command to resume"
        )
        self._emit(DbEvent("gave_up", waited, self.patience, failure_text(exc)))
        raise DatabaseUnavailable(self.gave_up)


class RetryingStorage(BaseStorage, BaseHeartbeat):
    """An Optuna storage whose every call goes through a :class:`RetryPolicy`.

    Wraps the storage Optuna itself would use (for a database, ``_CachedStorage(RDBStorage)``),
    so the search, Optuna's ``optimize`` loop, its heartbeat thread and stale-trial sweep all
    ride out an outage. Retries never record anything twice: a write retried after its first
    attempt did commit (the reply was lost) finds the state it wanted and succeeds; the only
    insert, ``create_new_trial``, fails before the commit when the server is gone. The heartbeat
    is retried quietly and, when the patience runs out, skipped (a missed beat is harmless: the
    grace period of a search's storage is longer than its patience).
    """

    def __init__(self, inner: BaseStorage, policy: RetryPolicy) -> None:
        self._inner = inner
        self.policy = policy

    def __getattr__(self, name: str) -> Any:  # anything else (engine, url, …) is the inner's
        if name.startswith("__") or name in ("_inner", "policy"):
            raise AttributeError(name)
        return getattr(self._inner, name)

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        method = getattr(self._inner, name)
        return self.policy.call(lambda: method(*args, **kwargs))

    # -- the writes whose retry needs care ---------------------------------------------------
    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        failed_once = False

        def attempt() -> bool:
            nonlocal failed_once
            try:
                return self._inner.set_trial_state_values(trial_id, state=state, values=values)
            except optuna.exceptions.UpdateFinishedTrialError:
                if failed_once and _already_set(self._inner, trial_id, state, values):
                    return True  # the first attempt committed; its reply was lost
                raise
            except Exception:
                failed_once = True
                raise

        return self.policy.call(attempt)

    # -- the heartbeat -------------------------------------------------------------------------
    def record_heartbeat(self, trial_id: int) -> None:
        if isinstance(self._inner, BaseHeartbeat):
            with contextlib.suppress(DatabaseUnavailable):
                self.policy.call(lambda: self._inner.record_heartbeat(trial_id), quiet=True)

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        if not isinstance(self._inner, BaseHeartbeat):
            return []
        return self._call("_get_stale_trial_ids", study_id)

    def get_heartbeat_interval(self) -> int | None:
        if not isinstance(self._inner, BaseHeartbeat):
            return None
        return self._inner.get_heartbeat_interval()

    def get_heartbeat_stale_trial_callback(self) -> Any:
        if not isinstance(self._inner, BaseHeartbeat):
            return None
        return self._inner.get_heartbeat_stale_trial_callback()


def _already_set(
    store: BaseStorage, trial_id: int, state: TrialState, values: Sequence[float] | None
) -> bool:
    """Whether trial ``trial_id`` already holds ``state`` and ``values``."""
    trial = store.get_trial(trial_id)
    if trial.state != state:
        return False
    return values is None or list(trial.values or []) == [float(v) for v in values]


def _retried(name: str) -> Callable[..., Any]:
    def method(self: RetryingStorage, *args: Any, **kwargs: Any) -> Any:
        return self._call(name, *args, **kwargs)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = getattr(BaseStorage, name).__doc__
    return method


for _name in sorted(vars(BaseStorage)):
    if _name.startswith("_") or not callable(vars(BaseStorage)[_name]):
        continue
    if _name not in vars(RetryingStorage):
        setattr(RetryingStorage, _name, _retried(_name))
abc.update_abstractmethods(RetryingStorage)


def stop_waiting(study: optuna.Study) -> None:
    """Make ``study``'s storage fail at once from now on (clean-up after a Ctrl-C)."""
    store = study._storage
    if isinstance(store, RetryingStorage):
        store.policy.stop_waiting()


def retrying(store: BaseStorage, policy: RetryPolicy) -> BaseStorage:
    """``store`` (wrapped in Optuna's cache when it is a database) behind ``policy``."""
    if policy.patience <= 0:
        return store
    return RetryingStorage(optuna.storages.get_storage(store), policy)


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


def open_storage(
    url: str | None = None,
    *,
    create: bool = True,
    patience: float = 0.0,
    on_event: DbListener | None = None,
    retry_open: bool = False,
) -> optuna.storages.BaseStorage:
    """Open the Optuna storage at ``url``; one-line :class:`NasntkError` if that fails.

    With ``create=False`` a missing SQLite or journal file is an error instead of a new, empty
    storage (for commands that only read). SQLite files wait up to 60 s for a lock (several
    worker processes share one file); server databases (PostgreSQL, MySQL) check a pooled
    connection before handing it out (``pool_pre_ping``: a restarted server leaves dead ones)
    and record a heartbeat so that the running trials of a killed machine become FAIL after a
    minute — after ``patience`` + 60 s when there is a patience, so that a live worker waiting
    out an outage never has its trial swept as dead.

    ``patience`` > 0 (a search's ``--db-patience``): every call of the returned storage
    retries transient database failures for up to that many seconds of outage
    (:class:`RetryPolicy`, reporting to ``on_event``); 0 (the read-only commands): fail at once.
    Opening itself is retried only with ``retry_open`` (a worker joining a search whose database
    was reached already): a server that cannot be reached when a command starts is most often
    a wrong URL, said at once in one line.
    """
    url = normalize_storage_url(url)
    policy = RetryPolicy(url, patience, on_event)
    open_policy = policy if retry_open else None
    if url.startswith("journal:"):
        return retrying(_open_journal(url, create), policy)
    dialect = url.split("://", 1)[0].split("+", 1)[0].lower()
    if dialect == "sqlite":
        return retrying(_open_sqlite(url, create, open_policy), policy)
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if dialect == "postgresql":
        engine_kwargs["connect_args"] = {"connect_timeout": 10}
        url = _postgres_driver(url)
    grace = 60 + (int(math.ceil(min(patience, 1e8))) if patience > 0 else 0)
    heartbeat = {"heartbeat_interval": 10, "grace_period": grace}
    with opening(url):
        return retrying(_create_rdb(url, engine_kwargs, heartbeat, open_policy), policy)


def _open_journal(url: str, create: bool) -> optuna.storages.BaseStorage:
    path = url[len("journal:") :]
    _check_file(path, url, create)
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    with opening(path, "journal storage"):
        backend = JournalFileBackend(path, lock_obj=JournalFileOpenLock(path))
        return optuna.storages.JournalStorage(backend)


def _open_sqlite(
    url: str, create: bool, policy: RetryPolicy | None = None
) -> optuna.storages.RDBStorage:
    path = url.split("://", 1)[1]
    if not path.startswith("/") or path in ("/", "/:memory:"):
        raise NasntkError(
            f"malformed storage URL {url!r}: use sqlite:///relative/path.db or "
            "sqlite:////absolute/path.db"
        )
    _check_file(path[1:], url, create)
    with opening(url):
        store = _create_rdb(url, {"connect_args": {"timeout": SQLITE_LOCK_WAIT}}, {}, policy)
        _use_wal(store)
        return store


def _postgres_driver(url: str) -> str:
    """``postgresql://`` with the driver that is installed.

    SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3, the driver the ``postgres``
    extra installs (so the same URL works in optuna-dashboard and ``optuna.load_study``); where
    only psycopg2 is installed, name it explicitly.
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
    created one when no search has said). Its reads wait up to :data:`READ_PATIENCE` seconds
    for a database that restarts, then raise :class:`DatabaseUnavailable` (one line)."""
    store = open_storage(storage, create=False, patience=READ_PATIENCE)
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
    store = open_storage(storage, create=False, patience=READ_PATIENCE)
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
