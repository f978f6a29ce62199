"""The trial record: what a search stores on each Optuna trial, and how every reader reads it.

The study *is* the record: no bookkeeping beside what Optuna stores. Each trial carries flat user
attributes, the keys below, plus one numeric attribute per score, named after the score
(``default``, ``pntk_cond``, ``pntk_cond_std`` with ``seeds > 1``, …). Non-finite scores are
stored as the strings ``"inf"``, ``"-inf"``, ``"nan"`` (portable JSON). The study itself carries
the search configuration under the study user attribute ``"nasntk"``
(:meth:`nasntk.study.config.SearchConfig.stored`).

Why a trial failed or was pruned is one line of text (``fail_reason`` / ``prune_reason``) whose
first words are its kind: :class:`Failure` and :class:`Prune` write and read them, so that no
reader parses prefixes of its own. This format is what studies already on disk hold; it is not
to be changed (a study written by any earlier version loads and displays the same).
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Mapping
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

# -- attribute keys (trial user attributes) ---------------------------------------------------
SPEC = "spec"  # the canonical JSON text of the spec (sorted keys, no spaces)
KEY = "key"  # equal architectures <=> equal keys (SearchSpace.key)
ARCH = "arch"  # the space's text form of the spec
SPACE = "space"  # a registry name or "module:Class"
SPACE_OPTIONS = "space_options"
DATA = "data"
NUM_CLASSES, IN_CHANS, IMG_SIZE = "num_classes", "in_chans", "img_size"
N = "n"  # images in the kernel
PARAMS, FLOPS = "params", "flops"  # meta-device counts of the budget check
REASONS = "reasons"  # {score: why it is undefined}
WORKER = "worker"  # liveness.worker_id() of the process that ran the trial
DUPLICATE_OF = "duplicate_of"  # the number of the trial whose outcome was reused
RETRY_OF = "retry_of"  # the number of the interrupted trial whose candidate this retries
FAIL_REASON, PRUNE_REASON = "fail_reason", "prune_reason"
LOW_FIDELITY = "low_fidelity"  # {"n": n_low, <objective>: small-N value}
#: A trial whose spec is a member of the study's reference sample: its scores were computed
#: when the study was made (nasntk.study.reference) and are reused, not recomputed.
REFERENCE_MEMBER = "reference_member"
#: What the measured scores (latency_ms, train_memory_mb, ...) were measured with: device,
#: torch threads, batches, timed blocks (nasntk.proxies.hardware.facts).
HARDWARE = "hardware"
TIME_BUDGET, TIME_BUILD, TIME_SCORE, TIME_TOTAL = (
    "time_budget",
    "time_build",
    "time_score",
    "time_total",
)
TIME_MEASURE = "time_measure"  # the measured scores, between the build and the kernels

SHAPE_KEYS = (NUM_CLASSES, IN_CHANS, IMG_SIZE)
#: Every user attribute that is not a score.
RECORD_KEYS = (
    SPEC, KEY, ARCH, SPACE, SPACE_OPTIONS, DATA, *SHAPE_KEYS, N, PARAMS, FLOPS, REASONS, WORKER,
    DUPLICATE_OF, RETRY_OF, FAIL_REASON, PRUNE_REASON, LOW_FIDELITY, REFERENCE_MEMBER,
    TIME_BUDGET, TIME_BUILD, TIME_SCORE, TIME_TOTAL, HARDWARE, TIME_MEASURE,
)  # fmt: skip
#: What a duplicate does not copy from the trial it reuses (they describe that other run).
NOT_COPIED = (
    WORKER, DUPLICATE_OF, RETRY_OF, TIME_TOTAL, TIME_BUILD, TIME_SCORE, TIME_BUDGET, TIME_MEASURE,
)  # fmt: skip
#: The study user attribute holding the search configuration.
STUDY_ATTR = "nasntk"
#: Study attribute: when a search last opened the study (seconds since the epoch); the commands
#: that take a study default to the one searched last.
SEARCHED_AT = "searched_at"


class TrialFailed(Exception):
    """Raised inside the objective once a trial's ``fail_reason`` is written (FAIL, search goes on)."""


class Failure(enum.Enum):
    """Why a trial failed: the first words of its ``fail_reason``."""

    INTERRUPTED = "interrupted"  # Ctrl-C, SIGTERM, or its process died: retried, not counted
    SUGGEST = "suggest"  # the space could not suggest or describe a spec
    OUT_OF_MEMORY = "out of memory"
    NON_FINITE = "non-finite"  # an objective is inf or nan
    ERROR = "error"  # any other exception: the reason is its one-line text, no prefix

    def reason(self, detail: str = "") -> str:
        """The stored text of a failure of this kind."""
        if self is Failure.ERROR:
            return detail
        if self is Failure.OUT_OF_MEMORY:
            return self.value
        if self is Failure.NON_FINITE:
            return f"{self.value} {detail}"
        return f"{self.value}: {detail}" if detail else self.value

    @classmethod
    def of(cls, reason: str | None) -> Failure:
        """The kind of a stored ``fail_reason``; none stored means the process stopped mid-trial."""
        if reason is None or reason.startswith(cls.INTERRUPTED.value):
            return cls.INTERRUPTED
        if reason.startswith(f"{cls.SUGGEST.value}: "):
            return cls.SUGGEST
        if reason == cls.OUT_OF_MEMORY.value:
            return cls.OUT_OF_MEMORY
        if reason.startswith(f"{cls.NON_FINITE.value} "):
            return cls.NON_FINITE
        return cls.ERROR


