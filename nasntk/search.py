"""Training-free architecture search: an Optuna study whose objective scores untrained networks.

One trial of :func:`search` is::

    spec   = space.suggest(trial)                    # a canonical, JSON-serialisable dict
    key    = space.key(spec)                         # equal architectures <=> equal keys
    if an earlier trial of the study has this key:   # duplicates are never scored twice
        reuse its values (waiting for it if it is still running)
    params, flops = space.params(spec), space.flops(spec)     # on the meta device, no arithmetic
    if params > max_params or flops > max_flops:     # budgets cost no kernel
        prune (reason stored)
    if n_low:                                        # multi-fidelity
        s_low = score(model, batch[:n_low]); trial.report(s_low, step=1)
        if pruner.should_prune(): prune          # e.g. successive halving keeps the top 1/eta
    s = score(model, batch[:n_kernel])               # nasntk.proxies.compute
    return s[objective_1], ..., s[objective_m]       # directions declared by the proxies

and every score, ``params``, ``flops``, the spec (canonical JSON), the space, the data source and
the timings are stored as trial user attributes: the study *is* the record (Optuna commits each
trial as it finishes, so killing the process never loses a completed trial). A candidate that
raises, runs out of memory or gives a non-finite objective becomes a FAIL trial whose
``fail_reason`` says why; the search goes on.

Duplicate rule (safe with any number of processes sharing a storage): a trial first writes its
key, then looks at the *earlier* trials (smaller number) with the same key. Of two racing trials
the later one always sees the earlier one, and only the earlier one scores.

Storage: a SQLite file in the working directory by default, so rerunning the same command resumes
the same study; any Optuna storage URL (``sqlite:///…``, ``postgresql://…``, ``journal:PATH``).
``trials`` is the number of finished trials the study should hold, so rerunning a killed command
finishes the job, and rerunning a finished one only prints its leaderboard.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import multiprocessing
import os
import re
import signal
import socket
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import optuna
from optuna.trial import FrozenTrial, TrialState

from nasntk.errors import NasntkError

if TYPE_CHECKING:  # the spaces import torch; commands that only read a study do not need it
    from nasntk.search_spaces import SearchSpace

__all__ = [
    "DEFAULT_STORAGE",
    "SearchInterrupted",
    "build",
    "default_study_name",
    "load_study",
    "open_storage",
    "parse_objectives",
    "search",
    "study_config",
    "study_summaries",
]

#: Where studies live unless ``storage=`` says otherwise (relative to the working directory).
DEFAULT_STORAGE = "sqlite:///nasntk.db"
#: Samplers by name.
SAMPLERS = ("tpe", "random", "nsga2", "grid")
#: Pruners by name (``None`` picks successive halving when ``n_low`` is given, else none).
PRUNERS = ("none", "sha", "median", "hyperband")
#: Scores the search takes from its own meta-device count (direction used if the proxies lack them).
BUILTIN_OBJECTIVES = {"params": "minimize", "flops": "minimize"}
#: User attributes that are not scores.
RECORD_KEYS = (
    "spec",
    "key",
    "arch",
    "space",
    "space_options",
    "data",
    "num_classes",
    "in_chans",
    "img_size",
    "n",
    "params",
    "flops",
    "reasons",
    "worker",
    "duplicate_of",
    "retry_of",
    "fail_reason",
    "prune_reason",
    "low_fidelity",
    "time_budget",
    "time_build",
    "time_score",
    "time_total",
)
_INTERRUPTED = "interrupted"
#: Longest wait (s) for another process scoring the same spec before scoring it here.
_MAX_DUPLICATE_WAIT = 1800.0
#: Seconds to wait for an earlier running trial to write its spec key.
_KEYLESS_WAIT = 60.0
#: A RUNNING trial that has not written its ``worker`` attribute after this long (s) is dead.
_NO_WORKER_GRACE = 120.0
_STUDY_ATTR = "nasntk"

SpaceLike = Union[str, "SearchSpace"]
Callback = Callable[[optuna.Study, FrozenTrial], None]


class SearchInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a search; completed trials are kept, ``.study`` holds them."""

    def __init__(self, study: optuna.Study) -> None:
        super().__init__("search interrupted")
        self.study = study


class _TrialFailed(Exception):
    """Raised inside the objective to turn a candidate into a FAIL trial (reason already stored)."""


