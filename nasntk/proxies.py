"""A registry of named training-free scores, and the functions that compute them.

    from nasntk import proxies
    proxies.names()                          # every registered score, in registration order
    proxies.get("pntk_cond").direction       # "minimize"
    proxies.compute(model, batch, ["pntk_cond", "pntk_krr", "naswot"], bn="frozen")
    proxies.score({"arch": ...}, space="nb201", data="cifar10", n=64, seeds=3)

A score is a :class:`Proxy`: a function of a :class:`Context` (one model at one initialisation,
one batch, the options) returning a float, plus its direction ("maximize" / "minimize"), what it
needs ("kernel", "forward", "grad", "labels", "params") and a help line. The context caches what
several scores share — the pNTK K (N×N, float64, computed once per model), its spectrum, its
centred spectrum, the kernel-regression result — so asking for every pNTK score costs one kernel.

pNTK scores (K = ``nasntk.kernels.pntk(model, batch.x, bn=..., dtype=torch.float64)``):

    pntk_cond           log10 λmax(K)/λmin(K)                                    (minimize)
    pntk_cond_centered  the same for HKH, H = I − 11ᵀ/N, without its zero eigenvalue (minimize)
    pntk_krr            held-out accuracy of kernel ridge regression on K        (maximize)
    pntk_krr_mse        held-out mean squared error of that regression           (minimize)
    pntk_flatness       log10 GM/AM of the eigenvalues of the centred correlation  (maximize)
    pntk_trace          tr K = Σ λ_i                                              (maximize)
    pntk_eff_rank       exp(entropy of λ/Σλ), Roy & Vetterli 2007                (maximize)

(definitions in :mod:`nasntk.spectral`); baselines (:mod:`nasntk.baselines`): ``params``,
``flops``, ``naswot``, ``synflow``, ``snip``, ``grad_norm``, ``jacob_cov``; ``live_params`` (the
parameters the output depends on); and ``default``, the score ``nasntk search`` optimises (see
:func:`default_score`).

A score that is undefined for a model (singular or non-finite kernel, two inputs with the same
ReLU pattern, ...) is reported as the worst value of its direction (+inf when minimised, −inf when
maximised) — or nan when it does not apply (no ReLU at all, too few outputs) — with a one-line
reason in ``result["reasons"][name]``; it never raises.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Optional, Union

import numpy as np
import torch
from torch import nn

from nasntk import baselines, spectral
from nasntk.errors import NasntkError
from nasntk.kernels.prepare import BN_MODES, resolve_device
from nasntk.networks import model_builder, shape_of
from nasntk.spectral import ScoreUndefined

__all__ = [
    "DEFAULT",
    "Context",
    "Proxy",
    "compute",
    "default_score",
    "get",
    "names",
    "register",
    "score",
]

DEFAULT = "default"
DIRECTIONS = ("maximize", "minimize")
#: Options of :func:`compute` passed on to ``nasntk.kernels.pntk``.
KERNEL_OPTIONS = ("params", "chunk_size", "max_memory", "implementation")
#: Options of :func:`compute` read by the scores, with their defaults.
SCORE_OPTIONS: dict[str, Any] = {"train_frac": 0.5, "ridge": 1e-3}

ScoreFn = Callable[["Context"], float]


@dataclass(frozen=True)
class Proxy:
    """A named score: ``fn(ctx) -> float``; ``direction`` says whether higher or lower is better."""

    name: str
    direction: str
    needs: tuple[str, ...]
    help: str
    fn: ScoreFn

    @property
    def worst(self) -> float:
        """The value reported when the score is undefined: +inf (minimize) or −inf (maximize)."""
        return math.inf if self.direction == "minimize" else -math.inf


_REGISTRY: dict[str, Proxy] = {}


def register(
    name: str, *, direction: str, needs: Sequence[str], help: str, replace: bool = False
) -> Callable[[ScoreFn], ScoreFn]:
    """Decorator adding ``fn(ctx) -> float`` to the registry under ``name``."""
    if direction not in DIRECTIONS:
        raise NasntkError(f"direction must be 'maximize' or 'minimize', got {direction!r}")

    def deco(fn: ScoreFn) -> ScoreFn:
        if name in _REGISTRY and not replace:
            raise NasntkError(f"score {name!r} is already registered")
        _REGISTRY[name] = Proxy(name, direction, tuple(needs), help, fn)
        return fn

    return deco


def names() -> list[str]:
    """Every registered score name, in registration order."""
    return list(_REGISTRY)


def get(name: str) -> Proxy:
    """The :class:`Proxy` registered under ``name``."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise NasntkError(f"unknown score {name!r}; known: {', '.join(_REGISTRY)}") from None


