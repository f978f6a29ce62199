"""The search configuration: every option of a search once, with its default and its check.

:class:`SearchConfig` is what :func:`nasntk.search` takes (as keyword arguments or whole) and what
``nasntk search`` builds from its options (:func:`command_config`); its defaults are the
library's. The command differs in a few, on purpose, listed once in :data:`COMMAND_DEFAULTS` and
the ``COMMAND_*`` constants: with no options it runs a reproducible ~1 minute search on small
NAS-Bench-201 cells, one torch thread per worker.

Checks that need only the options run when the config is made; checks that need the space or the
data (budget feasibility, data size, grid probing) run when the search is planned
(:mod:`nasntk.study.plan`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from nasntk.errors import NasntkError
from nasntk.study.samplers import PRUNERS, SAMPLERS, make_pruner

__all__ = [
    "BUILTIN_OBJECTIVES",
    "COMMAND_DEFAULTS",
    "DEFAULT_TRIALS",
    "SearchConfig",
    "command_config",
    "command_default",
    "default_study_name",
    "parse_count",
    "parse_objectives",
    "parse_space_options",
]

#: Finished trials a study should hold when neither ``trials`` nor ``timeout`` is given.
DEFAULT_TRIALS = 100
#: Scores the search takes from its own meta-device count (direction used if the proxies lack them).
BUILTIN_OBJECTIVES = {"params": "minimize", "flops": "minimize"}
#: ``nasntk search`` without ``--space``: small NAS-Bench-201 cells on 8×8 images (~1 minute).
COMMAND_SPACE = "nb201"
COMMAND_SPACE_OPTIONS: dict[str, Any] = {"C": 16, "N": 1}
COMMAND_IMG_SIZE = 8
#: Where the command's defaults differ from the library's: a reproducible sampler seed, and one
#: torch thread per worker (small kernels run fastest on 1; the library leaves the caller's
#: thread count alone).
COMMAND_DEFAULTS: dict[str, Any] = {"seed": 0, "threads": 1}
#: What must match to resume a study (the rest may change between runs).
RESUME_KEYS = (
    "space",
    "space_options",
    "data",
    "img_size",
    "objectives",
    "n_kernel",
    "bn",
    "seeds",
)


@dataclass(frozen=True)
class SearchConfig:
    """Every option of a search (the keyword arguments of :func:`nasntk.search`).

    Args:
        space: a registry name (``"nb201"``), a ``"module:Class"`` path, or a SearchSpace.
        space_options: constructor options of the space (e.g. ``{"C": 8, "N": 1}`` for nb201).
        data: the data source of :func:`nasntk.data.load` (``"digits"``, ``"cifar10:PATH"``, …).
        trials: finished trials the study should hold when done (resuming counts earlier ones;
            interrupted trials do not count). ``None`` with ``timeout=None`` means 100.
        timeout: stop starting new trials after this many seconds.
        objective: ``"default"``, a score name, or several (``"a,b"``) for a multi-objective
            study (Pareto front; NSGA-II or TPE). Directions are the proxies' declared ones;
            ``params`` and ``flops`` (minimised) are available too; ``NAME:min`` overrides.
        scores: further scores to compute and record on every trial (not optimised); default
            every pNTK score, ``"all"`` every score, ``[]`` none.
        sampler: ``"tpe"`` (default), ``"random"``, ``"nsga2"``, ``"grid"`` or an Optuna sampler.
        seed: sampler seed (each worker and each resume derives its own from it).
        n_kernel: N, the number of images of the kernel (N >= 4).
        n_low: multi-fidelity: first score on ``n_low`` images and let ``pruner`` stop poor
            candidates before the full-N kernel (single objective only).
        pruner: ``"sha"`` (successive halving; default with ``n_low``), ``"median"``,
            ``"hyperband"``, ``"none"``, or an Optuna pruner.
        max_params, max_flops: budgets, checked on the meta device before any kernel; a
            candidate over budget is pruned with the reason stored.
        max_latency_ms, max_train_memory_mb: budgets on the measured ``latency_ms`` (batch 1)
            and ``train_memory_mb`` (:mod:`nasntk.proxies.hardware`), checked right after the
            build and before any kernel; a candidate over budget is pruned with its measured
            value stored. The batches are the proxy options ``latency_batch`` / ``memory_batch``.
        storage: an Optuna storage URL (default ``sqlite:///nasntk.db`` in the working directory).
        db_patience: seconds of database outage (a server restarting, a failover, a locked
            SQLite file) the search waits through, retrying with backoff, before it stops with
            one line saying how to resume (0: stop at the first database error).
        study_name: default derived from space, data, objectives and N (so reruns resume).
        workers: processes sharing the storage (each with its own study object).
        device, bn, seeds, proxy_options: passed to :func:`nasntk.proxies.compute` (unknown
            keyword arguments of :func:`nasntk.search` are proxy options).
        img_size: resize the images to this size (default: the source's own size).
        threads: torch threads per worker (default: unchanged with one worker, else the CPU
            count divided among the workers). Small kernels run fastest on 1 thread.
        data_seed, init_seed: seeds of the image draw and of the networks' initialisation.
        reference_size, reference_seed: the reference sample an aggregate score's terms are
            ranked against (:mod:`nasntk.study.reference`), drawn once when the study is made.
    """

    space: Any
    space_options: Mapping[str, Any] = field(default_factory=dict)
    data: str = "digits"
    trials: int | None = None
    timeout: float | None = None
    objective: str | Sequence[str] = "default"
    scores: str | Sequence[str] | None = None
    sampler: Any = "tpe"
    seed: int | None = None
    n_kernel: int = 64
    n_low: int | None = None
    pruner: Any = None
    max_params: int | None = None
    max_flops: int | None = None
    max_latency_ms: float | None = None
    max_train_memory_mb: float | None = None
    storage: str | None = None
    db_patience: float = 300.0
    study_name: str | None = None
    workers: int = 1
    device: str = "cpu"
    bn: str | None = None
    seeds: int = 1
    img_size: int | None = None
    threads: int | None = None
    data_seed: int = 0
    init_seed: int = 0
    reference_size: int = 32
    reference_seed: int = 0
    proxy_options: Mapping[str, Any] = field(default_factory=dict)
    # Derived once from the options above (not arguments).
    parsed: tuple[tuple[str, str | None], ...] = field(init=False, repr=False, compare=False)
    directions: tuple[str, ...] = field(init=False, repr=False, compare=False)
    score_names: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "space_options", dict(self.space_options or {}))
        set_(self, "proxy_options", dict(self.proxy_options or {}))
        parsed = parse_objectives(self.objective)
        set_(self, "parsed", tuple(parsed))
        set_(self, "directions", tuple(_directions(parsed)))
        names = [n for n, _ in parsed]
        budgeted = [n for n, v in self.measured_budgets().items() if v is not None]
        extra = _extra_scores(self.scores)
        set_(self, "score_names", tuple(dict.fromkeys([*names, *extra, *budgeted])))
        self._check_sizes()
        self._check_run()
        self._check_sampling()

    @classmethod
    def from_kwargs(cls, space: Any, **options: Any) -> SearchConfig:
        """``SearchConfig(space, **options)`` where options that are no field are proxy options."""
        names = {f.name for f in fields(cls) if f.init}
        known = {k: v for k, v in options.items() if k in names}
        extra = {k: v for k, v in options.items() if k not in names}
        if extra:
            known["proxy_options"] = {**dict(known.get("proxy_options") or {}), **extra}
        return cls(space=space, **known)

    # -- checks ---------------------------------------------------------------------------
    def _check_sizes(self) -> None:
        n = self.n_kernel
        if not isinstance(n, int) or n < 4:
            raise NasntkError(f"N (--n-kernel) must be an integer >= 4, got {n}")
        if self.n_low is not None:
            if not isinstance(self.n_low, int) or self.n_low < 4 or self.n_low >= n:
                raise NasntkError(f"--n-low must be an integer with 4 <= n-low < N={n}")
            if len(self.parsed) > 1:
                raise NasntkError("multi-fidelity (--n-low) needs a single objective")
        if self.trials is not None and self.trials < 1:
            raise NasntkError(f"--trials must be at least 1, got {self.trials}")
        if self.timeout is not None and self.timeout <= 0:
            raise NasntkError(f"--timeout must be positive, got {self.timeout}")
        if not isinstance(self.workers, int) or self.workers < 1:
            raise NasntkError(f"--workers must be at least 1, got {self.workers}")
        patience = self.db_patience
        if isinstance(patience, bool) or not isinstance(patience, (int, float)) or patience < 0:
            raise NasntkError(f"--db-patience must be seconds >= 0, got {patience!r}")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise NasntkError(f"--threads must be at least 1, got {self.threads}")
        if self.seeds < 1:
            raise NasntkError(f"seeds must be at least 1, got {self.seeds}")
        size = self.reference_size
        if isinstance(size, bool) or not isinstance(size, int) or size < 2:
            raise NasntkError(f"--reference-size must be an integer >= 2, got {size}")
        from nasntk.data import check_img_size

        check_img_size(self.img_size)
        budgets = [("max-params", self.max_params), ("max-flops", self.max_flops),
                   ("max-latency-ms", self.max_latency_ms),
                   ("max-train-memory-mb", self.max_train_memory_mb)]  # fmt: skip
        for name, value in budgets:
            if value is not None and not value > 0:
                raise NasntkError(f"--{name} must be positive, got {value}")

    def _check_run(self) -> None:
        """Settings that would fail every trial the same way are errors before the search."""
        from nasntk.kernels import BN_MODES
        from nasntk.kernels.prepare import resolve_device

        if self.bn is not None and self.bn not in BN_MODES:
            raise NasntkError(f"--bn must be eval, batch or frozen, got {self.bn!r}")
        resolve_device(self.device)
        proxies = _proxies()
        known = set(getattr(proxies, "KERNEL_OPTIONS", ())) | set(
            getattr(proxies, "SCORE_OPTIONS", {})
        )
        unknown = sorted(set(self.proxy_options) - known)
        if known and unknown:
            raise NasntkError(
                f"unknown score option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
                " (the search's own options are the fields of nasntk.study.SearchConfig)"
            )
        check = getattr(proxies, "check_measure_options", None)
        if check is not None:
            check(self.proxy_options)

    def _check_sampling(self) -> None:
        if isinstance(self.sampler, str) and self.sampler not in SAMPLERS:
            raise NasntkError(
                f"unknown sampler {self.sampler!r}; choose from {', '.join(SAMPLERS)}"
            )
        if isinstance(self.pruner, str) and self.pruner not in PRUNERS:
            raise NasntkError(f"unknown pruner {self.pruner!r}; choose from {', '.join(PRUNERS)}")
        make_pruner(self.pruner, self.n_low)

    # -- derived values -------------------------------------------------------------------
    def score_options(self) -> dict[str, Any]:
        """The keyword arguments of ``proxies.compute`` every candidate of the search is scored
        with (trials and reference members alike)."""
        opts = dict(self.proxy_options)
        if self.bn is not None:
            opts["bn"] = self.bn
        return {"seeds": self.seeds, "device": self.device, "seed": self.init_seed, **opts}

    def load_batch(self, n: int) -> Any:
        """The search's seeded batch of ``n`` images at the size the networks see."""
        from nasntk import data as data_mod

        return data_mod.load(self.data, n, seed=self.data_seed, img_size=self.img_size)

    def measured_budgets(self) -> dict[str, float | None]:
        """The budgets on measured scores: ``{score: limit or None}``."""
        return {"latency_ms": self.max_latency_ms, "train_memory_mb": self.max_train_memory_mb}

    @property
    def objectives(self) -> list[str]:
        """The names of the objectives, in order."""
        return [name for name, _ in self.parsed]

    @property
    def target_trials(self) -> int | None:
        """Finished trials the study should hold (None: as many as ``timeout`` allows)."""
        if self.trials is None and self.timeout is None:
            return DEFAULT_TRIALS
        return self.trials

    def threads_per_worker(self) -> int | None:
        """Torch threads of each worker (None: leave the thread count alone)."""
        if self.threads is None and self.workers > 1:
            return max(1, (os.cpu_count() or 1) // self.workers)
        return self.threads

    def name_for(self, space_ref: str) -> str:
        """The study name: the one given, else derived (the same command names the same study)."""
        if self.study_name:
            return self.study_name
        labels = [n if d is None else f"{n}:{d[:3]}" for n, d in self.parsed]
        return default_study_name(space_ref, self.data, labels, self.n_kernel, self.space_options)

    # -- resuming -------------------------------------------------------------------------
    def stored(self, space_ref: str, shape: Mapping[str, int]) -> dict[str, Any]:
        """What is stored with the study (study user attribute ``"nasntk"``).

        ``shape`` is the input the networks are built for (``num_classes``, ``in_chans``,
        ``img_size``). The keys and their order are the format of studies on disk.
        """
        return {
            "space_options": json.loads(json.dumps(self.space_options)),
            "data": self.data,
            "objectives": self.objectives,
            "directions": list(self.directions),
            "scores": list(self.score_names),
            "n_kernel": self.n_kernel,
            "seeds": self.seeds,
            "bn": self.bn,
            "init_seed": self.init_seed,
            "data_seed": self.data_seed,
            "img_size": int(shape["img_size"]),
            "proxy_options": json.loads(json.dumps(self.proxy_options)),
            "space": space_ref,
            "num_classes": int(shape["num_classes"]),
            "in_chans": int(shape["in_chans"]),
        }

    def compatible(
        self,
        existing: Mapping[str, Any],
        directions: Sequence[str],
        space_ref: str,
        shape: Mapping[str, int],
    ) -> str | None:
        """Why a study stored with ``existing`` and ``directions`` cannot be resumed (None: it can)."""
        if list(directions) != list(self.directions):
            return "other objectives"
        stored = self.stored(space_ref, shape)
        for key in RESUME_KEYS:
            if key in existing and existing[key] != stored.get(key):
                return f"{key}={existing[key]!r} (not {stored.get(key)!r})"
        return None


# ---------------------------------------------------------------------------------------------
# Objectives and scores
# ---------------------------------------------------------------------------------------------
def parse_objectives(objective: str | Sequence[str]) -> list[tuple[str, str | None]]:
    """``"default"``, ``"name"``, ``"a,b:min"`` or ``["a", "b"]`` -> ``[(name, direction?)]``.

    A ``:min`` / ``:max`` suffix overrides the score's declared direction, e.g. ``params:min``
    to prefer small networks in a multi-objective search (the ``params`` baseline is declared
    "maximize", as bigger networks tend to train to higher accuracy).
    """
    texts = objective.split(",") if isinstance(objective, str) else objective
    items = [s for s in (str(t).strip() for t in texts) if s]
    if not items:
        raise NasntkError("objective must name at least one score (see `nasntk score --list`)")
    out: list[tuple[str, str | None]] = []
    for item in items:
        name, sep, suffix = item.partition(":")
        direction = None
        if sep:
            suffix = suffix.strip().lower()
            if suffix not in ("min", "max", "minimize", "maximize"):
                raise NasntkError(f"objective {item!r}: the suffix must be ':min' or ':max'")
            direction = "minimize" if suffix.startswith("min") else "maximize"
        out.append((name.strip(), direction))
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        raise NasntkError(f"objective {','.join(items)!r} names a score twice")
    return out


def _proxies() -> Any:
    from nasntk import proxies

    return proxies


def check_scores(names: Sequence[str]) -> None:
    """Raise a one-line error naming the first unknown score."""
    known = set(_proxies().names()) | set(BUILTIN_OBJECTIVES)
    for name in names:
        if name not in known:
            raise NasntkError(f"unknown score {name!r}; known: {', '.join(sorted(known))}")


def _directions(objectives: Sequence[tuple[str, str | None]]) -> list[str]:
    """The direction of each objective: the override, else the proxies' declared direction."""
    check_scores([n for n, _ in objectives])
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


def _extra_scores(scores: str | Sequence[str] | None) -> list[str]:
    """The scores recorded besides the objectives (default: those computed from the pNTK, not
    the aggregates, which would need a reference sample)."""
    proxies = _proxies()
    if scores is None:
        return [
            n
            for n in proxies.names()
            if "kernel" in proxies.get(n).needs and "population" not in proxies.get(n).needs
        ]
    if isinstance(scores, str) and scores.strip() == "all":
        return list(proxies.names())
    if not isinstance(scores, str) and len(scores) == 0:
        return []
    extra = [n for n, _ in parse_objectives(scores)]
    check_scores(extra)
    return extra


def default_study_name(
    space: str,
    data: str,
    objectives: Sequence[str],
    n_kernel: int,
    space_options: Mapping[str, Any] | None = None,
) -> str:
    """``space[-opts]-data-objectives-nN``: the same command always names the same study.

    A data source with a path is named by its kind, the file or folder name and a short hash of
    the whole source (``folder:/tmp/ux/imgs`` → ``folder-imgs-3f2a1c``): typeable, and two
    folders of the same name stay apart.
    """
    opts = "".join(f"-{k}{v}" for k, v in sorted((space_options or {}).items()))
    return f"{space}{opts}-{_source_name(data)}-{'+'.join(objectives)}-n{n_kernel}"


def _source_name(data: str) -> str:
    """A short, typeable name of a data source (see :func:`default_study_name`)."""
    kind, sep, rest = data.partition(":")
    if not sep and "/" not in data and len(data) <= 40:
        return data
    stem = Path(rest.rstrip("/\\")).stem if sep else Path(data).stem
    stem = re.sub(r"[^A-Za-z0-9_.+-]+", "-", stem).strip("-")[:24] or "data"
    digest = hashlib.sha1(data.encode()).hexdigest()[:6]
    return f"{re.sub(r'[^A-Za-z0-9]+', '', kind)[:12] or 'data'}-{stem}-{digest}"


# ---------------------------------------------------------------------------------------------
# The command's options
# ---------------------------------------------------------------------------------------------
def command_default(name: str) -> Any:
    """The default of option ``name`` of ``nasntk search``: the library's unless noted above."""
    if name in COMMAND_DEFAULTS:
        return COMMAND_DEFAULTS[name]
    return SearchConfig.__dataclass_fields__[name].default


def parse_space_options(items: Sequence[str] | None) -> dict[str, Any]:
    """``KEY=VALUE`` strings -> dict (values parsed as JSON when they are, else kept as text)."""
    out: dict[str, Any] = {}
    for item in items or []:
        for part in item.split(","):
            key, sep, value = part.partition("=")
            if not sep or not key.strip():
                raise NasntkError(f"--space-opt {part!r} must look like KEY=VALUE (e.g. C=8)")
            try:
                out[key.strip()] = json.loads(value)
            except json.JSONDecodeError:
                out[key.strip()] = value.strip()
    return out


def parse_count(text: str | None, option: str) -> int | None:
    """Budget numbers: ``2000000``, ``2e6``, ``2M``, ``500k``, ``1.5G``."""
    if text is None:
        return None
    t = text.strip().lower().replace("_", "").replace(",", "")
    scale = 1.0
    if t and t[-1] in "kmg":
        scale = {"k": 1e3, "m": 1e6, "g": 1e9}[t[-1]]
        t = t[:-1]
    try:
        value = float(t) * scale
    except ValueError:
        raise NasntkError(f"{option} must be a number like 2e6, 2M or 500k, got {text!r}") from None
    if not value > 0:
        raise NasntkError(f"{option} must be positive, got {text!r}")
    return int(value)


def command_config(
    *,
    space: str | None,
    space_opt: Sequence[str] | None,
    max_params: str | None,
    max_flops: str | None,
    **options: Any,
) -> SearchConfig:
    """The config of ``nasntk search``: option texts parsed, the no-``--space`` preset applied."""
    space_options = parse_space_options(space_opt)
    if space is None:
        space = COMMAND_SPACE
        space_options = {**COMMAND_SPACE_OPTIONS, **space_options}
        # the quick demo on the embedded 8×8 digits stays 8×8; any other data keeps its own
        # size unless --img-size says otherwise (a user's images are never silently shrunk)
        source = str(options.get("data") or "digits").split(":", 1)[0]
        if options.get("img_size") is None and source == "digits":
            options["img_size"] = COMMAND_IMG_SIZE
    return SearchConfig(
        space=space,
        space_options=space_options,
        max_params=parse_count(max_params, "--max-params"),
        max_flops=parse_count(max_flops, "--max-flops"),
        **options,
    )