# ---------------------------------------------------------------------------------------------
# Storage
# ---------------------------------------------------------------------------------------------
def _redact(url: str) -> str:
    """The URL with any password replaced by ``***`` (safe for error messages)."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", url)


def _one_line(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _check_parent_dir(path: str, url: str) -> None:
    parent = Path(path).expanduser().resolve().parent
    if not parent.is_dir():
        raise NasntkError(f"storage {url!r}: folder {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK):
        raise NasntkError(f"storage {url!r}: folder {str(parent)!r} is not writable")


def normalize_storage_url(url: str | None) -> str:
    """The canonical storage URL: the default, ``journal:PATH``, or an SQLAlchemy database URL.

    Bare file paths are accepted too: ``*.db``/``*.sqlite``/``*.sqlite3`` mean SQLite and
    ``*.log``/``*.journal``/``*.jsonl`` mean an Optuna journal file.
    """
    if url is None or not str(url).strip():
        return DEFAULT_STORAGE
    url = str(url).strip()
    if url.startswith("journal:"):
        path = url[len("journal:") :]
        if path.startswith("//"):
            path = path[2:]
        if not path:
            raise NasntkError(f"malformed storage URL {url!r}: expected journal:PATH")
        return f"journal:{path}"
    if "://" in url:
        scheme = url.split("://", 1)[0].lower()
        dialect = scheme.split("+", 1)[0]
        if dialect not in ("sqlite", "postgresql", "postgres", "mysql", "mariadb"):
            raise NasntkError(
                f"malformed storage URL {_redact(url)!r}: unknown scheme {scheme!r}; use "
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
    raise NasntkError(
        f"malformed storage URL {url!r}: use sqlite:///FILE.db, postgresql://USER@HOST/DB "
        "or journal:FILE.log"
    )


def _create_rdb(url: str, engine_kwargs: dict, heartbeat: dict) -> optuna.storages.RDBStorage:
    """``RDBStorage(url)``, retried when processes race to create the tables of a new database.

    Workers started at the same instant on an empty database all run Optuna's ``CREATE TABLE``
    / ``CREATE TYPE``; the losers fail with "already exists" — after a short random pause the
    tables exist and opening succeeds.
    """
    import random

    for attempt in range(8):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **heartbeat)
        except Exception as exc:
            text = str(exc).lower()
            if attempt == 7 or not ("already exists" in text or "duplicate key" in text):
                raise
            time.sleep(0.2 + random.random() * 0.5)
    raise AssertionError("unreachable")


def open_storage(url: str | None = None, *, create: bool = True) -> optuna.storages.BaseStorage:
    """Open the Optuna storage at ``url``; one-line :class:`NasntkError` if that fails.

    With ``create=False`` a missing SQLite or journal file is an error instead of a new, empty
    storage (for commands that only read). SQLite files wait up to 60 s for a lock (several
    worker processes share one file); server databases (PostgreSQL, MySQL) record a heartbeat so
    that the running trials of a killed machine become FAIL after a minute.
    """
    url = normalize_storage_url(url)
    if url.startswith("journal:"):
        path = url[len("journal:") :]
        _check_parent_dir(path, url)
        if not create and not Path(path).expanduser().is_file():
            raise NasntkError(f"no storage at {path!r}; run `nasntk search` first")
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

        try:
            return optuna.storages.JournalStorage(
                JournalFileBackend(path, lock_obj=JournalFileOpenLock(path))
            )
        except Exception as exc:
            raise NasntkError(f"cannot open journal storage {path!r}: {_one_line(exc)}") from None
    dialect = url.split("://", 1)[0].split("+", 1)[0].lower()
    engine_kwargs: dict[str, Any] = {}
    heartbeat: dict[str, Any] = {}
    if dialect == "sqlite":
        path = url.split("://", 1)[1]
        if not path.startswith("/") or path in ("/", "/:memory:"):
            raise NasntkError(
                f"malformed storage URL {url!r}: use sqlite:///relative/path.db or "
                "sqlite:////absolute/path.db"
            )
        _check_parent_dir(path[1:], url)
        if not create and not Path(path[1:]).expanduser().is_file():
            raise NasntkError(f"no storage at {path[1:]!r}; run `nasntk search` first")
        engine_kwargs = {"connect_args": {"timeout": 60}}
    else:
        if dialect == "postgresql":
            engine_kwargs = {"connect_args": {"connect_timeout": 10}}
            url = _postgres_driver(url)
        heartbeat = {"heartbeat_interval": 10, "grace_period": 60}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            store = _create_rdb(url, engine_kwargs, heartbeat)
            if dialect == "sqlite":
                _use_wal(store)
            return store
        except ImportError as exc:
            raise NasntkError(
                f"storage {_redact(url)!r} needs a database driver that is not installed: "
                f"{_one_line(exc)}"
            ) from None
        except Exception as exc:
            raise NasntkError(f"cannot open storage {_redact(url)!r}: {_one_line(exc)}") from None


def _postgres_driver(url: str) -> str:
    """``postgresql://`` with the driver that is installed.

    SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3; with only psycopg2 installed
    (the ``postgres`` extra), name it explicitly.
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


def _study_names(storage: optuna.storages.BaseStorage) -> list[str]:
    return [s.study_name for s in storage.get_all_studies()]


def load_study(storage: str | None = None, study: str | None = None) -> optuna.Study:
    """Load a study by name; without a name, the most recently created study of the storage."""
    store = open_storage(storage, create=False)
    names = _study_names(store)
    if not names:
        raise NasntkError(
            f"no studies in storage {_redact(normalize_storage_url(storage))!r}; "
            "run `nasntk search` first"
        )
    name = study if study is not None else names[-1]
    if name not in names:
        raise NasntkError(f"no study {name!r} in the storage; studies: {', '.join(names)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return optuna.load_study(study_name=name, storage=store)


def study_config(study: optuna.Study) -> dict[str, Any]:
    """The search configuration stored with a study by :func:`search` (``{}`` if foreign)."""
    value = study.user_attrs.get(_STUDY_ATTR)
    return dict(value) if isinstance(value, Mapping) else {}


def study_summaries(storage: str | None = None) -> list[dict[str, Any]]:
    """One dict per study: name, space, data, objectives, and trial counts by state."""
    store = open_storage(storage, create=False)
    out = []
    for summary in store.get_all_studies():
        study_id = store.get_study_id_from_name(summary.study_name)
        trials = store.get_all_trials(study_id, deepcopy=False)
        counts = {s.name.lower(): 0 for s in (TrialState.COMPLETE, TrialState.PRUNED)}
        counts.update({"fail": 0, "running": 0})
        for t in trials:
            key = t.state.name.lower()
            counts[key] = counts.get(key, 0) + 1
        config = summary.user_attrs.get(_STUDY_ATTR, {}) or {}
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


# ---------------------------------------------------------------------------------------------
# Objectives, samplers, pruners
# ---------------------------------------------------------------------------------------------
def parse_objectives(objective: str | Sequence[str]) -> list[tuple[str, str | None]]:
    """``"default"``, ``"name"``, ``"a,b:min"`` or ``["a", "b"]`` -> ``[(name, direction?)]``.

    A ``:min`` / ``:max`` suffix overrides the score's declared direction, e.g. ``params:min``
    to prefer small networks in a multi-objective search (the ``params`` baseline is declared
    "maximize", as bigger networks tend to train to higher accuracy).
    """
    if isinstance(objective, str):
        items = [s.strip() for s in objective.split(",")]
    else:
        items = [str(s).strip() for s in objective]
    items = [s for s in items if s]
    if not items:
        raise NasntkError("objective must name at least one score (see `nasntk score --list`)")
    out: list[tuple[str, str | None]] = []
    for item in items:
        name, sep, suffix = item.partition(":")
        direction = None
        if sep:
            direction = {"min": "minimize", "max": "maximize"}.get(suffix.strip().lower()[:3])
            if direction is None or suffix.strip().lower() not in (
                "min",
                "max",
                "minimize",
                "maximize",
            ):
                raise NasntkError(f"objective {item!r}: the suffix must be ':min' or ':max'")
        out.append((name.strip(), direction))
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        raise NasntkError(f"objective {','.join(items)!r} names a score twice")
    return out


def _proxies() -> Any:
    from nasntk import proxies

    return proxies


def _check_scores(names: Sequence[str]) -> None:
    """Raise a one-line error naming the first unknown score."""
    known = set(_proxies().names()) | set(BUILTIN_OBJECTIVES)
    for name in names:
        if name not in known:
            raise NasntkError(f"unknown score {name!r}; known: {', '.join(sorted(known))}")


def _directions(objectives: Sequence[tuple[str, str | None]]) -> list[str]:
    """The direction of each objective: the override, else the proxies' declared direction."""
    _check_scores([n for n, _ in objectives])
    proxies = _proxies()
    known = set(proxies.names())
    out = []
    for name, override in objectives:
        if override is not None:
            out.append(override)
        elif name in known:
            out.append(str(proxies.get(name).direction))
        else:
            out.append(BUILTIN_OBJECTIVES[name])
    return out


def _default_scores() -> list[str]:
    """Scores recorded on every trial: those computed from the pNTK (one kernel serves all)."""
    proxies = _proxies()
    return [n for n in proxies.names() if "kernel" in tuple(proxies.get(n).needs)]


def _make_sampler(
    sampler: str | optuna.samplers.BaseSampler,
    seed: int | None,
    *,
    space: SearchSpace,
    parallel: bool = False,
) -> optuna.samplers.BaseSampler:
    """A sampler by name; TPE uses the constant liar when several workers share the study."""
    if isinstance(sampler, optuna.samplers.BaseSampler):
        return sampler
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if sampler == "tpe":
            return optuna.samplers.TPESampler(seed=seed, constant_liar=parallel)
        if sampler == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if sampler == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed)
        if sampler == "grid":
            return optuna.samplers.GridSampler(grid_of(space), seed=seed)
    raise NasntkError(f"unknown sampler {sampler!r}; choose from {', '.join(SAMPLERS)}")