class Prune(enum.Enum):
    """Why a trial was pruned: the first words of its ``prune_reason``."""

    OVER_BUDGET = "over budget"  # over --max-params / -flops / -latency-ms / -train-memory-mb
    MULTI_FIDELITY = "multi-fidelity"  # the pruner stopped it after the small-N score

    def reason(self, detail: str) -> str:
        return f"{self.value}: {detail}"

    @classmethod
    def of(cls, reason: str | None) -> Prune | None:
        for kind in cls:
            if (reason or "").startswith(kind.value):
                return kind
        return None


# -- values ---------------------------------------------------------------------------------------
def encode_float(value: float) -> float | str:
    """Floats as-is; non-finite ones as the strings 'inf', '-inf', 'nan' (portable JSON)."""
    return value if math.isfinite(value) else str(value)


def decode_float(value: Any) -> Any:
    """Stored numbers back to floats ('inf', '-inf', 'nan' strings included); others as-is."""
    if isinstance(value, str) and value in ("inf", "-inf", "nan"):
        return float(value)
    return value


def encode_spec(spec: Mapping[str, Any]) -> str:
    """The canonical JSON text of a spec (what ``spec`` holds)."""
    return json.dumps(spec, sort_keys=True, separators=(",", ":"))


# -- readers of one trial ------------------------------------------------------------------------
def failure(trial: FrozenTrial) -> Failure | None:
    """The kind of failure of a FAIL trial (None for any other state)."""
    if trial.state != TrialState.FAIL:
        return None
    return Failure.of(trial.user_attrs.get(FAIL_REASON))


def prune(trial: FrozenTrial) -> Prune | None:
    """The kind of prune of a PRUNED trial (None for any other state or a foreign reason)."""
    if trial.state != TrialState.PRUNED:
        return None
    return Prune.of(trial.user_attrs.get(PRUNE_REASON))


def interrupted(trial: FrozenTrial) -> bool:
    """A FAIL trial whose run was cut short (its candidate is retried; it does not count)."""
    return failure(trial) is Failure.INTERRUPTED


def counted(trial: FrozenTrial) -> bool:
    """Whether a trial counts towards ``trials``: finished, and not an interrupted one."""
    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
        return True
    return trial.state == TrialState.FAIL and not interrupted(trial)


def is_duplicate(trial: FrozenTrial) -> bool:
    """Whether the trial reused the outcome of an earlier trial with the same spec."""
    return DUPLICATE_OF in trial.user_attrs


def scores(trial: FrozenTrial) -> dict[str, Any]:
    """The scores stored on a trial: ``{name: number}`` in stored order (non-finite decoded)."""
    out = {}
    for key, value in trial.user_attrs.items():
        if key in RECORD_KEYS:
            continue
        value = decode_float(value)
        if isinstance(value, (int, float)):
            out[key] = value
    return out


def spec(trial: FrozenTrial) -> Any:
    """The spec dict of a trial (None before the suggestion was recorded)."""
    text = trial.user_attrs.get(SPEC)
    return json.loads(text) if isinstance(text, str) else text


# -- readers of a study ----------------------------------------------------------------------
def config_of(user_attrs: Mapping[str, Any]) -> dict[str, Any]:
    """The search configuration in a study's user attributes (``{}`` for a foreign study)."""
    value = user_attrs.get(STUDY_ATTR)
    return dict(value) if isinstance(value, Mapping) else {}


def study_config(study: optuna.Study) -> dict[str, Any]:
    """The search configuration stored with a study by :func:`nasntk.search` (``{}`` if foreign)."""
    return config_of(study.user_attrs)


def objective_names(study: optuna.Study) -> list[str]:
    """The names of a study's objectives: the stored ones, else ``value`` / ``value_0``, ….

    (A study not created by nasntk, or whose stored names do not match its directions.)
    """
    names = [str(n) for n in study_config(study).get("objectives") or []]
    k = len(study.directions)
    if len(names) != k:
        names = ["value"] if k == 1 else [f"value_{i}" for i in range(k)]
    return names


def counted_trials(study: optuna.Study) -> int:
    """Trials that count towards ``trials``: finished ones, interrupted ones excepted."""
    return sum(counted(t) for t in study.get_trials(deepcopy=False))


# -- writers (on a running trial) -------------------------------------------------------------
def write_failure(trial: optuna.Trial, kind: Failure, detail: str = "") -> str:
    """Store why the trial fails; the reason text."""
    reason = kind.reason(detail)
    trial.set_user_attr(FAIL_REASON, reason)
    return reason


def write_prune(trial: optuna.Trial, kind: Prune, detail: str) -> str:
    """Store why the trial is pruned; the reason text."""
    reason = kind.reason(detail)
    trial.set_user_attr(PRUNE_REASON, reason)
    return reason


def write_scores(trial: optuna.Trial, result: Mapping[str, Any]) -> None:
    """Store every number of a ``proxies.compute`` result, and its ``reasons`` if any."""
    reasons = result.get(REASONS) or {}
    for name, value in result.items():
        if name != REASONS and isinstance(value, (int, float)):
            trial.set_user_attr(name, encode_float(float(value)))
    if reasons:
        trial.set_user_attr(REASONS, {str(k): str(v) for k, v in reasons.items()})


def copy_outcome(trial: optuna.Trial, original: FrozenTrial) -> None:
    """Make ``trial`` a duplicate of ``original``: its record (not its run facts) and the link."""
    for key, value in original.user_attrs.items():
        if key not in NOT_COPIED:
            trial.set_user_attr(key, value)
    trial.set_user_attr(DUPLICATE_OF, original.number)
