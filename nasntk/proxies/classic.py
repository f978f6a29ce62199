"""The classic (NASLib-era) training-free scores, each implemented from its paper's definition,
and the counts every family shares (params, live params, FLOPs, the activation codes).

Every function takes a model, a batch (``x`` [N,C,H,W], labels ``y``) and a BatchNorm mode and
returns a float (or raises :class:`nasntk.spectral.ScoreUndefined`). None of them changes the
model: gradients are taken with ``torch.autograd.grad`` (``.grad`` is untouched), BatchNorm
running statistics are not updated, and synflow works on a deep copy.

BatchNorm mode of the forward pass (:func:`forward_mode`): ``"eval"`` uses the running statistics
(at initialisation: mean 0, variance 1); ``"batch"`` and ``"frozen"`` both normalise with the
statistics of the batch itself (in one forward pass the two are the same thing). Dropout and other
train-only randomness are always off (the rest of the model is in eval mode).

Parameter-wise scores (synflow, snip, grad_norm) sum over the weights of every ``nn.Conv*`` and
``nn.Linear`` layer (subclasses included), as the zero-cost-proxies code does (mode "param").
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from nasntk.errors import NasntkError
from nasntk.proxies.registry import register
from nasntk.spectral import ScoreUndefined

if TYPE_CHECKING:
    from nasntk.proxies.context import Context

__all__ = [
    "RELU_LIKE",
    "activation_codes",
    "flops",
    "forward_mode",
    "grad_norm",
    "jacob_cov",
    "live_params",
    "live_tensors",
    "logits",
    "loss_gradients",
    "naswot",
    "params",
    "snip",
    "synflow",
]

_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


@contextlib.contextmanager
def forward_mode(model: nn.Module, bn: str) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode, BatchNorm layers in the mode ``bn`` asks; restore on exit.

    For ``bn in ("batch", "frozen")`` every ``_BatchNorm`` layer runs in training mode with
    ``track_running_stats=False`` so it normalises with batch statistics without updating its
    running buffers.
    """
    if bn not in ("eval", "batch", "frozen"):
        raise NasntkError(f"bn must be 'eval', 'batch' or 'frozen', got {bn!r}")
    modes = {m: m.training for m in model.modules()}
    tracked = {}
    try:
        model.eval()
        if bn != "eval":
            for m in model.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    tracked[m] = m.track_running_stats
                    m.track_running_stats = False
                    m.train()
        yield model
    finally:
        for m, t in tracked.items():
            m.track_running_stats = t
        for m, training in modes.items():
            m.training = training


def logits(out: object) -> torch.Tensor:
    """The logits tensor of a model output (a tensor, or the first item of a tuple/list), [N, O]."""
    if isinstance(out, (tuple, list)) and out:
        out = out[0]
    if not isinstance(out, torch.Tensor):
        raise NasntkError(f"model output must be a tensor, got {type(out).__name__}")
    return out.reshape(out.shape[0], -1)


def _weights(model: nn.Module) -> list[torch.Tensor]:
    ws = [
        m.weight
        for m in model.modules()
        if isinstance(m, _LAYERS) and isinstance(getattr(m, "weight", None), torch.Tensor)
    ]
    ws = [w for w in ws if w.requires_grad]
    if not ws:
        raise ScoreUndefined("model has no trainable Conv or Linear weights", math.nan)
    return ws


# ------------------------------------------------------------------------------------------------
# Size
# ------------------------------------------------------------------------------------------------
def params(model: nn.Module) -> float:
    """Number of trainable parameters, Σ numel(θ) over parameters with ``requires_grad``."""
    return float(sum(p.numel() for p in model.parameters() if p.requires_grad))


