"""Turn a caller's model and inputs into a private, ready-to-differentiate setup.

Nothing here touches the caller's model: it is copied (:func:`private_copy`: new module objects
whose parameters share the caller's storage, so a call's fixed cost does not grow with the
model's size), the copy is moved to the compute device, put in the mode the BatchNorm option asks
for, and only the chosen parameters of the copy require gradients.

BatchNorm modes (``bn=``):

* ``"eval"`` -- running statistics (``model.eval()``); samples are independent.
* ``"frozen"`` -- the scored batch X = concat(x1, x2) is normalised with its own mean and biased
  variance, computed once and then held constant, so samples are independent again. Later BN
  layers see inputs normalised by the earlier layers' batch statistics, exactly as in the
  train-mode forward. The statistics are left *pending* by :func:`prepare`: the first forward of
  the whole batch X records them on the way (:meth:`Setup.recording_statistics`, the structured
  path's single chunk), or :meth:`Setup.freeze` runs one train-mode forward without gradients
  for them (everything else); either way before any kernel value is computed.
* ``"batch"`` -- BN layers run in train mode on the whole batch X and are differentiated through
  their statistics (what training sees); the kernel is J Jᵀ for the Jacobian J of the vector of
  (projected) outputs of X. Dropout and other train-only layers stay in eval mode.

In ``"eval"`` mode a BN layer without running statistics (``track_running_stats=False``) has none
to evaluate with; it is treated as in ``"frozen"`` mode.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from nasntk.errors import NasntkError

BN_MODES = ("eval", "frozen", "batch")
PARAM_SETS = ("all", "weights")


@dataclass
class Setup:
    """A private copy of the model and everything the implementations need.

    ``x`` is the scored batch concat(x1, x2) (or x1 alone when ``symmetric``); rows ``[0, n1)``
    are x1, rows ``[n1, n1 + n2)`` are x2.
    """

    model: nn.Module
    params: dict[str, Tensor]  # the differentiated parameters (of the copy), in order
    constants: dict[str, Tensor]  # every other parameter and buffer of the copy
    x: Tensor
    n1: int
    n2: int
    symmetric: bool
    num_outputs: int
    bn: str
    dtype: torch.dtype
    device: torch.device
    extra: dict = field(default_factory=dict)
    #: BN layers still waiting for the batch statistics of ``x`` (``bn="frozen"``)
    pending: list[_BatchNorm] = field(default_factory=list)

    @property
    def num_params(self) -> int:
        return sum(p.numel() for p in self.params.values())

    def freeze(self) -> None:
        """Give the pending BN layers the statistics of the whole batch ``x`` (one forward)."""
        if self.pending:
            layers, self.pending = self.pending, []
            freeze_batch_statistics(self.model, self.x, layers)

    @contextlib.contextmanager
    def recording_statistics(self) -> Iterator[None]:
        """Within: a forward of the whole batch ``x`` gives each pending BN layer, just before it
        runs (in eval mode), the batch mean and biased variance of its input, taken without
        gradient -- the same statistics and outputs as :meth:`freeze` followed by the forward, in
        one pass. A layer called more than once is frozen the usual way afterwards (the forward
        must then be repeated: the generator raises :class:`StatisticsRecheck`)."""
        with _recording(self.pending) as calls:
            yield
        if any(c > 1 for c in calls.values()):
            self.freeze()
            raise StatisticsRecheck("a BatchNorm layer ran more than once in the forward")
        self.pending = []


class StatisticsRecheck(Exception):
    """Statistics recorded during a forward were not those of :meth:`Setup.freeze` (now applied):
    repeat the forward."""


@torch.no_grad()
def _set_batch_statistics(m: _BatchNorm, x: Tensor) -> None:
    """running_mean, running_var ← mean and biased variance of ``x`` over all but dim 1.

    BatchNorm's own reduction (momentum 1), ~3× faster on CPU than ``Tensor.var`` over several
    dimensions; it keeps the unbiased variance s², so it is rescaled by (k − 1)/k.
    """
    F.batch_norm(x.detach(), m.running_mean, m.running_var, training=True, momentum=1.0)
    k = x.numel() // x.shape[1]
    m.running_var.mul_((k - 1) / k)


@contextlib.contextmanager
def _recording(layers: list[_BatchNorm]) -> Iterator[dict[int, int]]:
    """Within: each of ``layers``, just before it runs, takes its input's batch statistics
    (:func:`_set_batch_statistics`); yields the number of calls per layer (by ``id``)."""
    calls: dict[int, int] = {}

    def record(module: _BatchNorm, inputs: tuple) -> None:
        calls[id(module)] = calls.get(id(module), 0) + 1
        _set_batch_statistics(module, inputs[0])

    handles = [m.register_forward_pre_hook(record) for m in layers]
    try:
        yield calls
    finally:
        for h in handles:
            h.remove()


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"`` (or None) means CUDA when available, else CPU."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise NasntkError(f"unknown device {device!r} (use cpu, cuda or auto)") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise NasntkError("device 'cuda' requested but CUDA is not available")
    return dev


def _check_inputs(x1: Tensor, x2: Tensor | None) -> None:
    if not isinstance(x1, Tensor) or x1.ndim < 1 or x1.shape[0] < 1:
        raise NasntkError("x1 must be a non-empty tensor [N, ...] of samples")
    if x2 is not None:
        if not isinstance(x2, Tensor) or x2.ndim < 1 or x2.shape[0] < 1:
            raise NasntkError("x2 must be a non-empty tensor [N, ...] of samples")
        if x1.shape[1:] != x2.shape[1:]:
            raise NasntkError(
                f"x1 and x2 must have the same feature shape; got {tuple(x1.shape[1:])} "
                f"and {tuple(x2.shape[1:])}"
            )


def _select(model: nn.Module, params: str) -> list[str]:
    if params not in PARAM_SETS:
        raise NasntkError(f"params must be one of {PARAM_SETS}; got {params!r}")
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    if params == "weights":
        names = [n for n, p in model.named_parameters() if p.requires_grad and p.ndim >= 2]
    if not names:
        what = "trainable weight (ndim >= 2)" if params == "weights" else "trainable"
        raise NasntkError(f"the model has no {what} parameters to compute a kernel over")
    return names


def batchnorms(model: nn.Module) -> list[_BatchNorm]:
    """Every BatchNorm layer of ``model`` (torch's and subclasses such as timm's BatchNormAct2d)."""
    return [m for m in model.modules() if isinstance(m, _BatchNorm)]


@torch.no_grad()
def freeze_batch_statistics(model: nn.Module, x: Tensor, layers: list[_BatchNorm]) -> Tensor:
    """Replace the running statistics of ``layers`` by those of batch ``x``; return the output.

    One forward without gradient in which each of ``layers`` (eval mode, with running
    statistics: see :func:`prepare`) first takes its input's batch statistics
    (:func:`_recording`), so a later eval forward of any single sample is the train-mode
    forward of the batch.
    """
    with _recording(layers):
        return model(x)


def _structural_copy(module: nn.Module, memo: dict[int, nn.Module]) -> nn.Module | None:
    """A new module object for ``module`` and (recursively) its children, sharing parameter and
    buffer storage; ``None`` when ``module`` keeps a module or tensor outside its registries
    (``_modules`` / ``_parameters`` / ``_buffers``), which only a deep copy remaps correctly."""
    if id(module) in memo:
        return memo[id(module)]
    new = module.__class__.__new__(module.__class__)
    state = dict(module.__dict__)
    for key, value in state.items():
        if key in ("_modules", "_parameters", "_buffers"):
            continue
        if isinstance(value, (nn.Module, Tensor)):
            return None
        if isinstance(value, (list, tuple)):
            if any(isinstance(v, (nn.Module, Tensor)) for v in value):
                return None
            if isinstance(value, list):  # a container the copy may change: its own
                state[key] = list(value)
        if isinstance(value, dict):
            if any(isinstance(v, (nn.Module, Tensor)) for v in value.values()):
                return None
            state[key] = type(value)(value)  # hook registries and the like: the copy's own
    memo[id(module)] = new
    children = {}
    for name, child in module._modules.items():
        if child is None:
            children[name] = None
            continue
        copied = _structural_copy(child, memo)
        if copied is None:
            return None
        children[name] = copied
    state["_modules"] = type(module._modules)(children)
    state["_parameters"] = type(module._parameters)(
        (k, None if p is None else nn.Parameter(p.detach(), requires_grad=p.requires_grad))
        for k, p in module._parameters.items()
    )
    state["_buffers"] = type(module._buffers)(module._buffers)
    new.__dict__.update(state)
    return new


def private_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` the kernel may put in any mode and hook: new module objects (their
    flags, hook registries and parameter objects are their own) whose parameters and buffers
    share the caller's storage, and BatchNorm running statistics of their own (the frozen mode
    overwrites them). Falls back to ``copy.deepcopy`` for a model that keeps modules or tensors
    outside the registries. The kernel never writes a parameter."""
    try:
        copied = _structural_copy(model, {})
    except Exception:  # an exotic module (lazy parameters, custom __new__): copy it whole
        copied = None
    if copied is None:
        return copy.deepcopy(model)
    for m in batchnorms(copied):
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            b = m._buffers.get(name)
            if b is not None:
                m._buffers[name] = b.clone()
    return copied


