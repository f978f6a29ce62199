"""Compute named scores of a model, a builder or a spec: :func:`compute` and :func:`score`."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Optional, Union

import numpy as np
import torch
from torch import nn

from nasntk.errors import NasntkError
from nasntk.kernels.prepare import BN_MODES, resolve_device
from nasntk.networks import model_builder, shape_of
from nasntk.proxies.context import (
    MEASURE_OPTIONS,
    SCORE_OPTIONS,
    Context,
    _pntk,
    check_measure_options,
)
from nasntk.proxies.registry import Proxy, get, names
from nasntk.spectral import ScoreUndefined

__all__ = ["KERNEL_OPTIONS", "compute", "score", "value_of"]

#: Options of :func:`compute` passed on to ``nasntk.kernels.pntk``.
KERNEL_OPTIONS = ("params", "chunk_size", "max_memory", "implementation")


def _resolve_names(names_: Union[str, Sequence[str], None]) -> list[str]:
    if names_ is None or names_ == "all":
        return names()
    if isinstance(names_, str):
        names_ = [n.strip() for n in names_.split(",") if n.strip()]
    out = list(dict.fromkeys(names_))
    if not out:
        raise NasntkError("no score names given")
    for n in out:
        get(n)
    return out


def value_of(proxy: Proxy, ctx: Context) -> tuple[float, Optional[str]]:
    """``proxy``'s value in ``ctx`` (computed once per context: aggregates reuse their terms'),
    and the reason when it is undefined (its worst value, or nan) or None."""
    if proxy.name in ctx.values:
        return ctx.values[proxy.name], ctx.reasons.get(proxy.name)
    why: Optional[str] = None
    try:
        value = float(proxy.fn(ctx))
    except ScoreUndefined as exc:
        value = proxy.worst if exc.value is None else exc.value
        why = exc.reason
    if why is None and math.isnan(value):
        why = "score is nan"
    ctx.values[proxy.name] = value
    if why is not None:
        ctx.reasons[proxy.name] = why
    return value, why


def compute(
    model_or_builder: Union[nn.Module, Callable[[int], nn.Module]],
    batch: Any,
    names: Union[str, Sequence[str], None],
    *,
    seeds: int = 1,
    bn: str = "frozen",
    device: Union[str, torch.device] = "cpu",
    seed: int = 0,
    kernel_fn: Optional[Callable[..., torch.Tensor]] = None,
    reference: Optional[Mapping[str, np.ndarray]] = None,
    blocks: Optional[Sequence[str]] = None,
    known: Optional[Mapping[str, float]] = None,
    **opts: Any,
) -> dict[str, Any]:
    """Compute the named scores of a model (or of ``seeds`` fresh initialisations of a builder).

    Args:
        model_or_builder: an ``nn.Module`` (scored as it is; ``seeds`` must be 1) or a callable
            ``builder(seed) -> nn.Module``, called after ``torch.manual_seed(seed)`` for
            seed = ``seed``, ``seed + 1``, …, ``seed + seeds − 1``.
        batch: a :class:`nasntk.data.Batch` (``x``, ``y``, ``num_classes``).
        names: score names (a list, a comma-separated string, or ``"all"`` / ``None`` for all).
        bn: BatchNorm mode of the kernel and the forward passes: ``"eval"`` | ``"batch"`` |
            ``"frozen"`` (see :mod:`nasntk.kernels` and :func:`nasntk.baselines.forward_mode`).
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``; the model is moved there.
        kernel_fn: the pNTK function, ``kernel_fn(model, x, bn=, dtype=, device=, **opts)``
            (default :func:`nasntk.kernels.pntk`): e.g. a wrapper that keeps every kernel, or
            another implementation. It is called once per BatchNorm mode a score needs.
        reference: ``{term: values}`` on a reference sample of candidates: aggregates (scores
            with ``terms``) become a sum of log-percentiles against it
            (:mod:`nasntk.proxies.aggregate`); without it an aggregate is nan, with the reason.
        blocks: names of the modules whose outputs are the network's blocks (AZ-NAS); default:
            :func:`nasntk.proxies.blocks.find_blocks`.
        known: scores already counted by the caller, used as they are (``params`` / ``flops``
            of a space's exact count: a search has them from its budget check).
        opts: ``train_frac`` (0.5) and ``ridge`` (1e-3) of the regression; ``latency_batch``
            (32), ``latency_repeats`` (5) and ``memory_batch`` (64) of the measured scores
            (:mod:`nasntk.proxies.hardware`); ``params``, ``chunk_size``, ``max_memory``,
            ``implementation`` for ``nasntk.kernels.pntk``.

    Returns:
        ``{name: value}`` — the mean over initialisations — plus ``"<name>_std"`` (sample standard
        deviation, ddof = 1) when ``seeds > 1``, and ``"reasons"``: ``{name: why}`` for every
        score that was undefined (or nan) at some initialisation.
    """
    score_names = _resolve_names(names)
    train_frac, ridge = _check_compute_args(model_or_builder, seeds, bn, opts)
    dev = resolve_device(device)
    x = batch.x.to(dev)
    y = batch.y.to(dev)
    kernel_opts = {k: opts[k] for k in KERNEL_OPTIONS if k in opts}
    measure = {k: opts[k] for k in MEASURE_OPTIONS if k in opts}

    values: dict[str, list[float]] = {n: [] for n in score_names}
    reasons: dict[str, str] = {}
    for i in range(seeds):
        model = _model_at(model_or_builder, seed + i).to(dev)
        ctx = Context(
            model,
            _match_dtype(x, model),
            y,
            batch.num_classes,
            bn=bn,
            device=dev,
            kernel_opts=kernel_opts,
            train_frac=train_frac,
            ridge=ridge,
            kernel_fn=kernel_fn or _pntk,
            reference=reference,
            blocks=list(blocks) if blocks is not None else None,
            known=known,
            measure=measure,
        )
        for name in score_names:
            value, why = value_of(get(name), ctx)
            values[name].append(value)
            if why is not None and name not in reasons:
                reasons[name] = why if seeds == 1 else f"seed {seed + i}: {why}"
    return {**_mean_and_std(values, seeds), "reasons": reasons}


def _check_compute_args(
    model_or_builder: Any, seeds: Any, bn: str, opts: dict[str, Any]
) -> tuple[float, float]:
    """NasntkError for a bad argument of :func:`compute`; else (train_frac, ridge)."""
    unknown = sorted(set(opts) - set(KERNEL_OPTIONS) - set(SCORE_OPTIONS))
    if unknown:
        raise NasntkError(
            f"unknown score option(s) {', '.join(unknown)}; "
            f"known: {', '.join([*SCORE_OPTIONS, *KERNEL_OPTIONS])}"
        )
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise NasntkError(f"seeds must be a positive integer, got {seeds!r}")
    if bn not in BN_MODES:
        raise NasntkError(f"bn must be one of {', '.join(BN_MODES)}, got {bn!r}")
    check_measure_options(opts)
    train_frac = float(opts.get("train_frac", SCORE_OPTIONS["train_frac"]))
    ridge = float(opts.get("ridge", SCORE_OPTIONS["ridge"]))
    if not 0.0 < train_frac < 1.0:
        raise NasntkError(f"train_frac must be between 0 and 1, got {train_frac}")
    if not ridge >= 0.0:
        raise NasntkError(f"ridge must be non-negative, got {ridge}")
    is_module = isinstance(model_or_builder, nn.Module)
    if not is_module and not callable(model_or_builder):
        raise NasntkError("compute needs an nn.Module or a builder callable (seed -> nn.Module)")
    if is_module and seeds > 1:
        raise NasntkError(
            "seeds > 1 needs a builder (seed -> freshly initialised model) or a spec, not a module"
        )
    return train_frac, ridge


def _model_at(
    model_or_builder: Union[nn.Module, Callable[[int], nn.Module]], seed: int
) -> nn.Module:
    """The model itself, or the builder's fresh model after ``torch.manual_seed(seed)``."""
    if isinstance(model_or_builder, nn.Module):
        return model_or_builder
    torch.manual_seed(seed)
    model = model_or_builder(seed)
    if not isinstance(model, nn.Module):
        raise NasntkError(f"the builder returned {type(model).__name__}, not an nn.Module")
    return model


def _mean_and_std(values: dict[str, list[float]], seeds: int) -> dict[str, float]:
    """Per score the mean over initialisations, and ``<name>_std`` (ddof 1) when seeds > 1."""
    result: dict[str, float] = {}
    with warnings.catch_warnings(), np.errstate(invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        for name, vs in values.items():
            arr = np.asarray(vs, dtype=np.float64)
            result[name] = float(arr.mean())
            if seeds > 1:
                result[f"{name}_std"] = float(arr.std(ddof=1))
    return result


def _match_dtype(x: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """The batch in the floating dtype of the model's parameters (float32 unless it is cast)."""
    p = next((p for p in model.parameters() if p.is_floating_point()), None)
    return x.to(p.dtype) if p is not None and p.dtype != x.dtype else x


def _first_in_chans(model: nn.Module) -> Optional[int]:
    for m in model.modules():
        c = getattr(m, "in_channels", None)
        if isinstance(c, int):
            return c
    return None


def score(
    model_or_spec: Union[nn.Module, dict, str],
    *,
    data: Any = "digits",
    scores: Union[str, Sequence[str], None] = None,
    n: int = 64,
    seeds: int = 1,
    space: Any = None,
    **opts: Any,
) -> dict[str, Any]:
    """Scores of a model or an architecture spec on ``n`` images of ``data``.

    Args:
        model_or_spec: an ``nn.Module`` (its first convolution's ``in_channels`` picks the data's
            channels), or a spec (dict or text form) of ``space``.
        data: a source string of :func:`nasntk.data.load` or an already-loaded ``Batch``.
        scores: names (default: every registered score).
        n: number of images (class-balanced, seeded by ``data_seed``, default 0).
        seeds: initialisations to average over (specs only).
        space: a search-space name or ``SearchSpace`` (needed for specs); the network is built
            with the data's ``num_classes``, ``in_chans`` and ``img_size``.
        opts: ``bn``, ``device``, ``seed`` and the options of :func:`compute`; ``in_chans``,
            ``img_size`` and ``data_seed`` override how the data is loaded.

    Returns:
        :func:`compute`'s dict.
    """
    from nasntk import data as data_mod

    in_chans = opts.pop("in_chans", None)
    img_size = opts.pop("img_size", None)
    data_seed = opts.pop("data_seed", 0)
    if isinstance(model_or_spec, nn.Module):
        if in_chans is None:
            in_chans = _first_in_chans(model_or_spec)
        target: Union[nn.Module, Callable[[int], nn.Module], None] = model_or_spec
    else:
        if space is None:
            raise NasntkError("scoring a spec needs space= (a search-space name or SearchSpace)")
        if isinstance(space, str):
            from nasntk.search_spaces import get as get_space

            space = get_space(space)
        if isinstance(model_or_spec, str):
            spec = space.parse_any(model_or_spec)
        elif isinstance(model_or_spec, dict):
            spec = space.validate(model_or_spec)
        else:
            raise NasntkError(
                f"score needs an nn.Module or a spec (dict or text), got {type(model_or_spec).__name__}"
            )
        target = None  # set below, once the data's shape is known
    batch = (
        data_mod.load(data, n, seed=data_seed, in_chans=in_chans, img_size=img_size)
        if isinstance(data, str)
        else data
    )
    if target is None:
        target = model_builder(space, spec, shape_of(batch))
        if seeds == 1:
            target = target(opts.get("seed", 0))
    return compute(target, batch, scores, seeds=seeds, **opts)
