"""One worker's share of a search, run in this process: load the study, optimize, stop on a
setting that fails every candidate the same way."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from nasntk.errors import NasntkError
from nasntk.study import record
from nasntk.study.config import SearchConfig
from nasntk.study.interrupts import INTERRUPTS
from nasntk.study.models import resolve_space
from nasntk.study.objective import Objective
from nasntk.study.record import TrialFailed
from nasntk.study.samplers import make_pruner, make_sampler
from nasntk.study.storage import (
    DatabaseUnavailable,
    DbListener,
    RetryingStorage,
    open_storage,
)

__all__ = ["Callback", "Job", "run_job"]

Callback = Callable[[optuna.Study, FrozenTrial], None]


@dataclass(frozen=True)
class Job:
    """One worker's share of a search (picklable: sent to worker processes)."""

    config: SearchConfig  # its ``space`` is the reference stored with trials
    space: Any  # the SearchSpace instance, or None to rebuild it from the reference
    storage: str  # the normalised storage URL
    study_name: str
    seed: int | None  # this worker's sampler seed
    n_trials: int | None  # None: until the deadline
    deadline: float | None  # time.time() after which no new trial starts
    threads: int | None  # torch threads (None: leave them alone)


def run_job(
    job: Job, callbacks: Sequence[Callback] = (), on_db_event: DbListener | None = None
) -> None:
    """Run a worker's trials in this process (Ctrl-C propagates as KeyboardInterrupt).

    Its storage rides out database outages of up to ``config.db_patience`` seconds, telling
    ``on_db_event``; a longer one raises :class:`~nasntk.study.storage.DatabaseUnavailable`.
    """
    if job.threads:
        import torch

        torch.set_num_threads(job.threads)
    config = job.config
    space = job.space
    if space is None:
        space, _ = resolve_space(config.space, config.space_options)
    sampler = make_sampler(config.sampler, job.seed, space=space, parallel=config.workers > 1)
    store = open_storage(
        job.storage, patience=config.db_patience, on_event=on_db_event, retry_open=True
    )
    policy = store.policy if isinstance(store, RetryingStorage) else None
    if policy is not None:  # Ctrl-C while the database is away stops the wait
        policy.should_stop = INTERRUPTS.is_pending
    study = optuna.load_study(
        study_name=job.study_name,
        storage=store,
        sampler=sampler,
        pruner=make_pruner(config.pruner, config.n_low),
    )
    objective = Objective(config, space)
    timeout = None
    if job.deadline is not None:
        timeout = job.deadline - time.time()
        if timeout <= 0:
            return
    guard = SystematicFailure()
    with INTERRUPTS.deferred():
        try:
            study.optimize(
                objective,
                n_trials=job.n_trials,
                timeout=timeout,
                catch=(TrialFailed,),
                callbacks=[guard, *callbacks],
                gc_after_trial=False,
            )
        except BaseException:
            # Once the patience is spent, Optuna's clean-up of the trial it was telling fails
            # too (e.g. as an UnboundLocalError): the database's absence is the one cause.
            if policy is not None and policy.gave_up is not None:
                raise DatabaseUnavailable(policy.gave_up) from None
            raise
    if guard.reason is not None:
        raise NasntkError(
            f"stopped: the first {guard.limit} candidates all failed with: {guard.reason}"
        )


class SystematicFailure:
    """Optuna callback: stop when the first ``limit`` trials of this run all fail the same way.

    A setting that breaks every candidate identically (a missing driver, a device that cannot
    run the kernels) would otherwise fill the study with failures; the reason is raised instead.
    """

    def __init__(self, limit: int = 10) -> None:
        self.limit = limit
        self.reasons: list[str] | None = []
        self.reason: str | None = None

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if self.reasons is None:
            return
        if trial.state != TrialState.FAIL or record.is_duplicate(trial):
            if trial.state == TrialState.COMPLETE:
                self.reasons = None  # something works: never stop
            return
        self.reasons.append(str(trial.user_attrs.get(record.FAIL_REASON, "")))
        if len(self.reasons) >= self.limit and len(set(self.reasons)) == 1:
            self.reason = self.reasons[0]
            study.stop()
