"""The Optuna objective: one trial is suggest → dedup → budget → build → score → record.

::

    spec   = space.suggest(trial)                    # a canonical, JSON-serialisable dict
    key    = space.key(spec)                         # equal architectures <=> equal keys
    if an earlier trial of the study has this key:   # duplicates are never scored twice
        reuse its outcome (waiting for it if it is still running)      (nasntk.study.dedup)
    params, flops = space.params(spec), space.flops(spec)     # on the meta device, no arithmetic
    if params > max_params or flops > max_flops:     # budgets cost no kernel
        prune (reason stored)
    model = build(spec)                              # untrained, at the search's input size
    latency_ms, train_memory_mb = measure(model)     # only when asked for (score or budget)
    if latency_ms > max_latency_ms or ...:           # before any kernel, the value stored
        prune (reason stored)
    if n_low:                                        # multi-fidelity
        s_low = score(model, batch[:n_low]); trial.report(s_low, step=1)
        if pruner.should_prune(): prune          # e.g. successive halving keeps the top 1/eta
    s = score(model, batch[:n_kernel])               # nasntk.proxies.compute
    return s[objective_1], ..., s[objective_m]       # directions declared by the proxies

Every score, ``params``, ``flops``, the spec, the space, the data source and the timings are
stored as trial user attributes (:mod:`nasntk.study.record`): Optuna commits each trial as it
finishes, so killing the process never loses a completed trial. A candidate that raises, runs out
of memory or gives a non-finite objective becomes a FAIL trial whose ``fail_reason`` says why;
the search goes on.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NoReturn

import optuna

from nasntk.errors import NasntkError, one_line
from nasntk.study import dedup, liveness, record, storage
from nasntk.study.config import BUILTIN_OBJECTIVES, SearchConfig
from nasntk.study.interrupts import INTERRUPTS
from nasntk.study.models import model_builder, release_memory, shape_of
from nasntk.study.record import Failure, Prune, TrialFailed
from nasntk.study.reference import Reference, aggregate_terms, stored_reference

if TYPE_CHECKING:
    from nasntk.search_spaces import SearchSpace

__all__ = ["Objective", "failure_of"]

#: The option of each budget on a measured score (SearchConfig.measured_budgets).
MEASURED_BUDGETS = {"latency_ms": "max-latency-ms", "train_memory_mb": "max-train-memory-mb"}


def _proxies() -> Any:
    from nasntk import proxies

    return proxies


def failure_of(exc: BaseException) -> tuple[Failure, str]:
    """The kind and detail of a candidate's failure (a stable, one-line reason)."""
    text = str(exc).lower()
    if isinstance(exc, MemoryError) or "out of memory" in text or "can't allocate memory" in text:
        return Failure.OUT_OF_MEMORY, ""
    if isinstance(exc, NasntkError):
        return Failure.ERROR, one_line(exc)
    return Failure.ERROR, f"{type(exc).__name__}: {one_line(exc)}"


def lookup(result: Mapping[str, Any], name: str, builtin: Mapping[str, float]) -> float:
    """The value of score ``name`` in a ``proxies.compute`` result (aliases resolved), else nan."""
    if name in result:
        return float(result[name])
    if name in builtin:
        return float(builtin[name])
    try:
        real = _proxies().get(name).name
        return float(result[real]) if real in result else math.nan
    except Exception:
        return math.nan


