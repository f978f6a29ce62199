"""Tests of nasntk.study.liveness: worker ids, dead processes, retrying their candidates."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import optuna
import psutil
from optuna.trial import TrialState, create_trial

from nasntk.study import liveness, record


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # reaped: the pid is free
    return proc.pid


def test_worker_ids_and_liveness() -> None:
    me = liveness.worker_id()
    host, pid, start = me.rsplit(":", 2)
    assert host == socket.gethostname() and int(pid) == os.getpid() and "." in start
    assert liveness.worker_alive(me) is True
    assert liveness.worker_alive(f"{host}:{_dead_pid()}:1.00") is False
    assert liveness.worker_alive(f"{host}:{os.getpid()}:12.00") is False  # the pid was reused
    assert liveness.worker_alive("elsewhere.example:1:2.00") is None  # another host: unknown
    assert liveness.worker_alive("garbage") is None


def test_ids_written_before_psutil_are_understood() -> None:
    """Earlier versions stored the start time in clock ticks since boot (Linux /proc)."""
    started = psutil.Process().create_time()
    ticks = round((started - psutil.boot_time()) * os.sysconf("SC_CLK_TCK"))
    host = socket.gethostname()
    assert liveness.worker_alive(f"{host}:{os.getpid()}:{ticks}") is True
    assert liveness.worker_alive(f"{host}:{os.getpid()}:{ticks + 500}") is False


def test_a_dead_workers_trials_are_failed_and_retried() -> None:
    study = optuna.create_study()
    study.add_trial(create_trial(value=1.0, params={}, distributions={}))
    alive = study.ask({"x": optuna.distributions.IntDistribution(0, 9)})
    alive.set_user_attr(record.WORKER, liveness.worker_id())
    dead = study.ask({"x": optuna.distributions.IntDistribution(0, 9)})
    dead.set_user_attr(record.WORKER, f"{socket.gethostname()}:{_dead_pid()}:1.00")
    assert liveness.fail_dead_trials(study) == 1
    frozen = study.trials[dead.number]
    assert frozen.state == TrialState.FAIL and record.interrupted(frozen)
    assert frozen.user_attrs[record.FAIL_REASON] == "interrupted: the search process stopped"
    assert study.trials[alive.number].state == TrialState.RUNNING
    assert liveness.retry_interrupted(study) == 1
    assert liveness.retry_interrupted(study) == 0  # queued once
    (queued,) = study.get_trials(states=(TrialState.WAITING,))
    assert queued.user_attrs[record.RETRY_OF] == dead.number
    # This process interrupted: its own running trials are marked regardless of liveness.
    assert liveness.fail_dead_trials(study, only_worker=liveness.worker_id()) == 1