def _check_output(out: object, n: int) -> int:
    if not isinstance(out, Tensor):
        raise NasntkError(
            f"the model must return a tensor [N, O]; it returned {type(out).__name__}"
        )
    if out.ndim != 2 or out.shape[0] != n:
        raise NasntkError(f"the model output must be [N, O] = [{n}, O]; got {list(out.shape)}")
    return int(out.shape[1])


@dataclass
class PreparedModel:
    """The private copy of a model in the mode a kernel needs, reusable for many batches.

    ``layers``: the BatchNorm layers that take each batch's own statistics (all of them for
    ``bn="frozen"``; in eval mode those without running statistics). ``num_outputs`` is found
    on the first batch of each input shape.
    """

    net: nn.Module
    bn: str
    dtype: torch.dtype
    device: torch.device
    float_dtype: torch.dtype
    layers: list[_BatchNorm]
    params: dict[str, Tensor]
    constants: dict[str, Tensor]
    outputs: dict[tuple, int] = field(default_factory=dict)


def prepare_model(
    model: nn.Module,
    *,
    params: str = "all",
    bn: str = "eval",
    dtype: torch.dtype = torch.float64,
    device: str | torch.device | None = "auto",
    like: Tensor | None = None,
) -> PreparedModel:
    """Validate the options, copy the model (:func:`private_copy`), move it to the device and
    set its BatchNorm mode and differentiated parameters (see the module docstring). ``like``:
    a batch whose dtype stands in for a model without floating parameters."""
    if not isinstance(model, nn.Module):
        raise NasntkError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    if bn not in BN_MODES:
        raise NasntkError(f"bn must be one of {BN_MODES}; got {bn!r}")
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise NasntkError(f"dtype must be a floating torch dtype; got {dtype!r}")
    names = _select(model, params)
    dev = resolve_device(device)

    net = private_copy(model).to(dev)
    net.eval()
    keep = set(names)
    for name, p in net.named_parameters():
        p.requires_grad_(name in keep)
    default = like.dtype if like is not None else torch.get_default_dtype()
    float_dtype = next((p.dtype for p in net.parameters() if p.is_floating_point()), default)

    layers = batchnorms(net)
    if bn == "eval":
        layers = [m for m in layers if m.running_mean is None]
    if bn == "frozen" or layers and bn == "eval":
        for m in layers:  # placeholders until the batch statistics are set (Setup.pending)
            if m.running_mean is None:
                c = m.num_features
                m.register_buffer("running_mean", torch.zeros(c, device=dev, dtype=float_dtype))
                m.register_buffer("running_var", torch.ones(c, device=dev, dtype=float_dtype))
                m.track_running_stats = True
            m.eval()
    else:
        layers = []
    if bn == "batch":  # batch statistics, never updating (copied) running statistics
        for m in batchnorms(net):
            m.train()
            m.track_running_stats = False

    named_params = dict(net.named_parameters())
    chosen = {k: named_params[k] for k in names}
    constants = {k: v for k, v in named_params.items() if k not in keep}
    constants.update(dict(net.named_buffers()))
    return PreparedModel(net, bn, dtype, dev, float_dtype, layers, chosen, constants)


