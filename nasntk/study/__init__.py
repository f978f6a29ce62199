"""Training-free architecture search: an Optuna study whose objective scores untrained networks.

:func:`search` is the facade; one module per job behind it:

    config      SearchConfig: every option once, its default, its check; resuming rules
    plan        what is resolved and checked before any trial (space, shape, budgets, study)
    objective   one trial: suggest → dedup → budget → build → score → record
    dedup       a spec already in the study is never scored twice
    record      the trial record: attribute keys, failure/prune kinds, readers and writers
    storage     storage URLs, opening storages, loading and listing studies; database errors
    samplers    samplers and pruners by name, grid probing, per-worker seeds
    liveness    worker ids, dead processes, retrying interrupted trials
    interrupts  Ctrl-C / SIGTERM (the only code that touches signals)
    jobs        one worker's share, run in this process
    workers     worker processes
    models      spaces and networks: resolve a space, seeded builds, rebuild a row (build)

``trials`` is the number of finished trials the study should hold, so rerunning a killed command
finishes the job, and rerunning a finished one only returns the study.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import optuna

from nasntk.errors import NasntkError
from nasntk.study.config import SearchConfig, default_study_name, parse_objectives
from nasntk.study.interrupts import SearchInterrupted
from nasntk.study.jobs import Callback, run_job
from nasntk.study.liveness import fail_dead_trials, worker_id
from nasntk.study.models import SpaceLike, build
from nasntk.study.plan import prepare
from nasntk.study.record import counted_trials, study_config
from nasntk.study.silence import quiet_optuna
from nasntk.study.storage import (
    DEFAULT_STORAGE,
    DatabaseUnavailable,
    DbEvent,
    DbListener,
    load_study,
    normalize_storage_url,
    open_storage,
    stop_waiting,
    study_summaries,
)
from nasntk.study.workers import run_workers

__all__ = [
    "DEFAULT_STORAGE",
    "DbEvent",
    "SearchConfig",
    "SearchInterrupted",
    "build",
    "counted_trials",
    "default_study_name",
    "load_study",
    "normalize_storage_url",
    "open_storage",
    "parse_objectives",
    "search",
    "study_config",
    "study_summaries",
]


def search(
    space: SpaceLike | SearchConfig,
    *,
    callbacks: Sequence[Callback] | None = None,
    on_db_event: DbListener | None = None,
    **options: Any,
) -> optuna.Study:
    """Search ``space`` for the architectures with the best pNTK scores at initialization.

    ``search("nb201", data="digits", trials=20)``: the options are the fields of
    :class:`~nasntk.study.config.SearchConfig` (every one documented there; other keyword
    arguments are score options of :func:`nasntk.proxies.compute`), or pass a whole
    ``SearchConfig`` (options then replace its fields). ``callbacks``: ``f(study, frozen_trial)``
    called in this process after each finished trial. ``on_db_event``: ``f(event)`` called
    when the database goes away and comes back (:class:`~nasntk.study.storage.DbEvent`; the
    search waits up to ``db_patience`` seconds for it).

    Returns:
        The Optuna study (all trials, with every score in ``trial.user_attrs``).

    Raises:
        NasntkError: bad input (unknown space or score, N < 4, malformed or unreachable storage,
            budgets that exclude every architecture, an existing study with other settings), or
            a database unreachable for longer than ``db_patience`` (completed trials are
            saved; rerunning resumes).
        SearchInterrupted: on Ctrl-C, after completed trials are saved and the running ones are
            marked FAIL ``interrupted``; ``exc.study`` is the study.
    """
    if isinstance(space, SearchConfig):
        config = replace(space, **options) if options else space
    else:
        config = SearchConfig.from_kwargs(space, **options)
    with quiet_optuna():
        plan = prepare(config)
        threads = config.threads_per_worker()
        if config.workers == 1 and threads:
            # the reference sample is scored here too: with the threads the trials will use
            import torch

            torch.set_num_threads(threads)
        try:
            study = plan.open_study(on_db_event)
            jobs = plan.jobs(counted_trials(study))
            if not jobs:
                return study
            me = worker_id()
            try:
                if config.workers == 1:
                    run_job(jobs[0], callbacks or (), on_db_event)
                else:
                    run_workers(jobs, study, callbacks or ())
            except KeyboardInterrupt:
                stop_waiting(study)  # mark what it can now; the next run's sweep does the rest
                with contextlib.suppress(Exception, DatabaseUnavailable):
                    fail_dead_trials(study, only_worker=me)
                    fail_dead_trials(study)
                raise SearchInterrupted(study) from None
        except DatabaseUnavailable as exc:
            raise NasntkError(str(exc)) from None
        return study
