"""The plan of a search: what is resolved and checked before any trial runs.

:func:`prepare` resolves the space and the data's input shape, refuses budgets that exclude every
architecture and continuous spaces for the grid sampler, and names the study;
:meth:`Plan.open_study` creates or resumes it (refusing one made with other settings) and recovers
the trials of dead processes; :meth:`Plan.jobs` splits the trials still to run among the workers.
"""

from __future__ import annotations

import math
import pickle
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import optuna

from nasntk.errors import NasntkError
from nasntk.study import liveness, record
from nasntk.study.config import SearchConfig
from nasntk.study.jobs import Job
from nasntk.study.models import resolve_space
from nasntk.study.reference import ensure_reference
from nasntk.study.samplers import grid_of, worker_seed
from nasntk.study.silence import no_warnings
from nasntk.study.storage import (
    DbListener,
    create_or_load_study,
    normalize_storage_url,
    open_storage,
)

if TYPE_CHECKING:
    from nasntk.search_spaces import SearchSpace

__all__ = ["Plan", "check_budget_feasible", "prepare"]


@dataclass(frozen=True)
class Plan:
    """A checked search: the config, the space, the input shape, where the study lives."""

    config: SearchConfig
    space: SearchSpace
    space_ref: str  # what trials store as their space (a registry name or module:Class)
    shape: dict[str, int]  # num_classes, in_chans, img_size of the networks
    url: str  # the normalised storage URL
    study_name: str

    def open_study(self, on_db_event: DbListener | None = None) -> optuna.Study:
        """Create the study or resume it (same settings only); recover dead processes' trials.

        Every call of the returned study's storage rides out database outages of up to
        ``config.db_patience`` seconds, telling ``on_db_event`` (:class:`storage.RetryPolicy`).
        """
        config = self.config
        directions = list(config.directions)
        store = open_storage(self.url, patience=config.db_patience, on_event=on_db_event)
        study = create_or_load_study(store, self.study_name, directions)
        existing = record.study_config(study)
        if not existing and not study.trials:
            study.set_user_attr(record.STUDY_ATTR, config.stored(self.space_ref, self.shape))
            # optuna-dashboard and Optuna's own tools show these names instead of "Objective 0"
            with no_warnings():  # set_metric_names is marked experimental
                study.set_metric_names(list(config.objectives))
        else:
            reason = config.compatible(
                existing, [d.name.lower() for d in study.directions], self.space_ref, self.shape
            )
            if reason is not None:
                raise NasntkError(
                    f"study {self.study_name!r} exists with {reason}; "
                    "pass --study NEW_NAME for a new study"
                )
        ensure_reference(study, config, self.space, self.shape)
        liveness.fail_dead_trials(study)
        liveness.retry_interrupted(study)
        study.set_user_attr(record.SEARCHED_AT, time.time())
        return study

    def jobs(self, done: int) -> list[Job]:
        """The workers' shares of what is left when the study holds ``done`` counted trials."""
        config = self.config
        target = config.target_trials
        remaining = None if target is None else max(0, target - done)
        if remaining == 0:
            return []
        workers = config.workers
        deadline = None if config.timeout is None else time.time() + config.timeout
        space = self.space if workers == 1 else _picklable(self.space)
        portable = replace(config, space=self.space_ref)
        jobs = []
        for i in range(workers):
            share = None
            if remaining is not None:
                share = remaining // workers + (1 if i < remaining % workers else 0)
            if share == 0:
                continue
            jobs.append(
                Job(
                    config=portable,
                    space=space,
                    storage=self.url,
                    study_name=self.study_name,
                    seed=worker_seed(config.seed, i, done),
                    n_trials=share,
                    deadline=deadline,
                    threads=config.threads_per_worker(),
                )
            )
        return jobs


def prepare(config: SearchConfig) -> Plan:
    """Resolve and check everything a search needs before it touches the storage."""
    from nasntk import data as data_mod

    space, space_ref = resolve_space(config.space, config.space_options)
    info = data_mod.info(config.data)  # a missing or malformed data source raises here
    shape = {k: int(info[k]) for k in record.SHAPE_KEYS}
    if config.img_size is not None:
        shape[record.IMG_SIZE] = config.img_size
    if "size" in info and int(info["size"]) < config.n_kernel:
        raise NasntkError(
            f"data {config.data!r} has {info['size']} images, fewer than N={config.n_kernel}; "
            f"use --n-kernel {info['size']} or fewer"
        )
    check_budget_feasible(space, shape, config.max_params, config.max_flops)
    if config.sampler == "grid":
        grid_of(space)  # continuous spaces fail here, before anything is stored
    url = normalize_storage_url(config.storage)
    return Plan(config, space, space_ref, shape, url, config.name_for(space_ref))


def check_budget_feasible(
    space: SearchSpace,
    shape: dict[str, int],
    max_params: int | None,
    max_flops: int | None,
    probes: int = 32,
) -> None:
    """Refuse budgets that exclude every one of ``probes`` random architectures of the space."""
    if max_params is None and max_flops is None:
        return
    probe = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    smallest_p, smallest_f = math.inf, math.inf
    for _ in range(probes):
        trial = probe.ask()
        try:
            spec = space.validate(space.suggest(trial))
            p = space.params(spec, **shape) if max_params is not None else 0
            f = space.flops(spec, **shape) if max_flops is not None else 0
        except Exception:
            continue
        smallest_p, smallest_f = min(smallest_p, p), min(smallest_f, f)
        if (max_params is None or p <= max_params) and (max_flops is None or f <= max_flops):
            return
    parts = []
    if max_params is not None:
        parts.append(f"--max-params {max_params:,} (smallest sampled: {smallest_p:,})")
    if max_flops is not None:
        parts.append(f"--max-flops {max_flops:,} (smallest sampled: {smallest_f:,})")
    raise NasntkError(
        f"budget excludes every architecture: none of {probes} sampled from space "
        f"{space.name!r} fits {' and '.join(parts)}"
    )


def _picklable(space: SearchSpace) -> SearchSpace | None:
    """The space itself if it can be sent to a worker process, else None (rebuilt by name)."""
    try:
        pickle.loads(pickle.dumps(space))
    except Exception:
        return None
    return space
