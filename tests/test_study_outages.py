"""A search rides out database outages: the retry policy, the retrying storage, a locked SQLite.

The policy is checked with a fake clock against its stated rule (which errors are retried, the
backoff bounds, the patience, the events); the storage by running Optuna itself on a storage
that fails transiently on every third call; SQLite by a real lock held by another connection
while a real search runs. The PostgreSQL restart and long-outage tests are in test_postgres.py.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
import sqlalchemy.exc
from invariants import assert_search_invariant, builds
from optuna.storages import InMemoryStorage
from optuna.trial import TrialState
from search_toy_space import TINY, ToySpace

from nasntk import leaderboard
from nasntk.cli.main import main
from nasntk.study import load_study, search
from nasntk.study import storage as storage_mod
from nasntk.study.storage import DatabaseUnavailable, RetryingStorage, RetryPolicy, transient

URL = "postgresql://nasntk:secret@db.example:5432/nasntk"


def _closed() -> Exception:
    """What Optuna raises when the server restarts: its wrapper around the driver's error."""
    try:
        try:
            raise sqlalchemy.exc.OperationalError(
                "SELECT 1", {}, Exception("server closed the connection unexpectedly")
            )
        except sqlalchemy.exc.OperationalError as exc:
            raise optuna.exceptions.StorageInternalError(
                "An exception is raised during the commit."
            ) from exc
    except optuna.exceptions.StorageInternalError as wrapped:
        return wrapped


class FakeTime:
    """A clock that moves only when the policy sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _policy(patience: float, events: list | None = None) -> tuple[RetryPolicy, FakeTime]:
    fake = FakeTime()
    sink = events.append if events is not None else None
    policy = RetryPolicy(URL, patience, sink, clock=fake.clock, sleep=fake.sleep)
    return policy, fake


def _failing(times: int, error: Exception) -> Any:
    calls = {"n": 0}

    def fn() -> str:
        calls["n"] += 1
        if calls["n"] <= times:
            raise error
        return "ok"

    fn.calls = calls  # type: ignore[attr-defined]
    return fn


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (_closed(), True),
        (sqlalchemy.exc.OperationalError("x", {}, Exception("Connection refused")), True),
        (sqlite3.OperationalError("database is locked"), True),
        (Exception("could not serialize access due to concurrent update"), True),
        (Exception("the database system is starting up"), True),
        (Exception('password authentication failed for user "nasntk"'), False),
        (Exception('relation "trials" does not exist'), False),
        (sqlalchemy.exc.IntegrityError("x", {}, Exception("duplicate key")), False),
        (ValueError("bad value"), False),
    ],
)
def test_which_failures_are_waited_out(error: Exception, expected: bool) -> None:
    assert transient(error) is expected


def test_a_transient_failure_is_retried_with_jittered_exponential_backoff() -> None:
    events: list = []
    policy, fake = _policy(300.0, events)
    fn = _failing(5, _closed())
    assert policy.call(fn) == "ok" and fn.calls["n"] == 6
    # the n-th wait lies in [d/2, d], d = min(cap, base * 2^n)
    for n, slept in enumerate(fake.sleeps):
        d = min(policy.cap, policy.base * 2.0**n)
        assert d / 2 <= slept <= d, (n, slept)
    assert [e.kind for e in events] == ["down", "retrying", "retrying", "retrying", "retrying"] + [
        "back"
    ]
    assert events[-1].waited == pytest.approx(sum(fake.sleeps))
    assert events[1].line().startswith("database unreachable, retrying (0 s of 300 s)")
    assert "server closed the connection" in events[0].error  # the driver's words, not Optuna's
    assert events[-1].line() == f"database back after {sum(fake.sleeps):.0f} s"


def test_other_errors_and_zero_patience_raise_at_once() -> None:
    policy, fake = _policy(300.0)
    fn = _failing(1, ValueError("bad value"))
    with pytest.raises(ValueError):
        policy.call(fn)
    assert fn.calls["n"] == 1 and not fake.sleeps
    impatient, fake = _policy(0.0)
    with pytest.raises(optuna.exceptions.StorageInternalError):
        impatient.call(_failing(1, _closed()))
    assert not fake.sleeps


def test_past_the_patience_one_line_then_every_call_fails_at_once() -> None:
    events: list = []
    policy, fake = _policy(30.0, events)
    fn = _failing(10**6, _closed())
    with pytest.raises(DatabaseUnavailable) as info:
        policy.call(fn)
    message = str(info.value)
    assert "\n" not in message and "secret" not in message  # one line, password redacted
    assert "nasntk:***@db.example" in message and "--db-patience 30" in message
    assert "rerun the same command to resume" in message
    assert 30.0 <= fake.now <= 30.0 + 0.1 and events[-1].kind == "gave_up"
    calls = fn.calls["n"]
    with pytest.raises(DatabaseUnavailable):
        policy.call(fn)  # no more waiting in this process
    assert fn.calls["n"] == calls


def test_the_heartbeat_neither_starts_nor_ends_the_outage_the_user_hears_of() -> None:
    events: list = []
    policy, fake = _policy(300.0, events)
    assert policy.call(_failing(2, _closed()), quiet=True) == "ok" and fake.sleeps
    assert events == [] and policy.down_since is None
    with pytest.raises(DatabaseUnavailable):  # a quiet call gives up on its own clock
        policy.call(_failing(10**6, _closed()), quiet=True)
    assert policy.gave_up is None and events == []  # ... and stops nothing else
    policy.call(_failing(1, _closed()))  # the search's own call: an outage, then back
    assert [e.kind for e in events] == ["down", "back"]


def test_a_remembered_ctrl_c_stops_the_wait() -> None:
    policy, fake = _policy(300.0)
    policy.should_stop = lambda: fake.now > 2.0
    with pytest.raises(DatabaseUnavailable, match="interrupted"):
        policy.call(_failing(10**6, _closed()))
    assert fake.now < 20.0


class FlakyStorage(InMemoryStorage):
    """A third of the storage calls (drawn at random, seeded) fail as a restarting server's do;
    half the failing writes committed first (the reply lost on the way back), the case a retry
    must not repeat."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.failures = 0
        self.rng = random.Random(0)

    def _flake(self) -> None:
        self.calls += 1
        if self.rng.random() < 1 / 3:
            self.failures += 1
            raise _closed()

    def __getattribute__(self, name: str) -> Any:
        attr = super().__getattribute__(name)
        if name.startswith("_") or not callable(attr) or name in ("get_heartbeat_interval",):
            return attr

        def flaky(*args: Any, **kwargs: Any) -> Any:
            if name.startswith("set_") and self.rng.random() < 0.5:
                result = attr(*args, **kwargs)  # commits, then the connection drops
                self._flake()
                return result
            self._flake()
            return attr(*args, **kwargs)

        return flaky


