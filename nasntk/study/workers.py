"""Worker processes: one spawned process per job, sharing the study through its storage.

The parent polls the storage and calls the callbacks (progress display) for each newly finished
trial; a worker's user error comes back as one line through a queue; on Ctrl-C, or when the
database stays away longer than the patience, the parent asks every worker to stop (SIGTERM,
their Ctrl-C), waits, and kills the ones that do not. During a shorter outage the parent's polls
and the workers' calls all wait for the database (each process retries on its own).
"""

from __future__ import annotations

import multiprocessing
import queue
import time
from collections.abc import Sequence
from typing import Any

import optuna

from nasntk.errors import NasntkError, one_line
from nasntk.study.interrupts import as_worker_process, interrupt
from nasntk.study.jobs import Callback, Job, run_job
from nasntk.study.silence import quiet_optuna
from nasntk.study.storage import DatabaseUnavailable

__all__ = ["run_workers"]


def _worker_main(job: Job, errors: Any) -> None:
    """Entry point of a worker process."""
    as_worker_process()
    try:
        with quiet_optuna():
            run_job(job)
    except KeyboardInterrupt:
        pass
    except (NasntkError, DatabaseUnavailable) as exc:
        errors.put(str(exc))
    except BaseException as exc:  # noqa: B036 - reported to the parent as one line
        errors.put(f"worker failed: {type(exc).__name__}: {one_line(exc)}")


def _stop(procs: Sequence[Any], grace: float = 30.0) -> None:
    """Ask live workers to stop (their Ctrl-C), then wait; kill after ``grace`` seconds."""
    for p in procs:
        if p.is_alive() and p.pid is not None:
            interrupt(p.pid)
    deadline = time.monotonic() + grace
    for p in procs:
        p.join(timeout=max(0.1, deadline - time.monotonic()))
        if p.is_alive():
            p.kill()
            p.join()


class _Watcher:
    """Calls the callbacks for each trial that finished since the last look; reads errors."""

    def __init__(self, study: optuna.Study, callbacks: Sequence[Callback], errors: Any) -> None:
        self.study = study
        self.callbacks = callbacks
        self.errors = errors
        self.seen = {t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()}

    def poll(self) -> None:
        for t in self.study.get_trials(deepcopy=False):
            if t.state.is_finished() and t.number not in self.seen:
                self.seen.add(t.number)
                for cb in self.callbacks:
                    cb(self.study, t)

    def error(self) -> str | None:
        try:
            return str(self.errors.get(timeout=0.05))
        except queue.Empty:
            return None


def run_workers(jobs: Sequence[Job], study: optuna.Study, callbacks: Sequence[Callback]) -> None:
    """Run one process per job; call ``callbacks`` here for each trial they finish."""
    ctx = multiprocessing.get_context("spawn")
    errors = ctx.Queue()
    procs = [ctx.Process(target=_worker_main, args=(job, errors)) for job in jobs]
    watcher = _Watcher(study, callbacks, errors)
    try:
        for p in procs:
            p.start()
        while any(p.is_alive() for p in procs):
            procs[0].join(timeout=0.5)
            watcher.poll()
            message = watcher.error()
            if message is not None:
                _stop(procs)
                raise NasntkError(message)
    except (KeyboardInterrupt, DatabaseUnavailable):
        _stop(procs)
        raise
    watcher.poll()
    message = watcher.error()
    if message is not None:
        raise NasntkError(message)
    bad = [p.exitcode for p in procs if p.exitcode not in (0, None)]
    if bad:
        raise NasntkError(f"a worker process exited with code {bad[0]}")
