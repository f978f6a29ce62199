"""The generic implementation: torch.func over any ``nn.Module``.

Independent samples (``bn="eval"`` / ``"frozen"``): the projected per-sample Jacobian

    F[n, r, :] = ∂(p_r·f(x_n))/∂θ_g,

is ``vmap`` (over a chunk of samples) of ``jacrev`` of x ↦ P f(x) (one sample, batch of one)
through ``functional_call``; only the group θ_g is differentiated, the rest are constants.

Coupled samples (``bn="batch"``): the whole batch X is one input; with y(θ) = f(X; θ) P ᵀ ∈ R^{N×R}
(batch statistics inside), the rows of the Jacobian ∂y[n, r]/∂θ_g are vector-Jacobian products
of one forward with one-hot cotangents, ``vmap``-ed over chunks of (n, r).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from torch import Tensor
from torch.func import functional_call, jacrev, vjp, vmap

from .prepare import Setup

# vmap over ops without a batching rule (e.g. CPU flash attention) is correct, only slower
_NO_RULE = "There is a performance drop because we have not yet"


def _split_params(setup: Setup, names: Sequence[str]) -> tuple[dict, dict]:
    chosen = set(names)
    group = {k: v.detach() for k, v in setup.params.items() if k in chosen}
    rest = {k: v.detach() for k, v in setup.params.items() if k not in chosen}
    rest.update(setup.constants)
    return group, rest


def _flatten_into(out: Tensor, rows: slice, parts: dict[str, Tensor], names: Sequence[str]) -> None:
    col = 0
    for k in names:
        v = parts[k]
        width = v[0, 0].numel()
        out[rows, :, col : col + width] = v.reshape(v.shape[0], v.shape[1], width)
        col += width


class PerSampleFeatures:
    """Projected per-sample Jacobians for independent samples (``bn`` in eval/frozen)."""

    def __init__(self, setup: Setup, proj: Tensor, chunk_size: int) -> None:
        self.setup = setup
        self.proj = proj.to(dtype=setup.x.dtype if setup.x.is_floating_point() else torch.float32)
        self.chunk = max(1, int(chunk_size))

    def __call__(self, names: Sequence[str], rows: range) -> Tensor:
        s = self.setup
        group, rest = _split_params(s, names)
        model, proj = s.model, self.proj

        def f(theta: dict, x: Tensor) -> Tensor:
            return functional_call(model, (theta, rest), (x.unsqueeze(0),))[0] @ proj.T

        jac = vmap(jacrev(f), in_dims=(None, 0))
        width = sum(group[k].numel() for k in names)
        out = torch.empty(len(rows), proj.shape[0], width, dtype=proj.dtype, device=s.device)
        for start in range(0, len(rows), self.chunk):
            sub = rows[start : start + self.chunk]
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=_NO_RULE)
                parts = jac(group, s.x[sub.start : sub.stop])
            _flatten_into(out, slice(start, start + len(sub)), parts, names)
            del parts
        return out


class BatchFeatures:
    """Rows of the Jacobian of the whole-batch output (``bn="batch"``)."""

    def __init__(self, setup: Setup, proj: Tensor, chunk_size: int) -> None:
        self.setup = setup
        self.proj = proj.to(dtype=setup.x.dtype if setup.x.is_floating_point() else torch.float32)
        self.chunk = max(1, int(chunk_size))
        self._cached: tuple[tuple[str, ...], object] | None = None

    def _vjp_fn(self, names: Sequence[str]):
        key = tuple(names)
        if self._cached is None or self._cached[0] != key:
            self._cached = None
            s = self.setup
            group, rest = _split_params(s, names)
            model, proj, x = s.model, self.proj, s.x

            def f(theta: dict) -> Tensor:
                return functional_call(model, (theta, rest), (x,)) @ proj.T

            _, fn = vjp(f, group)
            self._cached = (key, fn)
        return self._cached[1]

    def __call__(self, names: Sequence[str], rows: range) -> Tensor:
        s = self.setup
        fn = self._vjp_fn(names)
        n, r = s.x.shape[0], self.proj.shape[0]
        params = dict(s.params)
        width = sum(params[k].numel() for k in names)
        out = torch.empty(len(rows), r, width, dtype=self.proj.dtype, device=s.device)
        for start in range(0, len(rows), self.chunk):
            sub = rows[start : start + self.chunk]
            cot = torch.zeros(len(sub) * r, n * r, dtype=self.proj.dtype, device=s.device)
            idx = torch.arange(len(sub) * r, device=s.device)
            cot[idx, sub.start * r + idx] = 1.0
            cot = cot.reshape(len(sub) * r, n, r)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=_NO_RULE)
                (parts,) = vmap(fn)(cot)
            parts = {k: v.reshape(len(sub), r, -1) for k, v in parts.items()}
            _flatten_into(out, slice(start, start + len(sub)), parts, names)
            del parts
        return out