def test_optuna_runs_a_study_on_a_flaky_storage_through_the_retrying_wrapper() -> None:
    inner = FlakyStorage()
    fake = FakeTime()
    policy = RetryPolicy(URL, 300.0, clock=fake.clock, sleep=fake.sleep)
    study = optuna.create_study(storage=RetryingStorage(inner, policy))
    study.optimize(lambda t: (t.suggest_float("x", -1, 1) - 0.5) ** 2, n_trials=20)
    trials = study.get_trials(deepcopy=False)
    assert inner.failures > 20  # the wrapper really rode out many failures
    assert len(trials) == 20 and all(t.state == TrialState.COMPLETE for t in trials)
    assert all(t.value == pytest.approx((t.params["x"] - 0.5) ** 2) for t in trials)
    # and without the wrapper the same storage stops Optuna at once
    with pytest.raises(optuna.exceptions.StorageInternalError):
        optuna.create_study(storage=FlakyStorage()).optimize(lambda t: 0.0, n_trials=20)


def test_a_state_write_that_committed_before_the_connection_dropped_is_not_an_error() -> None:
    inner = InMemoryStorage()
    study_id = inner.create_new_study([optuna.study.StudyDirection.MINIMIZE])
    trial_id = inner.create_new_trial(study_id)
    original = inner.set_trial_state_values
    calls = {"n": 0}

    def commits_then_drops(trial_id: int, state: TrialState, values: Any = None) -> bool:
        calls["n"] += 1
        result = original(trial_id, state=state, values=values)
        if calls["n"] == 1:
            raise _closed()
        return result

    inner.set_trial_state_values = commits_then_drops  # type: ignore[method-assign]
    fake = FakeTime()
    wrapped = RetryingStorage(inner, RetryPolicy(URL, 60.0, clock=fake.clock, sleep=fake.sleep))
    assert wrapped.set_trial_state_values(trial_id, TrialState.COMPLETE, [0.25]) is True
    assert calls["n"] == 2 and inner.get_trial(trial_id).values == [0.25]
    # a genuine second tell (no failed attempt before it) is still refused, as Optuna refuses it
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        wrapped.set_trial_state_values(trial_id, TrialState.FAIL)


def test_a_locked_sqlite_file_delays_the_search_and_never_kills_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, build_log: Path
) -> None:
    """Another process holds the study file's write lock for 3 s while a candidate is scored;
    SQLite's own wait is shortened to 0.2 s, so the retry policy does the waiting."""
    monkeypatch.setattr(storage_mod, "SQLITE_LOCK_WAIT", 0.2)
    pause = tmp_path / "pause"
    pause.mkdir()
    monkeypatch.setenv("TOY_SPACE_PAUSE", f"2:{pause}")
    db = tmp_path / "study.db"
    held: dict[str, float] = {}
    events: list = []

    def locker() -> None:
        while not list(pause.glob("paused.*")):
            time.sleep(0.01)
        con = sqlite3.connect(db, isolation_level=None, timeout=30)
        con.execute("BEGIN EXCLUSIVE")
        held["from"] = time.monotonic()
        (pause / "go").touch()
        time.sleep(3.0)
        held["to"] = time.monotonic()
        con.execute("COMMIT")
        con.close()

    thread = threading.Thread(target=locker)
    thread.start()
    started = time.monotonic()
    study = search(
        ToySpace(),
        trials=6,
        storage=f"sqlite:///{db}",
        seed=0,
        objective="pntk_live_g",
        on_db_event=events.append,
        **TINY,
    )
    thread.join()
    assert time.monotonic() - started >= 3.0 and "to" in held
    kinds = [e.kind for e in events]
    assert "down" in kinds and kinds[-1] == "back", kinds
    assert "database is locked" in events[0].error
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 6
    assert_search_invariant(trials, counted=6, built=builds(build_log))


def test_the_reading_commands_wait_briefly_and_say_an_outage_in_one_line(
    db: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    search(ToySpace(), trials=2, storage=db, seed=0, objective="pntk_live_g", **TINY)
    store = load_study(db)._storage
    assert isinstance(store, RetryingStorage)
    assert store.policy.patience == storage_mod.READ_PATIENCE > 0

    def gone(*args: Any, **kwargs: Any) -> Any:
        raise DatabaseUnavailable("database 'x' unreachable for 30 s: gone; rerun the command")

    monkeypatch.setattr(leaderboard, "rows", gone)
    assert main(["leaderboard", "--storage", db]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "nasntk: error: database 'x' unreachable for 30 s: gone; rerun the command"
    ]