# ------------------------------------------------------------------------------------------------
# The per-model context: shared, cached intermediate results
# ------------------------------------------------------------------------------------------------
def _has_batchnorm(model: nn.Module) -> bool:
    from nasntk.kernels.prepare import batchnorms

    return bool(batchnorms(model))


def _pntk(model: nn.Module, x: torch.Tensor, **opts: Any) -> torch.Tensor:
    from nasntk.kernels import pntk

    return pntk(model, x, **opts)


class Context:
    """One model at one initialisation on one batch: what the scores share, computed lazily once.

    ``kernel_fn(model, x, bn=, dtype=, device=, **kernel_opts)`` defaults to
    ``nasntk.kernels.pntk``. Failures (:class:`ScoreUndefined`) are cached too, so a singular
    kernel is computed and diagnosed once for all scores that use it.
    """

    def __init__(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        num_classes: int,
        *,
        bn: str = "frozen",
        device: Union[str, torch.device] = "cpu",
        kernel_opts: Optional[dict[str, Any]] = None,
        train_frac: float = SCORE_OPTIONS["train_frac"],
        ridge: float = SCORE_OPTIONS["ridge"],
        kernel_fn: Optional[Callable[..., torch.Tensor]] = None,
    ) -> None:
        self.model, self.x, self.y, self.num_classes = model, x, y, int(num_classes)
        self.bn, self.device = bn, device
        self.kernel_opts = dict(kernel_opts or {})
        self.train_frac, self.ridge = float(train_frac), float(ridge)
        self.kernel_fn = kernel_fn or _pntk
        self._memo: dict[str, Any] = {}

    def _cached(self, key: str, make: Callable[[], Any]) -> Any:
        if key not in self._memo:
            try:
                self._memo[key] = make()
            except ScoreUndefined as exc:
                self._memo[key] = exc
        value = self._memo[key]
        if isinstance(value, ScoreUndefined):
            raise value
        return value

    def kernel(self, bn: Optional[str] = None) -> np.ndarray:
        """The pNTK of the batch, N×N float64 (non-finite entries → ScoreUndefined), with
        BatchNorm in mode ``bn`` (default: the context's). One kernel per mode, computed once;
        without BatchNorm layers every mode gives the context's kernel."""
        mode = bn or self.bn
        if mode != self.bn and not _has_batchnorm(self.model):
            mode = self.bn

        def make() -> np.ndarray:
            k = self.kernel_fn(
                self.model,
                self.x,
                bn=mode,
                dtype=torch.float64,
                device=self.device,
                **self.kernel_opts,
            )
            return spectral.as_matrix(k)

        return self._cached("kernel" if mode == self.bn else f"kernel_{mode}", make)

    def eigenvalues(self) -> np.ndarray:
        return self._cached("eigs", lambda: spectral.eigenvalues(self.kernel()))

    def centered_eigenvalues(self) -> np.ndarray:
        return self._cached("ceigs", lambda: spectral.centered_eigenvalues(self.kernel()))

    def loss_gradients(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(W, ∂L/∂W) of the cross-entropy, shared by snip and grad_norm."""
        return self._cached(
            "loss_grads", lambda: baselines.loss_gradients(self.model, self.x, self.y, self.bn)
        )

    def regression(self) -> dict[str, float]:
        return self._cached(
            "krr",
            lambda: spectral.kernel_regression_scores(
                self.kernel(),
                self.y,
                self.num_classes,
                train_frac=self.train_frac,
                ridge=self.ridge,
            ),
        )


# ------------------------------------------------------------------------------------------------
# pNTK scores
# ------------------------------------------------------------------------------------------------
def _centred_correlation_eigenvalues(ctx: Context) -> np.ndarray:
    """Eigenvalues of H C H of the context's kernel (cached; see spectral)."""
    return ctx._cached(
        "corr_ceigs", lambda: spectral.correlation_centered_eigenvalues(ctx.kernel())
    )


@register(
    "pntk_cond",
    direction="minimize",
    needs=("kernel",),
    help="log10 condition number λmax/λmin of the pNTK (float64 eigvalsh)",
)
def pntk_cond(ctx: Context) -> float:
    return spectral.condition_number(ctx.eigenvalues())


@register(
    "pntk_cond_centered",
    direction="minimize",
    needs=("kernel",),
    help="log10 condition number of the centred pNTK HKH (H = I − 11ᵀ/N), zero eigenvalue dropped",
)
def pntk_cond_centered(ctx: Context) -> float:
    return spectral.condition_number(ctx.centered_eigenvalues())


@register(
    "pntk_krr",
    direction="maximize",
    needs=("kernel", "labels"),
    help="held-out accuracy of pNTK kernel ridge regression (options train_frac, ridge)",
)
def pntk_krr(ctx: Context) -> float:
    return ctx.regression()["accuracy"]


@register(
    "pntk_krr_mse",
    direction="minimize",
    needs=("kernel", "labels"),
    help="held-out MSE of pNTK kernel ridge regression on centred one-hot targets",
)
def pntk_krr_mse(ctx: Context) -> float:
    return ctx.regression()["mse"]


@register(
    "pntk_flatness",
    direction="maximize",
    needs=("kernel",),
    help="log10 spectral flatness GM/AM of the centred pNTK correlation (1 = isotropic)",
)
def pntk_flatness(ctx: Context) -> float:
    return spectral.log10_flatness(
        _centred_correlation_eigenvalues(ctx), "centred pNTK correlation"
    )


@register("pntk_trace", direction="maximize", needs=("kernel",), help="trace of the pNTK, Σ λ_i")
def pntk_trace(ctx: Context) -> float:
    return float(np.trace(ctx.kernel()))


@register(
    "pntk_eff_rank",
    direction="maximize",
    needs=("kernel",),
    help="effective rank exp(H(λ/Σλ)) of the pNTK spectrum (Roy & Vetterli 2007), 1..N",
)
def pntk_eff_rank(ctx: Context) -> float:
    return spectral.effective_rank(ctx.eigenvalues())


# ------------------------------------------------------------------------------------------------
# Baselines
# ------------------------------------------------------------------------------------------------
@register("params", direction="maximize", needs=("params",), help="number of trainable parameters")
def _params(ctx: Context) -> float:
    return baselines.params(ctx.model)


@register(
    "live_params",
    direction="maximize",
    needs=("grad",),
    help="trainable parameters the output depends on (non-zero gradient of the summed logit)",
)
def _live_params(ctx: Context) -> float:
    return ctx._cached("live_params", lambda: baselines.live_params(ctx.model, ctx.x))


@register(
    "flops",
    direction="maximize",
    needs=("forward",),
    help="FLOPs of one forward pass on one image (torch.utils.flop_counter)",
)
def _flops(ctx: Context) -> float:
    return baselines.flops(ctx.model, ctx.x)


@register(
    "naswot",
    direction="maximize",
    needs=("forward",),
    help="Mellor et al. 2021: log|det K_H| of the ReLU-pattern Hamming kernel",
)
def _naswot(ctx: Context) -> float:
    return baselines.naswot(ctx.model, ctx.x, ctx.bn)


@register(
    "synflow",
    direction="maximize",
    needs=("grad",),
    help="Tanaka et al. 2020: Σ θ⊙∂R/∂θ, R = summed output of |θ| on an all-ones input, no BN",
)
def _synflow(ctx: Context) -> float:
    return baselines.synflow(ctx.model, ctx.x)


@register(
    "snip",
    direction="maximize",
    needs=("grad", "labels"),
    help="Lee et al. 2019 (as Abdelfattah et al. 2021): Σ |θ ⊙ ∂L/∂θ|, L = cross-entropy",
)
def _snip(ctx: Context) -> float:
    return baselines.snip(ctx.model, ctx.x, ctx.y, ctx.bn, gradients=ctx.loss_gradients())


@register(
    "grad_norm",
    direction="maximize",
    needs=("grad", "labels"),
    help="Abdelfattah et al. 2021: Σ_layers ‖∂L/∂W‖_F, L = cross-entropy",
)
def _grad_norm(ctx: Context) -> float:
    return baselines.grad_norm(ctx.model, ctx.x, ctx.y, ctx.bn, gradients=ctx.loss_gradients())


@register(
    "jacob_cov",
    direction="maximize",
    needs=("grad",),
    help="Mellor et al. 2020 v1: −Σ log(σ+k) + 1/(σ+k) of the input-Jacobian correlations",
)
def _jacob_cov(ctx: Context) -> float:
    return baselines.jacob_cov(ctx.model, ctx.x, ctx.bn)


# ================================================================================================
# DEFAULT SCORE — the score `nasntk search` optimises unless told otherwise.
# Owned by the benchmark (issue 4, second half): replace the body of `default_score` (and its
# help/needs) after measuring on NAS-Bench-201. It must stay a per-candidate score (no ranks over
# a population), direction "maximize".
# ================================================================================================
@register(
    DEFAULT,
    direction="maximize",
    needs=("kernel", "grad"),
    help="log10(#live params · λmin/GM(λ) of the pNTK with BatchNorm on batch statistics, "
    "its top mode set aside)",
)
def default_score(ctx: Context) -> float:
    """log10 P + log10 G = log10(P·G): the live parameters, discounted by the pNTK's slowest mode.

    * P: the number of trainable parameters the pNTK sees (capacity): those with a non-zero
      gradient of the summed logit (``live_params``; parameters behind a multiplication by
      zero or cut off from the output never train). For most models: every parameter.
    * G = λ_N / GM(λ₂, …, λ_N) ∈ (0, 1] for the eigenvalues λ₁ ≥ … ≥ λ_N of the pNTK K with
      BatchNorm on the batch's statistics (``bn="frozen"``: the network as it trains, whatever
      the context's mode): how far the slowest direction in function space lies below the
      typical (geometric-mean) one, the dominant eigenvalue λ₁ — the direction all inputs
      share — set aside. Under gradient flow on the squared loss the residual along mode i
      decays as exp(−ηλ_i t), so 1/G is the slowest mode's training time in units of the
      typical mode's: log10 G ≤ 0 counts the decades by which the network is slower to fit its
      hardest direction. λmin is compared with the whole spectrum, not with one other eigenvalue
      as the condition number does (which makes κ noisy from one initialisation to the next).

    Two logs summed with weight 1 (the ranking does not depend on the log base): nothing is
    fitted, the definition is the same for every space, and the value is per candidate. One
    pNTK per candidate. It is defined wherever BatchNorm keeps the signal alive: unlike BN in
    eval mode at initialisation (running statistics 0 / 1), under which nets that rely on BN
    for their scale (timm's EfficientNet, LCNet, TinyNet, EfficientViT) have vanishing
    features and a numerically rank-one pNTK.

    Chosen by measurement on the dev splits of NAS-Bench-201, NAS-Bench-101 and NAS-Bench-301
    side by side (N = 64 CIFAR-10 images, one initialisation; ``experiments/suites.py``, all
    configurations and CIs in experiments/README.md). The previous default, log10 P + log10 F
    + log10 G(eval) with F the spectral flatness of the centred pNTK correlation, ranked NB201
    as well but fell below #params on NB101 and far below it on NB301.
    """
    slow = spectral.log10_min_over_gm(spectral.eigenvalues(ctx.kernel("frozen")), "pNTK")
    live = _live_params(ctx)
    if not live > 0:
        raise ScoreUndefined("no trainable parameter reaches the output", -math.inf)
    return math.log10(live) + slow


# ================================================================================================
# END DEFAULT SCORE
# ================================================================================================


# ------------------------------------------------------------------------------------------------
# compute / score
# ------------------------------------------------------------------------------------------------
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


def _score_one(proxy: Proxy, ctx: Context) -> tuple[float, Optional[str]]:
    try:
        value = float(proxy.fn(ctx))
    except ScoreUndefined as exc:
        value = proxy.worst if exc.value is None else exc.value
        return value, exc.reason
    if math.isnan(value):
        return value, "score is nan"
    return value, None


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
        opts: ``train_frac`` (0.5) and ``ridge`` (1e-3) of the regression; ``params``,
            ``chunk_size``, ``max_memory``, ``implementation`` for ``nasntk.kernels.pntk``.

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
        )
        for name in score_names:
            value, why = _score_one(get(name), ctx)
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