def _make_pruner(pruner: str | optuna.pruners.BasePruner | None, n_low: int | None):
    if isinstance(pruner, optuna.pruners.BasePruner):
        return pruner
    if pruner is None:
        pruner = "sha" if n_low else "none"
    if pruner == "none":
        return optuna.pruners.NopPruner()
    if not n_low:
        raise NasntkError(f"pruner {pruner!r} needs a first, small N (--n-low)")
    if pruner == "sha":
        # One rung at step 1 (the small-N score): keep the top 1/3 of the candidates seen so far.
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    if pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0)
    if pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=2, reduction_factor=3)
    raise NasntkError(f"unknown pruner {pruner!r}; choose from {', '.join(PRUNERS)}")


class _Recorder:
    """A stand-in for an Optuna trial that records what ``space.suggest`` asks for.

    Categorical parameters give their choices; integer ranges give every value. Each call returns
    the ``index``-th choice (cycling), so repeated probes with different indices explore branches.
    """

    def __init__(self, rng: Any) -> None:
        self.rng = rng
        self.grid: dict[str, list[Any]] = {}
        self.params: dict[str, Any] = {}

    def _pick(self, name: str, choices: Sequence[Any]) -> Any:
        if not choices:
            raise NasntkError(f"grid sampler: parameter {name!r} has no choices")
        known = self.grid.setdefault(name, [])
        for c in choices:
            if c not in known:
                known.append(c)
        value = choices[self.rng.randrange(len(choices))]
        self.params[name] = value
        return value

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self._pick(name, list(choices))

    def suggest_int(self, name: str, low: int, high: int, step: int = 1, log: bool = False) -> int:
        values = list(range(low, high + 1, step))
        if len(values) > 4096:
            raise NasntkError(
                f"grid sampler: parameter {name!r} has too many values ({len(values)})"
            )
        return self._pick(name, values)

    def suggest_float(self, name: str, *args: Any, **kwargs: Any) -> float:
        raise NasntkError(
            f"grid sampler needs a discrete space, but parameter {name!r} is continuous; "
            "use --sampler tpe or random"
        )

    def suggest_uniform(self, name: str, *args: Any, **kwargs: Any) -> float:
        return self.suggest_float(name)

    suggest_loguniform = suggest_uniform
    suggest_discrete_uniform = suggest_uniform

    def set_user_attr(self, key: str, value: Any) -> None:
        pass


def grid_of(space: SearchSpace, probes: int = 256) -> dict[str, list[Any]]:
    """The grid (parameter name -> choices) of a discrete space, found by probing ``suggest``.

    Conditional parameters are collected over ``probes`` random suggestions; parameters that a
    spec does not use make some grid points duplicates, which the search reuses without scoring.
    """
    import random

    rng = random.Random(0)
    grid: dict[str, list[Any]] = {}
    for _ in range(probes):
        recorder = _Recorder(rng)
        recorder.grid = grid
        space.suggest(recorder)
    if not grid:
        raise NasntkError(f"grid sampler: space {space.name!r} suggests no parameters")
    return grid


