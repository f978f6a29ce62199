"""Empirical neural tangent kernels of any ``torch.nn.Module``: pNTK, eNTK and reductions.

    from nasntk.kernels import pntk, entk, kernel
    K = pntk(model, x)                  # [N, N]
    fn = pntk_fn(model); fn(x); fn(y)   # set up once, then one kernel per batch
    E = entk(model, x1, x2)             # [N1·O, N2·O], row n·O + j
    T = kernel(model, x, kind="trace")  # one of pntk | entk | first | trace | proj
    compare(model, x)                   # timings, condition numbers, ‖eNTK − K⊗I‖/‖eNTK‖

Modules: ``api`` (the functions), ``prepare`` (model copy, BatchNorm modes, validation),
``projections`` (how each kind reduces the logits), ``gram`` (blocked accumulation within a
memory budget), ``vmap`` (generic torch.func features), ``structured`` (per-layer fast path:
``trace`` finds the layer calls, ``persample`` has their per-sample gradient maths), ``compare``
(how well each reduction ⊗ I_O approximates the eNTK).
"""

from __future__ import annotations

from .api import (
    BUDGET_BOUNDS,
    IMPLEMENTATIONS,
    KernelFn,
    default_budget,
    entk,
    kernel,
    kernel_fn,
    pntk,
    pntk_fn,
)
from .compare import compare, condition_number, kron_error
from .prepare import BN_MODES
from .projections import KINDS

__all__ = [
    "BN_MODES",
    "BUDGET_BOUNDS",
    "IMPLEMENTATIONS",
    "KINDS",
    "KernelFn",
    "compare",
    "condition_number",
    "default_budget",
    "entk",
    "kernel",
    "kernel_fn",
    "kron_error",
    "pntk",
    "pntk_fn",
]