def _opened_gates(model: nn.Module, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Trainable tensors that are all zero and are not biases — scales initialised shut, such as
    the last BatchNorm γ of a residual branch (timm's ``zero_init_last``, Goyal et al. 2017) or a
    zero layer-scale — replaced by random values: a generic point of the parameters, where
    training takes them after one step. Zero biases are additive, not gates, and stay zero."""
    out = {}
    for name, p in model.named_parameters():
        if p.requires_grad and name.rsplit(".", 1)[-1] != "bias" and not p.detach().any():
            r = torch.randn(p.shape, generator=gen, dtype=torch.float64)
            out[name] = r.to(device=p.device, dtype=p.dtype).requires_grad_(True)
    return out


def live_tensors(
    model: nn.Module, x: torch.Tensor, *, samples: int = 4, seed: int = 0
) -> list[tuple[torch.Tensor, bool]]:
    """Each trainable parameter tensor θ_l with whether the output depends on it:
    ∂(Σ_n w_n f̄(x_n))/∂θ_l ≠ 0, where f̄ = Σ_j f_j/√O is the pNTK's summed logit, x_n the first
    ``samples`` inputs and w ~ N(0, I) (seeded), BatchNorm in eval mode, with every gate that is
    initialised shut opened (:func:`_opened_gates`; see :func:`live_params`).
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        return []
    xs = x[: max(1, samples)]
    gen = torch.Generator().manual_seed(seed)
    gates = _opened_gates(model, gen)  # substitutes, differentiated in place of the originals
    values = [gates.get(n, p) for n, p in named]
    with forward_mode(model, "eval"), torch.enable_grad():
        out = model(xs) if not gates else torch.func.functional_call(model, gates, (xs,))
        out = logits(out)
        w = torch.randn(out.shape[0], generator=gen, dtype=torch.float64)
        fbar = out.sum(1) / math.sqrt(out.shape[1])
        grads = torch.autograd.grad((w.to(fbar) * fbar).sum(), values, allow_unused=True)
    return [(p, g is not None and bool(g.any())) for (_, p), g in zip(named, grads, strict=True)]


def live_params(model: nn.Module, x: torch.Tensor, *, samples: int = 4, seed: int = 0) -> float:
    """Trainable parameters the output depends on: Σ numel(θ_l) over the parameter tensors θ_l
    that :func:`live_tensors` finds live. (Ours, not a published baseline.)

    A tensor counts when it contributes to the pNTK: its part of the trace, Σ_n ‖∂f̄(x_n)/∂θ_l‖²,
    is non-zero (the random weights w make an exact cancellation a probability-zero event), at
    a generic point of the gates: a scale initialised to zero (a residual branch's last BN γ)
    opens after the first step and the branch behind it trains, so it is evaluated opened.
    Parameters behind a constant multiplication by zero (NAS-Bench-201's ``none`` edge), fed
    only zeros, or cut off from the output have an identically zero gradient, at initialisation
    and all through gradient-descent training: they are not capacity. Equals :func:`params` for
    a model without such parameters.
    """
    return float(
        sum(p.numel() for p, live in live_tensors(model, x, samples=samples, seed=seed) if live)
    )


def flops(model: nn.Module, x: torch.Tensor) -> float:
    """FLOPs of one forward pass on one image ``x[:1]``, counted by ``torch.utils.flop_counter``.

    A multiply-add counts as 2 FLOPs (a Linear d_in→d_out layer: 2·d_in·d_out; a convolution:
    2·C_in/groups·k_h·k_w·C_out·H_out·W_out); element-wise ops (bias, activations, BN) are 0.
    Parameters are held as constants while counting (``requires_grad`` off, then restored): the
    counter's module tracker cannot follow a parameter passed between modules inside a tuple
    (timm's PiT).
    """
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        with forward_mode(model, "eval"), torch.no_grad(), counter:
            model(x[:1])
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
    return float(counter.get_total_flops())


# ------------------------------------------------------------------------------------------------
# NASWOT (Mellor et al., ICML 2021)
# ------------------------------------------------------------------------------------------------
#: Functions whose input sign is the binary unit code of naswot (ReLU and its smooth relatives).
RELU_LIKE = frozenset(
    {
        F.relu,
        F.relu_,
        torch.relu,
        torch.relu_,
        torch.Tensor.relu,
        torch.Tensor.relu_,
        F.relu6,
        F.leaky_relu,
        F.leaky_relu_,
        F.elu,
        F.elu_,
        F.selu,
        F.celu,
        F.gelu,
        F.silu,
        F.mish,
        F.hardswish,
    }
)


class ActivationCodes(TorchFunctionMode):
    """Calls ``record(c)`` with the binary code c = [pre-activation > 0], a bool [N, units]
    tensor, at every call of a ReLU-like function (:data:`RELU_LIKE`, and ``F.hardtanh`` with
    ``min_val=0``, i.e. ReLU6) on a tensor whose first dimension is the batch of N inputs (and,
    with ``dims``, whose number of dimensions is in ``dims``)."""

    def __init__(
        self, n: int, record: Callable[[torch.Tensor], None], dims: Optional[tuple[int, ...]] = None
    ) -> None:
        super().__init__()
        self.n, self.record, self.dims = n, record, dims

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        if args and isinstance(args[0], torch.Tensor):
            relu6 = func is F.hardtanh and (args[1:2] or [kwargs.get("min_val", -1.0)])[0] == 0.0
            if func in RELU_LIKE or relu6:
                a = args[0]
                if (
                    a.dim() > 0
                    and a.shape[0] == self.n
                    and (self.dims is None or a.dim() in self.dims)
                ):
                    self.record(a.detach().reshape(self.n, -1) > 0)
        return func(*args, **kwargs)


def activation_codes(
    model: nn.Module, x: torch.Tensor, bn: str = "batch"
) -> tuple[torch.Tensor, int]:
    """The Hamming kernel of the inputs' activation codes and the number of units N_A.

    K_H[i, j] = c_iᵀc_j + (1 − c_i)ᵀ(1 − c_j) = N_A − d_H(c_i, c_j) over every unit of every
    ReLU-like activation (see :func:`naswot` for the functions hooked); float64, [N, N]. Its
    diagonal is N_A, so K_H / N_A is the share of units on which two inputs agree.
    """
    n = x.shape[0]
    k = torch.zeros(n, n, dtype=torch.float64)
    units = 0

    def record(code: torch.Tensor) -> None:
        nonlocal k, units
        c = code.to(torch.float64)
        k += (c @ c.T + (1.0 - c) @ (1.0 - c).T).cpu()
        units += c.shape[1]

    with forward_mode(model, bn), torch.no_grad(), ActivationCodes(n, record):
        model(x)
    if units == 0:
        raise ScoreUndefined("no ReLU-like activation found in the model", math.nan)
    return k, units


def naswot(model: nn.Module, x: torch.Tensor, bn: str = "batch") -> float:
    """NASWOT score of Mellor et al., "Neural Architecture Search without Training" (ICML 2021).

    Each input x_i gets a binary code c_i ∈ {0,1}^{N_A}: for every unit of every ReLU-like
    activation, 1 if its pre-activation is > 0. With the Hamming distance d_H,
    K_H[i, j] = N_A − d_H(c_i, c_j) = c_iᵀc_j + (1 − c_i)ᵀ(1 − c_j), and the score is
    log |det K_H| (natural log, ``slogdet``); −inf when two inputs share a code (K_H singular).

    Hooked: calls of ``torch.relu``/``F.relu`` (and in-place / ``Tensor.relu`` forms, so every
    ``nn.ReLU`` module and functional use), ``F.relu6`` and ``F.hardtanh(min_val=0)`` (``nn.ReLU6``),
    ``F.leaky_relu``, ``F.elu``, ``F.selu``, ``F.celu``, ``F.gelu``, ``F.silu``, ``F.mish`` and
    ``F.hardswish`` — which covers ``torch.nn`` activation modules and timm's ``create_act_layer``
    defaults — through a ``TorchFunctionMode``; the code of a smooth activation is the sign of its
    input. An activation whose first dimension is not the batch is skipped.
    """
    k_h, _ = activation_codes(model, x, bn)
    sign, logdet = torch.linalg.slogdet(k_h)
    if sign.item() <= 0 or not math.isfinite(logdet.item()):
        raise ScoreUndefined("two inputs share an activation pattern (K_H singular)")
    return float(logdet)


# ------------------------------------------------------------------------------------------------
# Gradient-based (Abdelfattah et al., ICLR 2021, "Zero-Cost Proxies for Lightweight NAS")
# ------------------------------------------------------------------------------------------------
def loss_gradients(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, bn: str = "batch"
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Pairs (W, ∂L/∂W) over Conv/Linear weights W, L = mean cross-entropy of the batch."""
    weights = _weights(model)
    with forward_mode(model, bn), torch.enable_grad():
        out = logits(model(x))
        if out.shape[1] <= int(y.max()):
            raise ScoreUndefined(
                f"model has {out.shape[1]} outputs, labels go up to {int(y.max())}", math.nan
            )
        loss = F.cross_entropy(out, y)
        grads = torch.autograd.grad(loss, weights, allow_unused=True)
    return [(w.detach(), g) for w, g in zip(weights, grads, strict=True) if g is not None]


def snip(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    bn: str = "batch",
    *,
    gradients: Optional[list[tuple[torch.Tensor, torch.Tensor]]] = None,
) -> float:
    """SNIP (Lee et al., ICLR 2019) as a network score (Abdelfattah et al. 2021):
    Σ_layers Σ |θ ⊙ ∂L/∂θ| with L the cross-entropy of the batch, over Conv/Linear weights θ.
    ``gradients`` may pass :func:`loss_gradients` computed once for several scores.
    """
    pairs = loss_gradients(model, x, y, bn) if gradients is None else gradients
    return float(sum((w * g).abs().sum().item() for w, g in pairs))


def grad_norm(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    bn: str = "batch",
    *,
    gradients: Optional[list[tuple[torch.Tensor, torch.Tensor]]] = None,
) -> float:
    """grad_norm (Abdelfattah et al. 2021): Σ_layers ‖∂L/∂W‖_F over Conv/Linear weights W,
    L the cross-entropy of the batch (``gradients`` as in :func:`snip`).
    """
    pairs = loss_gradients(model, x, y, bn) if gradients is None else gradients
    return float(sum(g.norm().item() for _, g in pairs))


def jacob_cov(model: nn.Module, x: torch.Tensor, bn: str = "batch", k: float = 1e-5) -> float:
    """jacob_cov (Mellor et al. 2020, arXiv:2006.04647v1; as in Abdelfattah et al. 2021).

    J_i = ∂(Σ_j f_j(x))/∂x_i flattened (the gradient of the summed outputs w.r.t. each input);
    Σ_J = corrcoef(J) (N×N correlation of the rows) with eigenvalues σ_i;
    score = −Σ_i [log(σ_i + k) + 1/(σ_i + k)], k = 1e-5 (round-off negative σ are clipped to 0).
    """
    xg = x.detach().clone().requires_grad_(True)
    with forward_mode(model, bn), torch.enable_grad():
        out = logits(model(xg))
        (jac,) = torch.autograd.grad(out.sum(), xg)
    j = jac.reshape(jac.shape[0], -1).to("cpu", torch.float64).numpy()
    if not np.all(np.isfinite(j)):
        raise ScoreUndefined("input Jacobian is not finite")
    if np.any(j.std(axis=1) == 0):
        raise ScoreUndefined("an input Jacobian is constant: correlation undefined")
    corr = np.corrcoef(j)
    v = np.clip(np.linalg.eigvalsh(corr), 0.0, None)
    return float(-np.sum(np.log(v + k) + 1.0 / (v + k)))


def synflow(model: nn.Module, x: torch.Tensor) -> float:
    """SynFlow (Tanaka et al., NeurIPS 2020) as a network score (Abdelfattah et al. 2021).

    On a float64 copy of the network with every parameter replaced by its absolute value
    |θ| and BatchNorm made the identity (the zero-cost-proxies code scores synflow on a copy
    built without BN): R = 1ᵀ f(1), the summed output for a single all-ones input of the batch's
    shape; score = Σ_layers Σ θ ⊙ ∂R/∂θ over Conv/Linear weights (all terms are ≥ 0 for
    ReLU networks). Dropout is off. Overflow to inf is reported as +inf.
    """
    net = copy.deepcopy(model).to(torch.float64)
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
        for m in net.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                _make_identity_bn(m)
    net.eval()
    weights = _weights(net)
    ones = torch.ones((1, *x.shape[1:]), dtype=torch.float64, device=x.device)
    with torch.enable_grad():
        r = logits(net(ones)).sum()
        grads = torch.autograd.grad(r, weights, allow_unused=True)
    total = sum(
        float((w * g).sum().item()) for w, g in zip(weights, grads, strict=True) if g is not None
    )
    if not math.isfinite(total):
        raise ScoreUndefined("synflow overflowed float64", math.inf)
    return total


def _make_identity_bn(m: nn.modules.batchnorm._BatchNorm) -> None:
    """y = (x − 0)/√(1 + 0)·1 + 0 = x: running mean 0, variance 1, eps 0, affine (1, 0)."""
    m.track_running_stats = True
    m.running_mean = torch.zeros(m.num_features, dtype=torch.float64, device=_device(m))
    m.running_var = torch.ones(m.num_features, dtype=torch.float64, device=_device(m))
    m.eps = 0.0
    if m.affine:
        m.weight.fill_(1.0)
        m.bias.zero_()


def _device(m: nn.Module) -> torch.device:
    for t in list(m.parameters()) + list(m.buffers()):
        return t.device
    return torch.device("cpu")


# ------------------------------------------------------------------------------------------------
# Registered scores
# ------------------------------------------------------------------------------------------------
CLASSIC = "classic"


@register(
    "params",
    direction="maximize",
    needs=("params",),
    help="number of trainable parameters",
    family=CLASSIC,
)
def _params(ctx: Context) -> float:
    return params(ctx.model)


@register(
    "live_params",
    direction="maximize",
    needs=("grad",),
    help="trainable parameters the output depends on (non-zero gradient of the summed logit)",
    family="pntk",
    reference="nasntk (the parameters the pNTK sees)",
)
def _live_params(ctx: Context) -> float:
    return ctx.live_params()


@register(
    "flops",
    direction="maximize",
    needs=("forward",),
    help="FLOPs of one forward pass on one image (torch.utils.flop_counter)",
    family=CLASSIC,
)
def _flops(ctx: Context) -> float:
    return ctx.cached("flops", lambda: flops(ctx.model, ctx.x))


@register(
    "naswot",
    direction="maximize",
    needs=("forward",),
    help="log|det K_H| of the ReLU-pattern Hamming kernel",
    family=CLASSIC,
    reference="Mellor et al., ICML 2021",
)
def _naswot(ctx: Context) -> float:
    return naswot(ctx.model, ctx.x, ctx.bn)


@register(
    "synflow",
    direction="maximize",
    needs=("grad",),
    help="Σ θ⊙∂R/∂θ, R = summed output of |θ| on an all-ones input, no BN",
    family=CLASSIC,
    reference="Tanaka et al., NeurIPS 2020",
)
def _synflow(ctx: Context) -> float:
    return synflow(ctx.model, ctx.x)


@register(
    "snip",
    direction="maximize",
    needs=("grad", "labels"),
    help="Σ |θ ⊙ ∂L/∂θ|, L = cross-entropy",
    family=CLASSIC,
    reference="Lee et al., ICLR 2019 (as Abdelfattah et al., ICLR 2021)",
)
def _snip(ctx: Context) -> float:
    return snip(ctx.model, ctx.x, ctx.y, ctx.bn, gradients=ctx.loss_gradients())


@register(
    "grad_norm",
    direction="maximize",
    needs=("grad", "labels"),
    help="Σ_layers ‖∂L/∂W‖_F, L = cross-entropy",
    family=CLASSIC,
    reference="Abdelfattah et al., ICLR 2021",
)
def _grad_norm(ctx: Context) -> float:
    return grad_norm(ctx.model, ctx.x, ctx.y, ctx.bn, gradients=ctx.loss_gradients())


@register(
    "jacob_cov",
    direction="maximize",
    needs=("grad",),
    help="−Σ log(σ+k) + 1/(σ+k) of the input-Jacobian correlations",
    family=CLASSIC,
    reference="Mellor et al. 2020 (arXiv:2006.04647v1)",
)
def _jacob_cov(ctx: Context) -> float:
    return jacob_cov(ctx.model, ctx.x, ctx.bn)