# ---------------------------------------------------------------------------------------------
# Workers and liveness (so a killed process's running trial is recognised and never waited on)
# ---------------------------------------------------------------------------------------------
def _proc_start_time(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else ""


def _proc_state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[0] if fields else ""


def worker_id() -> str:
    """``host:pid:start-time`` of this process (stored on each trial it runs)."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_proc_start_time(pid)}"


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
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if _proc_state(pid) in ("Z", "X"):
        return False
    if start and _proc_start_time(pid) not in ("", start):
        return False  # the pid was reused by another process
    return True


def _fail_running_trial(study: optuna.Study, trial: FrozenTrial, reason: str) -> None:
    storage = study._storage
    with contextlib.suppress(Exception):
        storage.set_trial_user_attr(trial._trial_id, "fail_reason", reason)
        storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)


def _age_seconds(trial: FrozenTrial) -> float | None:
    import datetime

    if trial.datetime_start is None:
        return None
    return (datetime.datetime.now() - trial.datetime_start).total_seconds()


def fail_dead_trials(study: optuna.Study, *, only_worker: str | None = None) -> int:
    """Mark RUNNING trials whose process died (on this host) as FAIL ``interrupted``.

    With ``only_worker``, mark that worker's running trials regardless of liveness (used when
    this process itself was interrupted). Returns the number of trials marked.
    """
    marked = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = str(t.user_attrs.get("worker", ""))
        if only_worker is not None:
            dead = worker == only_worker
        elif not worker:  # killed between Optuna's ask and the objective's first write
            age = _age_seconds(t)
            dead = age is not None and age > _NO_WORKER_GRACE
        else:
            dead = worker_alive(worker) is False
        if dead:
            _fail_running_trial(study, t, f"{_INTERRUPTED}: the search process stopped")
            marked += 1
    if only_worker is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with contextlib.suppress(Exception):
                optuna.storages.fail_stale_trials(study)
    return marked


def retry_interrupted(study: optuna.Study) -> int:
    """Queue the candidates of interrupted trials again (so no sampled candidate is lost).

    A trial counts as retried once a later trial has the same parameters (queued, running or
    finished). Returns the number of trials queued.
    """
    trials = study.get_trials(deepcopy=False)
    queued = 0
    for t in trials:
        if t.state != TrialState.FAIL or not t.params:
            continue
        if not str(t.user_attrs.get("fail_reason", "")).startswith(_INTERRUPTED):
            continue
        later = [u for u in trials if u.number > t.number]
        if any(t.params in (u.params, u.system_attrs.get("fixed_params")) for u in later):
            continue
        study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
        queued += 1
    return queued


# ---------------------------------------------------------------------------------------------
# The objective
# ---------------------------------------------------------------------------------------------
@dataclass
class _Config:
    """Everything a worker needs to run trials (picklable; sent to worker processes)."""

    space_ref: str
    space_options: dict[str, Any]
    data: str
    objectives: list[str]
    directions: list[str]
    scores: list[str]
    n_kernel: int
    n_low: int | None
    max_params: int | None
    max_flops: int | None
    seeds: int
    bn: str | None
    device: str
    init_seed: int
    data_seed: int
    img_size: int | None = None
    shape: dict[str, int] = field(default_factory=dict)
    proxy_options: dict[str, Any] = field(default_factory=dict)

    def stored(self) -> dict[str, Any]:
        """What is stored with the study (and checked on resume)."""
        d = asdict(self)
        for k in ("max_params", "max_flops", "device", "n_low"):
            d.pop(k)
        d["space"] = d.pop("space_ref")
        d.update(d.pop("shape"))
        return d


def _classify_failure(exc: BaseException) -> str:
    """A one-line, stable reason for a failed candidate."""
    text = str(exc)
    if (
        isinstance(exc, MemoryError)
        or "out of memory" in text.lower()
        or ("can't allocate memory" in text.lower())
    ):
        return "out of memory"
    if isinstance(exc, NasntkError):
        return _one_line(exc)
    return f"{type(exc).__name__}: {_one_line(exc)}"


class _Objective:
    """The Optuna objective: spec -> duplicate check -> budget -> build -> scores -> values."""

    def __init__(self, config: _Config, space: SearchSpace) -> None:
        from nasntk import data as data_mod

        self.config = config
        self.space = space
        self.worker = worker_id()
        load = {"seed": config.data_seed, "img_size": config.img_size}
        self.batch = data_mod.load(config.data, config.n_kernel, **load)
        self.low_batch = data_mod.load(config.data, config.n_low, **load) if config.n_low else None
        x = self.batch.x
        self.shape = {
            "num_classes": int(self.batch.num_classes),
            "in_chans": int(x.shape[1]),
            "img_size": int(x.shape[-1]),
        }
        # params and FLOPs come from the meta-device count of the budget check.
        self.proxy_scores = [s for s in config.scores if s not in BUILTIN_OBJECTIVES]

    # -- helpers --------------------------------------------------------------------------
    def _fail(self, trial: optuna.Trial, reason: str) -> None:
        trial.set_user_attr("fail_reason", reason)
        raise _TrialFailed(reason)

    def _prune(self, trial: optuna.Trial, reason: str) -> None:
        trial.set_user_attr("prune_reason", reason)
        raise optuna.TrialPruned(reason)

    def _model_builder(self, spec: dict[str, Any]) -> Callable[[int], Any]:
        import torch

        def make(seed: int) -> Any:
            torch.manual_seed(seed)
            return self.space.build(spec, **self.shape)

        return make

    def _score(self, make: Callable[[int], Any], model: Any, batch: Any) -> dict[str, Any]:
        """``proxies.compute`` of the requested scores (a builder when averaging over seeds)."""
        if not self.proxy_scores:
            return {}
        opts = dict(self.config.proxy_options)
        if self.config.bn is not None:
            opts["bn"] = self.config.bn
        return _proxies().compute(
            make if self.config.seeds > 1 else model,
            batch,
            self.proxy_scores,
            seeds=self.config.seeds,
            device=self.config.device,
            seed=self.config.init_seed,
            **opts,
        )

    # -- duplicates -----------------------------------------------------------------------
    def _earlier_same_key(self, trial: optuna.Trial, key: str) -> FrozenTrial | None:
        """The earliest earlier trial with this spec whose outcome applies (waits if running).

        Outcomes that apply: COMPLETE (values reused), FAIL (same failure), PRUNED by the
        multi-fidelity pruner. Interrupted trials and budget prunes do not apply (budgets may
        have changed; the check is cheap), so the spec is evaluated here. A running duplicate is
        waited for unless its process is known dead (same host, or a stale heartbeat on server
        databases); after ``_MAX_DUPLICATE_WAIT`` seconds the spec is scored here anyway.
        """
        started = time.monotonic()
        while True:
            running: list[FrozenTrial] = []
            usable: list[FrozenTrial] = []
            for t in trial.study.get_trials(deepcopy=False):
                if t.number >= trial.number:
                    continue
                if t.state == TrialState.RUNNING and "key" not in t.user_attrs:
                    # An earlier trial of another process has not written its key yet: it may
                    # be this very spec (both would score it), so wait until it has one (a
                    # process killed at that instant never will: wait _KEYLESS_WAIT at most).
                    if time.monotonic() - started < _KEYLESS_WAIT:
                        running.append(t)
                    continue
                if t.user_attrs.get("key") != key:
                    continue
                if t.state == TrialState.RUNNING:
                    running.append(t)
                elif t.state == TrialState.COMPLETE:
                    usable.append(t)
                elif t.state == TrialState.FAIL:
                    if not str(t.user_attrs.get("fail_reason", "")).startswith(_INTERRUPTED):
                        usable.append(t)
                elif t.state == TrialState.PRUNED:
                    if not str(t.user_attrs.get("prune_reason", "")).startswith("over budget"):
                        usable.append(t)
            if usable:
                complete = [t for t in usable if t.state == TrialState.COMPLETE]
                return (complete or usable)[0]
            if not running or time.monotonic() - started > _MAX_DUPLICATE_WAIT:
                return None
            # An earlier trial is scoring this very spec: wait for it unless its process died.
            for t in running:
                if worker_alive(str(t.user_attrs.get("worker", ""))) is False:
                    _fail_running_trial(
                        trial.study, t, f"{_INTERRUPTED}: the search process stopped"
                    )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with contextlib.suppress(Exception):
                    optuna.storages.fail_stale_trials(trial.study)
            time.sleep(0.2)

    def _reuse(self, trial: optuna.Trial, original: FrozenTrial, t_start: float) -> list[float]:
        skip = {"worker", "duplicate_of", "retry_of", "time_total", "time_build", "time_score"}
        skip |= {"time_budget"}
        for k, v in original.user_attrs.items():
            if k not in skip:
                trial.set_user_attr(k, v)
        trial.set_user_attr("duplicate_of", original.number)
        trial.set_user_attr("time_total", time.perf_counter() - t_start)
        if original.state == TrialState.COMPLETE:
            return list(original.values)
        if original.state == TrialState.PRUNED:
            reason = original.user_attrs.get("prune_reason", "pruned")
            raise optuna.TrialPruned(f"duplicate of trial {original.number}: {reason}")
        raise _TrialFailed(str(original.user_attrs.get("fail_reason", "failed")))

    # -- the trial ------------------------------------------------------------------------
    def __call__(self, trial: optuna.Trial) -> list[float] | float:
        try:
            with _INTERRUPTS.inside_trial():
                values = self._run(trial)
        except KeyboardInterrupt:
            with contextlib.suppress(Exception):
                trial.set_user_attr("fail_reason", _INTERRUPTED)
            raise
        return values[0] if len(values) == 1 else values

    def _run(self, trial: optuna.Trial) -> list[float]:
        cfg = self.config
        t_start = time.perf_counter()
        trial.set_user_attr("worker", self.worker)
        trial.set_user_attr("space", cfg.space_ref)
        if cfg.space_options:
            trial.set_user_attr("space_options", cfg.space_options)
        trial.set_user_attr("data", cfg.data)
        for k, v in self.shape.items():  # so that nasntk.build(trial.user_attrs) is exact
            trial.set_user_attr(k, v)
        try:
            spec = self.space.validate(self.space.suggest(trial))
            key = self.space.key(spec)
            arch = self.space.describe(spec)
        except (optuna.TrialPruned, KeyboardInterrupt):
            raise
        except Exception as exc:
            self._fail(trial, f"suggest: {_classify_failure(exc)}")
        trial.set_user_attr("spec", json.dumps(spec, sort_keys=True, separators=(",", ":")))
        trial.set_user_attr("key", key)
        trial.set_user_attr("arch", arch)

        original = self._earlier_same_key(trial, key)
        if original is not None:
            return self._reuse(trial, original, t_start)

        # Budgets: params and FLOPs on the meta device, before any kernel.
        t0 = time.perf_counter()
        try:
            params = int(self.space.params(spec, **self.shape))
            flops = int(self.space.flops(spec, **self.shape))
        except Exception as exc:
            self._fail(trial, _classify_failure(exc))
        trial.set_user_attr("params", params)
        trial.set_user_attr("flops", flops)
        trial.set_user_attr("time_budget", time.perf_counter() - t0)
        if cfg.max_params is not None and params > cfg.max_params:
            self._prune(trial, f"over budget: params {params:,} > max-params {cfg.max_params:,}")
        if cfg.max_flops is not None and flops > cfg.max_flops:
            self._prune(trial, f"over budget: flops {flops:,} > max-flops {cfg.max_flops:,}")

        builtin = {"params": float(params), "flops": float(flops)}
        main = cfg.objectives[0]
        try:
            t1 = time.perf_counter()
            make = self._model_builder(spec)
            model = make(cfg.init_seed)
            t2 = time.perf_counter()
            if self.low_batch is not None and cfg.n_low:
                low = self._score(make, model, self.low_batch)
                value = _lookup(low, main, builtin)
                trial.set_user_attr("low_fidelity", {"n": cfg.n_low, main: _json_float(value)})
                if not math.isfinite(value):
                    value = math.inf if cfg.directions[0] == "minimize" else -math.inf
                trial.report(value, step=1)
                if trial.should_prune():
                    self._prune(trial, f"multi-fidelity: {main}={value:.4g} at N={cfg.n_low}")
            result = self._score(make, model, self.batch)
            t3 = time.perf_counter()
        except (optuna.TrialPruned, KeyboardInterrupt, _TrialFailed):
            raise
        except Exception as exc:
            _release_memory()
            self._fail(trial, _classify_failure(exc))
        del model

        reasons = result.get("reasons") or {}
        for name, value in result.items():
            if name == "reasons":
                continue
            if isinstance(value, (int, float)):
                trial.set_user_attr(name, _json_float(float(value)))
        if reasons:
            trial.set_user_attr("reasons", {str(k): str(v) for k, v in reasons.items()})
        trial.set_user_attr("n", cfg.n_kernel)
        trial.set_user_attr("time_build", t2 - t1)
        trial.set_user_attr("time_score", t3 - t2)
        trial.set_user_attr("time_total", time.perf_counter() - t_start)

        values = []
        for name in cfg.objectives:
            value = _lookup(result, name, builtin)
            if not math.isfinite(value):
                why = reasons.get(name)
                self._fail(trial, f"non-finite {name}" + (f": {why}" if why else ""))
            values.append(value)
        return values


def _lookup(result: Mapping[str, Any], name: str, builtin: Mapping[str, float]) -> float:
    """The value of score ``name`` in a ``proxies.compute`` result (aliases resolved), else nan."""
    if name in result:
        return float(result[name])
    if name in builtin:
        return float(builtin[name])
    with contextlib.suppress(Exception):
        real = _proxies().get(name).name
        if real in result:
            return float(result[real])
    return math.nan


def _json_float(value: float) -> float | str:
    """Floats as-is; non-finite ones as the strings 'inf', '-inf', 'nan' (portable JSON)."""
    return value if math.isfinite(value) else str(value)


def _release_memory() -> None:
    import gc

    gc.collect()
    with contextlib.suppress(Exception):
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


# ---------------------------------------------------------------------------------------------
# Running trials (one process or several)
# ---------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Nothing below the CLI prints: silence Optuna's per-trial logging while searching."""
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module="optuna")
        try:
            yield
        finally:
            optuna.logging.set_verbosity(level)


