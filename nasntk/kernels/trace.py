"""Find, during one forward, every call that uses a differentiated parameter.

:class:`Tracer` is a ``TorchFunctionMode``. A call of ``F.linear``, ``F.conv2d``, eval-mode
``F.batch_norm``, ``F.layer_norm`` or ``F.group_norm`` whose weight / bias are differentiated
parameters (and whose other arguments are not) is a *site*: the tracer keeps its input, and hooks
its output so that the backward hands the output gradient to ``on_grad(index, grad)`` -- the
gradient of the output as the call produced it, even if a later in-place op modifies it.

A parameter q (or a reshaped view of it) broadcast against a batched tensor o is a site too:
``o + q`` (``add``: position embeddings), ``o * q`` (``mul``: layer-scale gammas) and
``q.expand(n, ...)`` (``expand``: class tokens), whose per-sample gradient is the output gradient
(times o for ``mul``) summed over the broadcast dimensions. Any other use of a differentiated
parameter (a standardised weight, a parameter inside an unsupported op, ...) marks that parameter
*unsupported*: it must go through the generic path.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.overrides import TorchFunctionMode

# positional parameter names of each supported function
_SIGNATURES: dict[Callable, tuple[str, tuple[str, ...], dict]] = {
    F.linear: ("linear", ("input", "weight", "bias"), {"bias": None}),
    F.conv2d: (
        "conv2d",
        ("input", "weight", "bias", "stride", "padding", "dilation", "groups"),
        {"bias": None, "stride": 1, "padding": 0, "dilation": 1, "groups": 1},
    ),
    F.batch_norm: (
        "batch_norm",
        ("input", "running_mean", "running_var", "weight", "bias", "training", "momentum", "eps"),
        {"weight": None, "bias": None, "training": False, "momentum": 0.1, "eps": 1e-5},
    ),
    F.layer_norm: (
        "layer_norm",
        ("input", "normalized_shape", "weight", "bias", "eps"),
        {"weight": None, "bias": None, "eps": 1e-5},
    ),
    F.group_norm: (
        "group_norm",
        ("input", "num_groups", "weight", "bias", "eps"),
        {"weight": None, "bias": None, "eps": 1e-5},
    ),
}
# reading metadata of a parameter is not a use of its value
_HARMLESS = {
    "__get__", "size", "dim", "numel", "nelement", "ndimension", "__len__", "is_floating_point",
    "is_complex", "element_size", "stride", "is_contiguous", "get_device", "data_ptr", "__format__",
    "__repr__", "__hash__", "__eq__", "__ne__", "requires_grad_",
}  # fmt: skip
_VIEWS = {"reshape", "view", "unsqueeze", "flatten", "squeeze", "__getitem__"}
_ADD = {"add", "__add__", "__radd__", "__iadd__", "add_"}
_MUL = {"mul", "__mul__", "__rmul__", "__imul__", "mul_"}


@dataclass
class Site:
    """One supported call: its kind, which parameters it uses, its hyper-parameters and shapes."""

    kind: str
    weight: str | None  # name of the differentiated weight, if it is one
    bias: str | None
    hyper: dict
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    weight_shape: tuple[int, ...] | None = None
    bias_shape: tuple[int, ...] | None = None
    input: Tensor | None = field(default=None, repr=False)


def _bind(names: tuple[str, ...], defaults: dict, args: tuple, kwargs: dict) -> dict | None:
    if len(args) > len(names) or any(k not in names for k in kwargs):
        return None
    bound = dict(defaults)
    bound.update(zip(names, args, strict=False))
    bound.update(kwargs)
    return bound if all(n in bound for n in names) else None


def _tensors(obj):
    if isinstance(obj, Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            yield from _tensors(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from _tensors(o)


def _hook(tracer: weakref.ref, index: int) -> Callable[[Tensor], None]:
    """A gradient hook that reaches its tracer through a weak reference (no C++-side cycle)."""

    def hook(grad: Tensor) -> None:
        t = tracer()
        if t is not None and t.on_grad is not None:
            t.on_grad(index, grad)

    return hook


class Tracer(TorchFunctionMode):
    """Record sites and unsupported parameter uses during a forward (see module docstring)."""

    def __init__(self, tracked: dict[int, str], on_grad: Callable[[int, Tensor], None] | None):
        super().__init__()
        self.tracked = tracked  # id(parameter) -> name
        self.on_grad = on_grad
        self.sites: list[Site] = []
        self.unsupported: set[str] = set()
        self.views: dict[int, str] = {}  # id(view of a parameter) -> name
        self.outputs: list[tuple[Tensor, int]] = []  # site outputs and their version then
        self._alive: list[Tensor] = []  # keeps the views alive so their ids stay unique

    def _name(self, t: object) -> str | None:
        if not isinstance(t, Tensor):
            return None
        return self.tracked.get(id(t)) or self.views.get(id(t))

    def _view(self, name: str, args: tuple, kwargs: dict) -> bool:
        """Is this call a pure view of parameter ``name`` (recorded after the call)?"""
        if name not in _VIEWS or kwargs:
            return False
        if not (args and self._name(args[0])):
            return False
        return not any(isinstance(t, Tensor) for t in _tensors(args[1:]))

    def _broadcast(self, name: str, args: tuple, kwargs: dict) -> Site | None:
        """A parameter broadcast against a batched tensor (add / mul / expand), or None."""
        if kwargs:
            return None
        if name == "expand" and args and self._name(args[0]):
            q = args[0]
            if any(isinstance(t, Tensor) for t in _tensors(args[1:])) or q.ndim == 0:
                return None
            if q.shape[0] != 1:
                return None
            return Site("expand", self._name(q), None, {"q_shape": tuple(q.shape)}, (), ())
        kind = "add" if name in _ADD else "mul" if name in _MUL else None
        if kind is None or len(args) != 2:
            return None
        a, b = args
        na, nb = self._name(a), self._name(b)
        if (na is None) == (nb is None) or not (isinstance(a, Tensor) and isinstance(b, Tensor)):
            return None
        inplace = name.endswith("_") or name.startswith("__i")
        if inplace and na is not None:
            return None  # the parameter itself would be modified
        q, o = (a, b) if na is not None else (b, a)
        if q.ndim > o.ndim or (q.ndim == o.ndim and q.shape[0] != 1):
            return None
        other = o.detach().clone() if kind == "mul" and inplace else o
        return Site(kind, na or nb, None, {"q_shape": tuple(q.shape)}, (), (), input=other)

    def _site(self, func: Callable, args: tuple, kwargs: dict) -> Site | None:
        kind, names, defaults = _SIGNATURES[func]
        b = _bind(names, defaults, args, kwargs)
        if b is None or not isinstance(b["input"], Tensor):
            return None
        role = {}
        for slot in ("weight", "bias"):
            t = b[slot]
            role[slot] = self.tracked.get(id(t)) if isinstance(t, Tensor) else None
            if isinstance(t, Tensor) and id(t) in self.views:
                return None  # a reshaped parameter used as a weight: not this layer's form
        if role["weight"] is None and role["bias"] is None:
            return None
        others = [v for k, v in b.items() if k not in ("weight", "bias")]
        if any(self._name(t) for t in _tensors(others)):
            return None
        if kind == "batch_norm" and (b["training"] or b["running_mean"] is None):
            return None
        w, bias = b["weight"], b["bias"]
        hyper = {k: v for k, v in b.items() if k not in ("input", "weight", "bias")}
        return Site(
            kind,
            role["weight"],
            role["bias"],
            hyper,
            tuple(b["input"].shape),
            (),
            tuple(w.shape) if isinstance(w, Tensor) else None,
            tuple(bias.shape) if isinstance(bias, Tensor) else None,
            b["input"],
        )

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        fname = getattr(func, "__name__", "")
        if func in _SIGNATURES:
            site = self._site(func, args, kwargs)
        else:
            site = self._broadcast(fname, args, kwargs)
        view = site is None and self._view(fname, args, kwargs)
        if site is None and not view and fname not in _HARMLESS:
            for t in _tensors((args, kwargs)):
                name = self._name(t)
                if name is not None:
                    self.unsupported.add(name)
        out = func(*args, **kwargs)
        if view:
            if isinstance(out, Tensor) and out.numel() == args[0].numel():
                self.views[id(out)] = self._name(args[0])
                self._alive.append(out)
            else:
                self.unsupported.add(self._name(args[0]))
        if site is not None:
            if isinstance(out, Tensor):
                site.out_shape = tuple(out.shape)
                if site.kind in ("add", "mul", "expand"):
                    site.in_shape = site.out_shape
                index = len(self.sites)
                self.sites.append(site)
                if self.on_grad is not None and out.requires_grad:
                    out.register_hook(_hook(weakref.ref(self), index))
                    self.outputs.append((out, out._version))
            else:
                self.unsupported.update(n for n in (site.weight, site.bias) if n)
        return out

    def close(self) -> None:
        """Drop every tensor the tracer holds.

        Each site output's gradient hook refers back to the tracer; the hook lives on the C++
        side, where Python's cycle collector cannot see it, so a tracer that keeps its tensors
        would keep the whole forward graph alive (a leak of one forward per kernel call).
        """
        self.on_grad = None
        self.sites.clear()
        self.outputs.clear()
        self.views.clear()
        self._alive.clear()

    def grad_inputs(self, x: Tensor) -> list[Tensor]:
        """What to differentiate w.r.t. so that every site's hook fires: the input and the site
        outputs not modified in place since (a class token's branch does not reach the input)."""
        return [x] + [t for t, v in self.outputs if t._version == v and t is not x]


def run(model: torch.nn.Module, x: Tensor, tracked: dict[int, str], on_grad=None):
    """Forward ``x`` through ``model`` under a :class:`Tracer`; return (output, tracer)."""
    tracer = Tracer(tracked, on_grad)
    with tracer:
        out = model(x)
    return out, tracer
