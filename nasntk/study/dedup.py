"""A spec already in the study is never scored twice: find the earlier trial, reuse its outcome.

Rule (safe with any number of processes sharing a storage): a trial first writes its spec key,
then looks at the *earlier* trials (smaller number) with the same key. Of two racing trials the
later one always sees the earlier one, and only the earlier one scores.

Outcomes that apply to a later trial of the same spec: COMPLETE (values reused), FAIL (the same
failure), PRUNED by the multi-fidelity pruner. Interrupted trials and budget prunes do not apply
(budgets may change between runs; the check is cheap), so the spec is evaluated again. A running
earlier trial is waited for unless its process is known dead.
"""

from __future__ import annotations

import time

import optuna
from optuna.trial import FrozenTrial, TrialState

from nasntk.study import liveness, record, storage
from nasntk.study.record import Prune

__all__ = ["earlier_outcome", "reuse"]

#: Longest wait (s) for another process scoring the same spec before scoring it here.
MAX_DUPLICATE_WAIT = 1800.0
#: Seconds to wait for an earlier running trial to write its spec key.
KEYLESS_WAIT = 60.0
_POLL = 0.2


def _applies(trial: FrozenTrial) -> bool:
    """Whether a finished trial's outcome holds for any later trial of the same spec."""
    if trial.state == TrialState.COMPLETE:
        return True
    if trial.state == TrialState.FAIL:
        return not record.interrupted(trial)
    if trial.state == TrialState.PRUNED:
        return record.prune(trial) is not Prune.OVER_BUDGET
    return False


def _scan(
    trial: optuna.Trial, key: str, keyless_wait: bool
) -> tuple[list[FrozenTrial], list[FrozenTrial]]:
    """The earlier trials of this spec whose outcome applies, and those still running.

    An earlier RUNNING trial that has not written its key yet may be this very spec (both would
    score it): it counts as running while ``keyless_wait`` (a process killed at that instant
    never writes one).
    """
    usable: list[FrozenTrial] = []
    running: list[FrozenTrial] = []
    for t in trial.study.get_trials(deepcopy=False):
        if t.number >= trial.number:
            continue
        if t.state == TrialState.RUNNING and record.KEY not in t.user_attrs:
            if keyless_wait:
                running.append(t)
        elif t.user_attrs.get(record.KEY) != key:
            continue
        elif t.state == TrialState.RUNNING:
            running.append(t)
        elif _applies(t):
            usable.append(t)
    return usable, running


def earlier_outcome(trial: optuna.Trial, key: str) -> FrozenTrial | None:
    """The earliest earlier trial with this spec whose outcome applies (waits if running).

    COMPLETE trials are preferred; after ``MAX_DUPLICATE_WAIT`` seconds of waiting for running
    ones the spec is scored here anyway (None).
    """
    started = time.monotonic()
    while True:
        waited = time.monotonic() - started
        usable, running = _scan(trial, key, keyless_wait=waited < KEYLESS_WAIT)
        if usable:
            complete = [t for t in usable if t.state == TrialState.COMPLETE]
            return (complete or usable)[0]
        if not running or waited > MAX_DUPLICATE_WAIT:
            return None
        # An earlier trial is scoring this very spec: wait for it unless its process died.
        for t in running:
            if liveness.worker_alive(str(t.user_attrs.get(record.WORKER, ""))) is False:
                liveness.mark_interrupted(trial.study, t)
        storage.fail_stale(trial.study)
        time.sleep(_POLL)


def reuse(trial: optuna.Trial, original: FrozenTrial, started: float) -> list[float]:
    """Make ``trial`` a duplicate of ``original``: its values, or the same prune or failure."""
    record.copy_outcome(trial, original)
    trial.set_user_attr(record.TIME_TOTAL, time.perf_counter() - started)
    if original.state == TrialState.COMPLETE:
        return list(original.values)
    if original.state == TrialState.PRUNED:
        reason = original.user_attrs.get(record.PRUNE_REASON, "pruned")
        raise optuna.TrialPruned(f"duplicate of trial {original.number}: {reason}")
    raise record.TrialFailed(str(original.user_attrs.get(record.FAIL_REASON, "failed")))