def _counted(t: FrozenTrial) -> bool:
    """Whether a trial counts towards ``trials`` (finished, and not an interrupted one)."""
    if t.state in (TrialState.COMPLETE, TrialState.PRUNED):
        return True
    if t.state == TrialState.FAIL:
        return not str(t.user_attrs.get("fail_reason", _INTERRUPTED)).startswith(_INTERRUPTED)
    return False


def counted_trials(study: optuna.Study) -> int:
    """Trials that count towards ``trials``: finished ones, interrupted ones excepted."""
    return sum(_counted(t) for t in study.get_trials(deepcopy=False))


def _derived_seed(seed: int | None, *parts: int) -> int | None:
    """A per-worker, per-resume sampler seed (so resumed or parallel runs do not replay)."""
    if seed is None:
        return None
    text = ":".join(str(p) for p in (seed, *parts))
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


@dataclass
class _Job:
    """One worker's share of a search (picklable)."""

    config: _Config
    space: Any  # a SearchSpace instance (pickled) or None to rebuild it from the config
    storage: str
    study_name: str
    sampler: Any
    pruner: Any
    seed: int | None
    n_trials: int | None
    deadline: float | None  # time.time() after which no new trial starts
    threads: int | None
    parallel: bool


def _resolve_space(ref: SpaceLike, options: Mapping[str, Any]) -> tuple[SearchSpace, str]:
    """The space instance and the reference stored with trials (a name or ``module:Class``)."""
    from nasntk.search_spaces import SearchSpace
    from nasntk.search_spaces import get as get_space
    from nasntk.search_spaces import names as space_names

    if isinstance(ref, SearchSpace):
        if options:
            raise NasntkError("space options are only accepted with a space name")
        name = ref.name
        if name and name in space_names():
            try:
                same = type(get_space(name)) is type(ref)
            except NasntkError:
                same = False
            if same:
                return ref, name
        return ref, f"{type(ref).__module__}:{type(ref).__qualname__}"
    if not isinstance(ref, str):
        raise NasntkError(f"space must be a name or a SearchSpace, got {type(ref).__name__}")
    return get_space(ref, **dict(options)), ref