class Objective:
    """The objective of one worker: loads its batches once, then runs trials."""

    def __init__(self, config: SearchConfig, space: SearchSpace) -> None:
        self.config = config
        self.space = space
        self.space_ref = str(config.space)  # the reference stored with trials
        self.worker = liveness.worker_id()
        self.batch = config.load_batch(config.n_kernel)
        self.low_batch = config.load_batch(config.n_low) if config.n_low else None
        self.shape = shape_of(self.batch)
        # params and FLOPs come from the meta-device count of the budget check.
        self.proxy_scores = [s for s in config.score_names if s not in BUILTIN_OBJECTIVES]
        # latency and memory are measured right after the build (nasntk.proxies.hardware)
        measured = [s for s in self.proxy_scores if "measure" in _proxies().get(s).needs]
        self.measured = measured
        self.unmeasured = [s for s in self.proxy_scores if s not in measured]
        self.reference: Reference | None = None  # the study's, read at the first trial

    def __call__(self, trial: optuna.Trial) -> list[float] | float:
        try:
            with INTERRUPTS.inside_trial():
                values = self._run(trial)
        except KeyboardInterrupt:
            with storage.best_effort():
                record.write_failure(trial, Failure.INTERRUPTED)
            raise
        return values[0] if len(values) == 1 else values

    def _run(self, trial: optuna.Trial) -> list[float]:
        started = time.perf_counter()
        self._write_origin(trial)
        spec, key = self._suggest(trial)
        original = dedup.earlier_outcome(trial, key)
        if original is not None:
            return dedup.reuse(trial, original, started)
        params, flops = self._budget(trial, spec)
        builtin = {record.PARAMS: float(params), record.FLOPS: float(flops)}
        reference = self._reference(trial)
        member = None if reference is None else reference.result_of(key, self.unmeasured)
        if member is not None:  # scored when the study was made: never scored twice
            trial.set_user_attr(record.REFERENCE_MEMBER, True)
        if member is not None and not self.measured:
            result, timings = member, {}
        else:  # a member is only measured (the reference holds no measurements)
            result, timings = self._build_and_score(trial, spec, builtin, member)
        record.write_scores(trial, result)
        trial.set_user_attr(record.N, self.config.n_kernel)
        for key_, seconds in timings.items():
            trial.set_user_attr(key_, seconds)
        trial.set_user_attr(record.TIME_TOTAL, time.perf_counter() - started)
        return self._values(trial, result, builtin)

    # -- the steps ------------------------------------------------------------------------
    def _fail(self, trial: optuna.Trial, kind: Failure, detail: str = "") -> NoReturn:
        raise TrialFailed(record.write_failure(trial, kind, detail))

    def _prune(self, trial: optuna.Trial, kind: Prune, detail: str) -> NoReturn:
        raise optuna.TrialPruned(record.write_prune(trial, kind, detail))

    def _write_origin(self, trial: optuna.Trial) -> None:
        """Who runs the trial, on what (so that ``nasntk.build(trial.user_attrs)`` is exact)."""
        cfg = self.config
        trial.set_user_attr(record.WORKER, self.worker)
        trial.set_user_attr(record.SPACE, self.space_ref)
        if cfg.space_options:
            trial.set_user_attr(record.SPACE_OPTIONS, cfg.space_options)
        trial.set_user_attr(record.DATA, cfg.data)
        for k, v in self.shape.items():
            trial.set_user_attr(k, v)

    def _suggest(self, trial: optuna.Trial) -> tuple[dict[str, Any], str]:
        """The spec and its key, recorded first (so that racing duplicates see each other)."""
        try:
            spec = self.space.validate(self.space.suggest(trial))
            key = self.space.key(spec)
            arch = self.space.describe(spec)
        except optuna.TrialPruned:
            raise
        except Exception as exc:
            kind, detail = failure_of(exc)
            self._fail(trial, Failure.SUGGEST, kind.reason(detail))
        trial.set_user_attr(record.SPEC, record.encode_spec(spec))
        trial.set_user_attr(record.KEY, key)
        trial.set_user_attr(record.ARCH, arch)
        return spec, key

    def _budget(self, trial: optuna.Trial, spec: dict[str, Any]) -> tuple[int, int]:
        """Params and FLOPs on the meta device, before any kernel; over budget is pruned."""
        cfg = self.config
        t0 = time.perf_counter()
        try:
            params = int(self.space.params(spec, **self.shape))
            flops = int(self.space.flops(spec, **self.shape))
        except Exception as exc:
            self._fail(trial, *failure_of(exc))
        trial.set_user_attr(record.PARAMS, params)
        trial.set_user_attr(record.FLOPS, flops)
        trial.set_user_attr(record.TIME_BUDGET, time.perf_counter() - t0)
        if cfg.max_params is not None and params > cfg.max_params:
            detail = f"params {params:,} > max-params {cfg.max_params:,}"
            self._prune(trial, Prune.OVER_BUDGET, detail)
        if cfg.max_flops is not None and flops > cfg.max_flops:
            self._prune(trial, Prune.OVER_BUDGET, f"flops {flops:,} > max-flops {cfg.max_flops:,}")
        return params, flops

    def _build_and_score(
        self,
        trial: optuna.Trial,
        spec: dict[str, Any],
        builtin: Mapping[str, float],
        member: Mapping[str, Any] | None = None,
    ) -> tuple[dict[str, Any], dict[str, float]]:
        """The measured scores (budgets checked), then the scores on the full batch (after the
        small-N pruning step; a reference ``member``'s stored ones), and the timings."""
        try:
            t1 = time.perf_counter()
            make = model_builder(self.space, spec, self.shape)
            model = make(self.config.init_seed)
            t2 = time.perf_counter()
            measured = self._measure(trial, model)
            t3 = time.perf_counter()
            if member is not None:
                result = {**member, **measured}
            else:
                if self.low_batch is not None:
                    self._low_fidelity(trial, make, model, builtin, measured)
                known = {**builtin, **measured}
                result = self._compute(
                    make, model, self.batch, self._reference_values(trial), known=known
                )
            t4 = time.perf_counter()
        except (optuna.TrialPruned, TrialFailed):
            raise
        except Exception as exc:
            release_memory()
            self._fail(trial, *failure_of(exc))
        return result, {record.TIME_BUILD: t2 - t1, record.TIME_SCORE: t4 - t3}

    def _measure(self, trial: optuna.Trial, model: Any) -> dict[str, float]:
        """The measured scores of the built model (latency, training memory), stored at once
        with what they were measured with; over a measured budget is pruned, the value kept."""
        if not self.measured:
            return {}
        from nasntk.kernels.prepare import resolve_device
        from nasntk.proxies.hardware import facts

        t0 = time.perf_counter()
        opts = {**self.config.score_options(), "seeds": 1}
        got = _proxies().compute(model, self.batch, self.measured, **opts)
        values = {name: float(got[name]) for name in self.measured}
        record.write_scores(trial, values)
        trial.set_user_attr(record.TIME_MEASURE, time.perf_counter() - t0)
        trial.set_user_attr(record.HARDWARE, facts(resolve_device(self.config.device), opts))
        for name, limit in self.config.measured_budgets().items():
            if limit is not None and values[name] > limit:
                detail = f"{name} {values[name]:.4g} > {MEASURED_BUDGETS[name]} {limit:g}"
                self._prune(trial, Prune.OVER_BUDGET, detail)
        return values

    def _low_fidelity(
        self,
        trial: optuna.Trial,
        make: Callable[[int], Any],
        model: Any,
        builtin: Mapping,
        measured: Mapping[str, float],
    ) -> None:
        """Multi-fidelity: report the small-N score of the first objective; prune if told."""
        cfg = self.config
        main = cfg.objectives[0]
        ref = self._reference_values(trial)
        low = self._compute(make, model, self.low_batch, ref, known=measured)
        value = lookup(low, main, builtin)
        trial.set_user_attr(record.LOW_FIDELITY, {"n": cfg.n_low, main: record.encode_float(value)})
        if not math.isfinite(value):
            value = math.inf if cfg.directions[0] == "minimize" else -math.inf
        trial.report(value, step=1)
        if trial.should_prune():
            self._prune(trial, Prune.MULTI_FIDELITY, f"{main}={value:.4g} at N={cfg.n_low}")

    def _reference(self, trial: optuna.Trial) -> Reference | None:
        """The study's reference sample (for aggregate scores), read once; None without one."""
        if self.reference is None and aggregate_terms(self.proxy_scores):
            self.reference = stored_reference(trial.study.user_attrs)
        return self.reference

    def _reference_values(self, trial: optuna.Trial) -> Any:
        ref = self._reference(trial)
        return None if ref is None else ref.values

    def _compute(
        self,
        make: Callable[[int], Any],
        model: Any,
        batch: Any,
        reference: Any = None,
        known: Mapping[str, float] | None = None,
    ) -> dict[str, Any]:
        """``proxies.compute`` of the requested scores (a builder when averaging over seeds);
        aggregates are percentiles against ``reference``."""
        if not self.proxy_scores:
            return {}
        target = make if self.config.seeds > 1 else model
        return _proxies().compute(
            target,
            batch,
            self.proxy_scores,
            reference=reference,
            known=known,
            **self.config.score_options(),
        )

    def _values(
        self, trial: optuna.Trial, result: Mapping[str, Any], builtin: Mapping[str, float]
    ) -> list[float]:
        """The objectives' values; a non-finite one fails the trial with its reason."""
        reasons = result.get(record.REASONS) or {}
        values = []
        for name in self.config.objectives:
            value = lookup(result, name, builtin)
            if not math.isfinite(value):
                why = reasons.get(name)
                self._fail(trial, Failure.NON_FINITE, name + (f": {why}" if why else ""))
            values.append(value)
        return values