def with_batch(prep: PreparedModel, x1: Tensor, x2: Tensor | None) -> Setup:
    """The :class:`Setup` of a prepared model on the batch concat(x1, x2) (or x1 alone)."""
    _check_inputs(x1, x2)
    symmetric = x2 is None
    xs = x1 if symmetric else torch.cat([x1, x2.to(x1.device)])
    xs = xs.to(prep.device)
    if xs.is_floating_point():
        xs = xs.to(prep.float_dtype)
    n1, n2 = x1.shape[0], (x1.shape[0] if symmetric else x2.shape[0])
    shape = (tuple(xs.shape[1:]), xs.dtype)
    if shape not in prep.outputs:
        probe = xs[: min(2, xs.shape[0])]
        with torch.no_grad():  # its shape only (BN layers on placeholder or earlier statistics)
            out = prep.net(probe)
        prep.outputs[shape] = _check_output(out, probe.shape[0])
    setup = Setup(
        prep.net, prep.params, prep.constants, xs, n1, n2, symmetric, prep.outputs[shape],
        prep.bn, prep.dtype, prep.device,
    )  # fmt: skip
    setup.pending = list(prep.layers)
    return setup


def prepare(
    model: nn.Module,
    x1: Tensor,
    x2: Tensor | None,
    *,
    params: str = "all",
    bn: str = "eval",
    dtype: torch.dtype = torch.float64,
    device: str | torch.device | None = "auto",
) -> Setup:
    """Validate everything, copy the model and return a :class:`Setup` (see module docstring)."""
    _check_inputs(x1, x2)
    prep = prepare_model(model, params=params, bn=bn, dtype=dtype, device=device, like=x1)
    return with_batch(prep, x1, x2)