def _run_job(job: _Job, callbacks: Sequence[Callback] = ()) -> None:
    """Run a worker's trials in this process (Ctrl-C propagates as KeyboardInterrupt)."""
    if job.threads:
        import torch

        torch.set_num_threads(job.threads)
    space = job.space
    if space is None:
        space, _ = _resolve_space(job.config.space_ref, job.config.space_options)
    sampler = _make_sampler(job.sampler, job.seed, space=space, parallel=job.parallel)
    study = optuna.load_study(
        study_name=job.study_name,
        storage=open_storage(job.storage),
        sampler=sampler,
        pruner=_make_pruner(job.pruner, job.config.n_low),
    )
    objective = _Objective(job.config, space)
    timeout = None
    if job.deadline is not None:
        timeout = job.deadline - time.time()
        if timeout <= 0:
            return
    guard = _SystematicFailure()
    with _INTERRUPTS.deferred():
        study.optimize(
            objective,
            n_trials=job.n_trials,
            timeout=timeout,
            catch=(_TrialFailed,),
            callbacks=[guard, *callbacks],
            gc_after_trial=False,
        )
    if guard.reason is not None:
        raise NasntkError(
            f"stopped: the first {guard.limit} candidates all failed with: {guard.reason}"
        )


class _SystematicFailure:
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
        if trial.state != TrialState.FAIL or "duplicate_of" in trial.user_attrs:
            if trial.state == TrialState.COMPLETE:
                self.reasons = None  # something works: never stop
            return
        self.reasons.append(str(trial.user_attrs.get("fail_reason", "")))
        if len(self.reasons) >= self.limit and len(set(self.reasons)) == 1:
            self.reason = self.reasons[0]
            study.stop()


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


class _Interrupts:
    """Ctrl-C / SIGTERM raised only inside a trial's own work, never inside Optuna's bookkeeping.

    A KeyboardInterrupt that lands while Optuna writes a finished trial to the storage escapes
    Optuna's clean-up (it catches ``Exception`` only) as an UnboundLocalError. So while a study
    runs, the signal is raised at once inside the objective (the running trial becomes FAIL
    "interrupted"), and outside it is remembered and raised as soon as the next trial starts, or
    when ``optimize`` returns.
    """

    def __init__(self) -> None:
        self.inside = False
        self.pending = False

    def _handler(self, signum: int, frame: Any) -> None:
        if self.inside:
            self.inside = False
            raise KeyboardInterrupt
        self.pending = True

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        import threading

        if threading.current_thread() is not threading.main_thread():
            yield
            return
        wanted = {
            sig: prev
            for sig, prev in (
                (signal.SIGINT, signal.getsignal(signal.SIGINT)),
                (signal.SIGTERM, signal.getsignal(signal.SIGTERM)),
            )
            if prev not in (signal.SIG_IGN, signal.SIG_DFL, None)
        }
        self.pending = False
        for sig in wanted:
            signal.signal(sig, self._handler)
        try:
            yield
        finally:
            for sig, prev in wanted.items():
                signal.signal(sig, prev)
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def inside_trial(self) -> Iterator[None]:
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt
        self.inside = True
        try:
            yield
        finally:
            self.inside = False


_INTERRUPTS = _Interrupts()


