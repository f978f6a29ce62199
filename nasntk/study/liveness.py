"""Which process ran a trial, whether it still lives, and what happens to a dead one's trials.

Each trial stores the id of its process, ``host:pid:start`` (:func:`worker_id`). A RUNNING trial
whose process is gone (on this host: the pid is dead, a zombie, or reused by a process started
at another time; on a server database: a heartbeat silent for a minute) is marked FAIL
``interrupted`` and its candidate is queued again, so nothing sampled is lost and no duplicate
waits for a trial that will never finish. Process facts come from ``psutil`` (Linux, macOS,
Windows alike).
"""

from __future__ import annotations

import datetime
import os
import socket

import optuna
import psutil
from optuna.trial import FrozenTrial, TrialState

from nasntk.study import record, storage
from nasntk.study.record import Failure

__all__ = ["fail_dead_trials", "mark_interrupted", "retry_interrupted", "worker_alive", "worker_id"]

#: A RUNNING trial that has not written its ``worker`` attribute after this long (s) is dead.
NO_WORKER_GRACE = 120.0
#: The reason stored on the trials of a process found dead.
STOPPED = Failure.INTERRUPTED.reason("the search process stopped")


def _start_time(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), None if there is no such process."""
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return None


def worker_id() -> str:
    """``host:pid:start-time`` of this process (stored on each trial it runs)."""
    pid = os.getpid()
    start = _start_time(pid)
    return f"{socket.gethostname()}:{pid}:{'' if start is None else f'{start:.2f}'}"


def _same_start(stored: str, start: float) -> bool:
    """Whether a stored start time is ``start``: seconds since the epoch with a decimal point,
    or (ids written before psutil) clock ticks since boot from ``/proc/<pid>/stat``."""
    try:
        if "." in stored:
            return abs(float(stored) - start) < 0.05
        ticks = int(stored)
    except ValueError:
        return True  # unreadable: cannot tell a reused pid, trust the pid
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    return abs(psutil.boot_time() + ticks / tick - start) < 0.05


def worker_alive(worker: str) -> bool | None:
    """Whether the process that ran a trial still lives: True/False on this host, None elsewhere."""
    try:
        host, pid_text, start = worker.rsplit(":", 2)
        pid = int(pid_text)
    except (ValueError, AttributeError):
        return None
    if host != socket.gethostname():
        return None
    try:
        process = psutil.Process(pid)
        if process.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
            return False
        started = process.create_time()
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True
    return not start or _same_start(start, started)  # else the pid was reused


def mark_interrupted(study: optuna.Study, trial: FrozenTrial, reason: str = STOPPED) -> None:
    """Mark another process's RUNNING trial FAIL ``interrupted`` (best effort)."""
    store = study._storage
    with storage.best_effort():
        store.set_trial_user_attr(trial._trial_id, record.FAIL_REASON, reason)
        store.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)


def _age_seconds(trial: FrozenTrial) -> float | None:
    if trial.datetime_start is None:
        return None
    return (datetime.datetime.now() - trial.datetime_start).total_seconds()


def _dead(trial: FrozenTrial) -> bool:
    worker = str(trial.user_attrs.get(record.WORKER, ""))
    if not worker:  # killed between Optuna's ask and the objective's first write
        age = _age_seconds(trial)
        return age is not None and age > NO_WORKER_GRACE
    return worker_alive(worker) is False


def fail_dead_trials(study: optuna.Study, *, only_worker: str | None = None) -> int:
    """Mark RUNNING trials whose process died (on this host) as FAIL ``interrupted``.

    With ``only_worker``, mark that worker's running trials regardless of liveness (used when
    this process itself was interrupted). Returns the number of trials marked.
    """
    marked = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if only_worker is not None:
            dead = t.user_attrs.get(record.WORKER, "") == only_worker
        else:
            dead = _dead(t)
        if dead:
            mark_interrupted(study, t)
            marked += 1
    if only_worker is None:
        storage.fail_stale(study)
    return marked


def retry_interrupted(study: optuna.Study) -> int:
    """Queue the candidates of interrupted trials again (so no sampled candidate is lost).

    A trial counts as retried once a later trial has the same parameters (queued, running or
    finished). Returns the number of trials queued.
    """
    trials = study.get_trials(deepcopy=False)
    queued = 0
    for t in trials:
        if not t.params or not record.interrupted(t):
            continue
        later = [u for u in trials if u.number > t.number]
        if any(t.params in (u.params, u.system_attrs.get("fixed_params")) for u in later):
            continue
        study.enqueue_trial(t.params, user_attrs={record.RETRY_OF: t.number})
        queued += 1
    return queued