def _worker_main(job: _Job, errors: Any) -> None:
    """Entry point of a worker process: SIGTERM from the parent means Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent forwards Ctrl-C once, as SIGTERM
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        with _quiet_optuna():
            _run_job(job)
    except KeyboardInterrupt:
        pass
    except NasntkError as exc:
        errors.put(str(exc))
    except BaseException as exc:  # noqa: B036 - reported to the parent as one line
        errors.put(f"worker failed: {type(exc).__name__}: {_one_line(exc)}")


def _stop(procs: Sequence[Any], grace: float = 30.0) -> None:
    """Ask live workers to stop (SIGTERM = Ctrl-C for them), then wait; kill after ``grace``."""
    for p in procs:
        if p.is_alive() and p.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for p in procs:
        p.join(timeout=max(0.1, deadline - time.monotonic()))
        if p.is_alive():
            p.kill()
            p.join()


def _run_workers(jobs: list[_Job], study: optuna.Study, callbacks: Sequence[Callback]) -> None:
    """Run one process per job; poll the storage to call ``callbacks`` here for each new trial."""
    import queue

    ctx = multiprocessing.get_context("spawn")
    errors = ctx.Queue()
    procs = [ctx.Process(target=_worker_main, args=(job, errors)) for job in jobs]
    seen = {t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()}

    def poll() -> None:
        for t in study.get_trials(deepcopy=False):
            if t.state.is_finished() and t.number not in seen:
                seen.add(t.number)
                for cb in callbacks:
                    cb(study, t)

    def error() -> str | None:
        try:
            return str(errors.get(timeout=0.05))
        except queue.Empty:
            return None

    try:
        for p in procs:
            p.start()
        while any(p.is_alive() for p in procs):
            procs[0].join(timeout=0.5)
            poll()
            message = error()
            if message is not None:
                _stop(procs)
                raise NasntkError(message)
    except KeyboardInterrupt:
        _stop(procs)
        raise
    poll()
    message = error()
    if message is not None:
        raise NasntkError(message)
    bad = [p.exitcode for p in procs if p.exitcode not in (0, None)]
    if bad:
        raise NasntkError(f"a worker process exited with code {bad[0]}")


# ---------------------------------------------------------------------------------------------
# The facade
# ---------------------------------------------------------------------------------------------
def default_study_name(
    space: str,
    data: str,
    objectives: Sequence[str],
    n_kernel: int,
    space_options: Mapping[str, Any] | None = None,
) -> str:
    """``space[-opts]-data-objectives-nN``: the same command always names the same study."""
    opts = "".join(f"-{k}{v}" for k, v in sorted((space_options or {}).items()))
    source = data
    if len(source) > 40:
        source = source[:16] + "…" + hashlib.sha1(data.encode()).hexdigest()[:8]
    return f"{space}{opts}-{source}-{'+'.join(objectives)}-n{n_kernel}"


def _check_budget_feasible(
    space: SearchSpace,
    shape: Mapping[str, int],
    max_params: int | None,
    max_flops: int | None,
    probes: int = 32,
) -> None:
    """Refuse budgets that exclude every one of ``probes`` random architectures of the space."""
    if max_params is None and max_flops is None:
        return
    for name, value in (("max-params", max_params), ("max-flops", max_flops)):
        if value is not None and value <= 0:
            raise NasntkError(f"--{name} must be positive, got {value}")
    sampler = optuna.samplers.RandomSampler(seed=0)
    probe = optuna.create_study(sampler=sampler)
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


def _check_run_options(device: str, bn: str | None, proxy_options: Mapping[str, Any]) -> None:
    """Settings that would fail every trial the same way are errors before the search starts."""
    if bn is not None and bn not in ("eval", "batch", "frozen"):
        raise NasntkError(f"--bn must be eval, batch or frozen, got {bn!r}")
    import torch

    if str(device) != "auto":
        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError):
            raise NasntkError(f"unknown device {device!r}; use cpu, cuda or auto") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise NasntkError("--device cuda asked but CUDA is not available")
    proxies = _proxies()
    known = set(getattr(proxies, "KERNEL_OPTIONS", ())) | set(getattr(proxies, "SCORE_OPTIONS", {}))
    unknown = sorted(set(proxy_options) - known)
    if known and unknown:
        raise NasntkError(
            f"unknown score option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )


def _open_or_create_study(
    storage: optuna.storages.BaseStorage,
    name: str,
    directions: list[str],
    stored: dict[str, Any],
) -> optuna.Study:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = optuna.create_study(
            storage=storage, study_name=name, directions=directions, load_if_exists=True
        )
    existing = study_config(study)
    if not existing and not study.trials:
        study.set_user_attr(_STUDY_ATTR, stored)
        return study
    if [d.name.lower() for d in study.directions] != directions:
        raise NasntkError(
            f"study {name!r} exists with other objectives; pass --study NEW_NAME for a new study"
        )
    keys = ("space", "space_options", "data", "img_size", "objectives", "n_kernel", "bn", "seeds")
    for key in keys:
        if key in existing and existing[key] != stored.get(key):
            raise NasntkError(
                f"study {name!r} exists with {key}={existing[key]!r} (not {stored.get(key)!r}); "
                "pass --study NEW_NAME for a new study"
            )
    return study


def search(
    space: SpaceLike,
    *,
    data: str = "digits",
    trials: int | None = None,
    timeout: float | None = None,
    objective: str | Sequence[str] = "default",
    scores: Sequence[str] | None = None,
    sampler: str | optuna.samplers.BaseSampler = "tpe",
    seed: int | None = None,
    n_kernel: int = 64,
    n_low: int | None = None,
    pruner: str | optuna.pruners.BasePruner | None = None,
    max_params: int | None = None,
    max_flops: int | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    workers: int = 1,
    device: str = "cpu",
    bn: str | None = None,
    seeds: int = 1,
    space_options: Mapping[str, Any] | None = None,
    img_size: int | None = None,
    callbacks: Sequence[Callback] | None = None,
    threads: int | None = None,
    data_seed: int = 0,
    init_seed: int = 0,
    **proxy_options: Any,
) -> optuna.Study:
    """Search ``space`` for the architectures with the best pNTK scores at initialization.

    Args:
        space: a registry name (``"nb201"``), a ``"module:Class"`` path, or a SearchSpace.
        data: the data source of :func:`nasntk.data.load` (``"digits"``, ``"cifar10:PATH"``, …).
        trials: finished trials the study should hold when done (resuming counts earlier ones;
            interrupted trials do not count). ``None`` with ``timeout=None`` means 100.
        timeout: stop starting new trials after this many seconds.
        objective: ``"default"``, a score name, or several (``"a,b"``) for a multi-objective
            study (Pareto front; NSGA-II or TPE). Directions are the proxies' declared ones;
            ``params`` and ``flops`` (minimised) are available too.
        scores: further scores to compute and record on every trial (not optimised).
        sampler: ``"tpe"`` (default), ``"random"``, ``"nsga2"``, ``"grid"`` or an Optuna sampler.
        seed: sampler seed (each worker and each resume derives its own from it).
        n_kernel: N, the number of images of the kernel (N >= 4).
        n_low: multi-fidelity: first score on ``n_low`` images and let ``pruner`` stop poor
            candidates before the full-N kernel (single objective only).
        pruner: ``"sha"`` (successive halving; default with ``n_low``), ``"median"``,
            ``"hyperband"``, ``"none"``, or an Optuna pruner.
        max_params, max_flops: budgets, checked on the meta device before any kernel; a
            candidate over budget is pruned with the reason stored.
        storage: an Optuna storage URL (default ``sqlite:///nasntk.db`` in the working directory).
        study_name: default derived from space, data, objectives and N (so reruns resume).
        workers: processes sharing the storage (each with its own study object).
        device, bn, seeds, **proxy_options: passed to :func:`nasntk.proxies.compute`.
        space_options: constructor options of the space (e.g. ``{"C": 8, "N": 1}`` for nb201).
        img_size: resize the images to this size (default: the source's own size).
        callbacks: ``f(study, frozen_trial)`` called in this process after each finished trial.
        threads: torch threads per worker (default: unchanged with one worker, else the CPU
            count divided among the workers). Small kernels run fastest on 1 thread.

    Returns:
        The Optuna study (all trials, with every score in ``trial.user_attrs``).

    Raises:
        NasntkError: bad input (unknown space or score, N < 4, malformed or unreachable storage,
            budgets that exclude every architecture, an existing study with other settings).
        SearchInterrupted: on Ctrl-C, after completed trials are saved and the running ones are
            marked FAIL ``interrupted``; ``exc.study`` is the study.
    """
    parsed = parse_objectives(objective)
    directions = _directions(parsed)
    objectives = [name for name, _ in parsed]
    multi = len(objectives) > 1
    if scores is None:
        extra = _default_scores()
    elif isinstance(scores, str) and scores.strip() == "all":
        extra = list(_proxies().names())
    elif not isinstance(scores, str) and len(scores) == 0:
        extra = []
    else:
        extra = [n for n, _ in parse_objectives(scores)]
        _check_scores(extra)
    score_names = list(dict.fromkeys([*objectives, *extra]))
    if not isinstance(n_kernel, int) or n_kernel < 4:
        raise NasntkError(f"N (--n-kernel) must be an integer >= 4, got {n_kernel}")
    if n_low is not None:
        if not isinstance(n_low, int) or n_low < 4 or n_low >= n_kernel:
            raise NasntkError(f"--n-low must be an integer with 4 <= n-low < N={n_kernel}")
        if multi:
            raise NasntkError("multi-fidelity (--n-low) needs a single objective")
    if trials is not None and trials < 1:
        raise NasntkError(f"--trials must be at least 1, got {trials}")
    if timeout is not None and timeout <= 0:
        raise NasntkError(f"--timeout must be positive, got {timeout}")
    if trials is None and timeout is None:
        trials = 100
    if not isinstance(workers, int) or workers < 1:
        raise NasntkError(f"--workers must be at least 1, got {workers}")
    _check_run_options(device, bn, proxy_options)
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise NasntkError(f"--threads must be at least 1, got {threads}")
    if seeds < 1:
        raise NasntkError(f"seeds must be at least 1, got {seeds}")
    if isinstance(sampler, str) and sampler not in SAMPLERS:
        raise NasntkError(f"unknown sampler {sampler!r}; choose from {', '.join(SAMPLERS)}")
    if isinstance(pruner, str) and pruner not in PRUNERS:
        raise NasntkError(f"unknown pruner {pruner!r}; choose from {', '.join(PRUNERS)}")
    _make_pruner(pruner, n_low)

    with _quiet_optuna():
        space_obj, space_ref = _resolve_space(space, space_options or {})
        from nasntk import data as data_mod

        info = data_mod.info(data)  # a missing or malformed data source raises NasntkError here
        shape = {k: int(info[k]) for k in ("num_classes", "in_chans", "img_size")}
        if img_size is not None:
            if not isinstance(img_size, int) or img_size < 1:
                raise NasntkError(f"--img-size must be a positive integer, got {img_size}")
            shape["img_size"] = img_size
        if "size" in info and int(info["size"]) < n_kernel:
            raise NasntkError(f"data {data!r} has {info['size']} images, fewer than N={n_kernel}")
        _check_budget_feasible(space_obj, shape, max_params, max_flops)
        if sampler == "grid":
            grid_of(space_obj)  # continuous spaces fail here, before anything is stored

        config = _Config(
            space_ref=space_ref,
            space_options=dict(space_options or {}),
            data=data,
            objectives=objectives,
            directions=directions,
            scores=score_names,
            n_kernel=n_kernel,
            n_low=n_low,
            max_params=max_params,
            max_flops=max_flops,
            seeds=seeds,
            bn=bn,
            device=device,
            init_seed=init_seed,
            data_seed=data_seed,
            img_size=img_size,
            shape=shape,
            proxy_options=dict(proxy_options),
        )
        url = normalize_storage_url(storage)
        labels = [n if d is None else f"{n}:{d[:3]}" for n, d in parsed]
        name = study_name or default_study_name(
            space_ref, data, labels, n_kernel, config.space_options
        )
        study = _open_or_create_study(open_storage(url), name, directions, config.stored())
        fail_dead_trials(study)
        retry_interrupted(study)

        done = counted_trials(study)
        remaining = None if trials is None else max(0, trials - done)
        if remaining == 0:
            return study
        if workers > 1 and threads is None:
            threads = max(1, (os.cpu_count() or 1) // workers)
        deadline = None if timeout is None else time.time() + timeout

        def share(i: int) -> int | None:
            if remaining is None:
                return None
            return remaining // workers + (1 if i < remaining % workers else 0)

        jobs = [
            _Job(
                config=config,
                space=space_obj if workers == 1 else _picklable(space_obj),
                storage=url,
                study_name=name,
                sampler=sampler,
                pruner=pruner,
                seed=_derived_seed(seed, i, done) if (i or done) else seed,
                n_trials=share(i),
                deadline=deadline,
                threads=threads,
                parallel=workers > 1,
            )
            for i in range(workers)
        ]
        jobs = [j for j in jobs if j.n_trials != 0]
        me = worker_id()
        try:
            if workers == 1:
                _run_job(jobs[0], callbacks or ())
            else:
                _run_workers(jobs, study, callbacks or ())
        except KeyboardInterrupt:
            fail_dead_trials(study, only_worker=me)
            fail_dead_trials(study)
            raise SearchInterrupted(study) from None
        return study


def _picklable(space: SearchSpace) -> SearchSpace | None:
    """The space itself if it can be sent to a worker process, else None (rebuilt by name)."""
    import pickle

    try:
        pickle.loads(pickle.dumps(space))
    except Exception:
        return None
    return space


# ---------------------------------------------------------------------------------------------
# Rebuilding a chosen architecture
# ---------------------------------------------------------------------------------------------
def build(
    spec_or_row: Mapping[str, Any] | str,
    *,
    space: SpaceLike | None = None,
    num_classes: int | None = None,
    in_chans: int | None = None,
    img_size: int | None = None,
    data: str | None = None,
    seed: int | None = None,
) -> Any:
    """Rebuild the untrained model of a leaderboard row, an exported JSON, or a spec.

    ``spec_or_row`` is a row (``{"space": …, "spec": …, …}`` from :func:`nasntk.leaderboard.rows`
    or ``nasntk export``), a spec dict, or a spec's text form (then ``space`` is needed). The
    input size comes from the arguments, else the row (``num_classes``, ``in_chans``,
    ``img_size``), else the row's data source, else CIFAR-like defaults (10, 3, 32).
    """
    row: dict[str, Any] = {}
    if isinstance(spec_or_row, Mapping) and "spec" in spec_or_row:
        row = dict(spec_or_row)
        spec: Any = row["spec"]
    else:
        spec = spec_or_row
    space_ref = space if space is not None else row.get("space")
    if space_ref is None:
        raise NasntkError("build: name the space (space=…) or pass a row with a 'space' field")
    options = row.get("space_options") or {}
    space_obj, _ = _resolve_space(space_ref, options if isinstance(space_ref, str) else {})
    if isinstance(spec, str):
        spec = space_obj.parse_any(spec)
    elif isinstance(spec, Mapping):
        spec = space_obj.validate(dict(spec))
    else:
        raise NasntkError(f"build: spec must be a dict or a string, got {type(spec).__name__}")
    shape = {"num_classes": num_classes, "in_chans": in_chans, "img_size": img_size}
    for k in shape:
        if shape[k] is None and row.get(k) is not None:
            shape[k] = int(row[k])
    source = data or row.get("data")
    if any(v is None for v in shape.values()) and source:
        from nasntk import data as data_mod

        info = data_mod.info(str(source))
        for k in shape:
            if shape[k] is None:
                shape[k] = int(info[k])
    defaults = {"num_classes": 10, "in_chans": 3, "img_size": 32}
    resolved = {k: int(v if v is not None else defaults[k]) for k, v in shape.items()}
    if seed is not None:
        import torch

        torch.manual_seed(seed)
    return space_obj.build(spec, **resolved)
