"""The public kernel functions: ``kernel`` (any kind), ``pntk`` and ``entk``.

For a model f: R^D → R^O with parameters θ, J(x) = ∂f(x)/∂θ ∈ R^{O×P}:

    eNTK(x, x′)  = J(x) J(x′)ᵀ ∈ R^{O×O}        (``entk``: all blocks, [N1·O, N2·O], row n·O + j)
    pNTK(x, x′)  = ∇θ f̄(x) · ∇θ f̄(x′),  f̄ = Σⱼ fⱼ/√O  = (1/O) Σⱼₖ eNTK_jk(x, x′)     (``pntk``)
    first        = eNTK_11(x, x′)
    trace        = (1/O) Σⱼ eNTK_jj(x, x′)
    proj         = (1/k) Σ_r p_rᵀ eNTK(x, x′) p_r, p_r = unit Gaussian directions (seeded)

(see :mod:`nasntk.kernels.projections`). With ``bn="batch"`` J is the Jacobian of the whole
batch's outputs (see :mod:`nasntk.kernels.prepare` for the three BatchNorm modes).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from nasntk.errors import NasntkError

from . import gram
from .prepare import PreparedModel, Setup, prepare_model, with_batch
from .projections import KINDS, projection
from .structured import (
    Probed,
    Recheck,
    StructuredFeatures,
    Unsupported,
    plan_probe,
    trace_probe,
    working_bytes,
)
from .vmap import BatchFeatures, PerSampleFeatures

IMPLEMENTATIONS = ("auto", "vmap", "structured")
#: Bounds of the working-memory budget (bytes) when ``max_memory`` is not given: a quarter of
#: the memory free on the kernel's device, within [1 GiB, 8 GiB]. A larger budget changes no
#: number, only how often the forward+backward is repeated (once per parameter group whose
#: stored features fit; experiments/README.md §4: ViT at N = 256, 3 passes at 2 GiB).
BUDGET_BOUNDS = (1 << 30, 8 << 30)


def default_budget(device: torch.device) -> int:
    """A quarter of the memory free on ``device``, clipped to :data:`BUDGET_BOUNDS`."""
    low, high = BUDGET_BOUNDS
    try:
        if device.type == "cuda":
            free = torch.cuda.mem_get_info(device)[0]
        else:
            import psutil

            free = psutil.virtual_memory().available
    except Exception:  # an unknown device or no reading: the floor
        return low
    return int(min(high, max(low, free // 4)))


def _budget(max_memory: int | float | None) -> int | None:
    """The user's budget, checked; None: :func:`default_budget` of the device, per call."""
    if max_memory is None:
        return None
    if not max_memory > 0:
        raise NasntkError(f"max_memory must be a positive number of bytes; got {max_memory!r}")
    return int(max_memory)


def _chunk(setup: Setup, chunk_size: int | None, num_proj: int, budget: int, rows: int) -> int:
    if chunk_size is not None:
        if not (isinstance(chunk_size, int) and chunk_size >= 1):
            raise NasntkError(f"chunk_size must be a positive integer; got {chunk_size!r}")
        return chunk_size
    itemsize = max(4, setup.x.element_size() if setup.x.is_floating_point() else 4)
    per_sample = 4 * num_proj * setup.num_params * itemsize
    return int(max(1, min(rows, 64, budget // max(1, per_sample))))


def _vmap_kernel(
    setup: Setup,
    proj: Tensor,
    full: bool,
    chunk_size: int | None,
    budget: int,
    names: list[str] | None = None,
) -> Tensor:
    """Generic torch.func kernel over the parameters ``names`` (default: all)."""
    setup.freeze()
    r = proj.shape[0]
    rows = setup.n1 if setup.symmetric else setup.n1 + setup.n2
    chunk = _chunk(setup, chunk_size, r, budget, rows)
    itemsize = proj.element_size()
    chosen = setup.params if names is None else {k: setup.params[k] for k in names}
    sizes = {k: v.numel() * r * itemsize for k, v in chosen.items()}
    if setup.bn == "batch":
        features = BatchFeatures(setup, proj, chunk)
    else:
        features = PerSampleFeatures(setup, proj, chunk)
    groups = gram.groups_within(sizes, rows=rows, budget=budget)
    return gram.accumulate(
        features,
        groups,
        n1=setup.n1,
        n2=setup.n2,
        symmetric=setup.symmetric,
        num_proj=r,
        full=full,
        dtype=setup.dtype,
        device=setup.device,
        budget=budget,
    )


def _structured_kernel(
    setup: Setup,
    proj: Tensor,
    full: bool,
    chunk_size: int | None,
    budget: int,
    auto: bool,
    probes: dict,
) -> Tensor:
    """Per-layer kernel (:mod:`.structured`) plus the generic kernel of the leftover parameters.

    With ``auto``, refuses (``Unsupported``) when most parameters would be leftovers: one generic
    pass over everything is then cheaper than a structured pass plus a generic one. The probe
    runs on one sample; the first batched forward checks what a second probe would have
    (:class:`~.structured.Recheck`: only when that check fails is the model probed again).
    ``probes`` keeps each input shape's probe for later calls through the same prepared model.
    """
    if setup.bn == "batch" or not setup.x.is_floating_point():
        raise Unsupported("samples are not independent or inputs are not floating point")
    key = (tuple(setup.x.shape[1:]), setup.x.dtype, tuple(proj.shape))
    if key in probes:  # a probe of this input shape already ran through this prepared model
        return _structured_pass(setup, proj, full, chunk_size, budget, auto, probes[key])
    try:
        probed = trace_probe(setup, proj, sizes=(1,))
        out = _structured_pass(setup, proj, full, chunk_size, budget, auto, probed)
    except Recheck:
        probed = trace_probe(setup, proj, sizes=(1, 2))
        out = _structured_pass(setup, proj, full, chunk_size, budget, auto, probed)
    probed.checked = True
    probes[key] = probed
    return out


def _structured_pass(
    setup: Setup,
    proj: Tensor,
    full: bool,
    chunk_size: int | None,
    budget: int,
    auto: bool,
    probed: Probed,
) -> Tensor:
    plans, leftovers = plan_probe(setup, probed, proj, full)
    if not plans:
        raise Unsupported("no parameter is used by a layer the per-layer path covers")
    if auto and sum(setup.params[k].numel() for k in leftovers) * 2 > setup.num_params:
        raise Unsupported("most parameters are used in ways the per-layer path does not cover")
    r = proj.shape[0]
    rows = setup.n1 if setup.symmetric else setup.n1 + setup.n2
    if chunk_size is None:
        per = max(1, working_bytes(plans, setup))
        chunk = int(max(1, min(rows, budget // (4 * per))))
    else:
        chunk = _chunk(setup, chunk_size, r, budget, rows)
    store = setup.x.element_size()
    sizes = {i: p.row_bytes(r, store) for i, p in enumerate(plans)}
    unchecked = plans if len(probed.sizes) == 1 and not probed.checked else None
    feats = StructuredFeatures(setup, proj, chunk, budget, unchecked)
    groups = [
        ([plans[i] for i in items], b)
        for items, b in gram.groups_within(sizes, rows=rows, budget=budget)
    ]
    common = dict(
        n1=setup.n1,
        n2=setup.n2,
        symmetric=setup.symmetric,
        num_proj=r,
        full=full,
        dtype=setup.dtype,
        device=setup.device,
        budget=budget,
    )
    out = gram.accumulate(feats, groups, pair=feats.pair, **common)
    if leftovers:
        out = out + _vmap_kernel(setup, proj, full, chunk_size, budget, names=leftovers)
    return out


class KernelFn:
    """``fn(x1, x2=None) -> Tensor``: the kernel of one model, set up once for many batches.

    Made by :func:`kernel_fn` (in the spirit of neural-tangents' ``empirical_ntk_fn``). What does
    not change between calls is done once: the private copy of the model in its BatchNorm mode
    (:func:`~.prepare.prepare_model`), the output size per input shape, and the per-layer path's
    probe (the traced forward and backward that finds the layer calls) per input shape. The
    function reads the model's parameter values at each call (the copy shares their storage, so
    in-place updates such as optimiser steps are seen); a structural change (new modules or
    parameter objects) needs a new function.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        kind: str = "pntk",
        params: str = "all",
        bn: str = "eval",
        dtype: torch.dtype = torch.float64,
        device: str | torch.device = "auto",
        chunk_size: int | None = None,
        max_memory: int | None = None,
        implementation: str = "auto",
        proj_dim: int = 8,
        seed: int = 0,
    ) -> None:
        if kind not in KINDS:
            raise NasntkError(f"unknown kernel kind {kind!r}; choose one of {', '.join(KINDS)}")
        if implementation not in IMPLEMENTATIONS:
            raise NasntkError(
                f"unknown implementation {implementation!r}; choose one of "
                f"{', '.join(IMPLEMENTATIONS)}"
            )
        self.kind, self.params, self.bn, self.dtype, self.device = kind, params, bn, dtype, device
        self.chunk_size, self.implementation = chunk_size, implementation
        self.proj_dim, self.seed = proj_dim, seed
        self.budget = _budget(max_memory)
        self._model = model
        self._prepared: PreparedModel | None = None
        self._probes: dict = {}

    def __call__(self, x1: Tensor, x2: Tensor | None = None) -> Tensor:
        if self._prepared is None:
            self._prepared = prepare_model(
                self._model,
                params=self.params,
                bn=self.bn,
                dtype=self.dtype,
                device=self.device,
                like=x1 if isinstance(x1, Tensor) else None,
            )
        setup = with_batch(self._prepared, x1, x2)
        fdtype = setup.x.dtype if setup.x.is_floating_point() else torch.float32
        proj = projection(
            self.kind, setup.num_outputs, proj_dim=self.proj_dim, seed=self.seed, dtype=fdtype,
            device=setup.device,
        )  # fmt: skip
        full, chunk, implementation = self.kind == "entk", self.chunk_size, self.implementation
        budget = self.budget if self.budget is not None else default_budget(setup.device)
        with torch.enable_grad():
            if implementation == "vmap" or (implementation == "auto" and self.bn == "batch"):
                return _vmap_kernel(setup, proj, full, chunk, budget)
            try:
                auto = implementation == "auto"
                return _structured_kernel(setup, proj, full, chunk, budget, auto, self._probes)
            except Unsupported as exc:
                if implementation == "structured":
                    raise NasntkError(
                        f"implementation='structured' cannot handle this case: {exc}"
                    ) from exc
                return _vmap_kernel(setup, proj, full, chunk, budget)


def kernel_fn(model: nn.Module, **opts) -> KernelFn:
    """A kernel function of ``model``: ``kernel_fn(model, **opts)(x1, x2)`` equals
    ``kernel(model, x1, x2, **opts)``, and repeated calls reuse the set-up (:class:`KernelFn`,
    whose keyword arguments are :func:`kernel`'s options)."""
    return KernelFn(model, **opts)


def pntk_fn(model: nn.Module, **opts) -> KernelFn:
    """``pntk_fn(model, **opts)(x1, x2)`` = ``pntk(model, x1, x2, **opts)``, set up once."""
    return kernel_fn(model, kind="pntk", **opts)


def kernel(
    model: nn.Module,
    x1: Tensor,
    x2: Tensor | None = None,
    *,
    kind: str = "pntk",
    params: str = "all",
    bn: str = "eval",
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "auto",
    chunk_size: int | None = None,
    max_memory: int | None = None,
    implementation: str = "auto",
    proj_dim: int = 8,
    seed: int = 0,
) -> Tensor:
    """The empirical NTK of ``model`` of the given ``kind`` between x1 and x2 (default x2 = x1).

    Args:
        kind: ``"pntk"`` | ``"entk"`` | ``"first"`` | ``"trace"`` | ``"proj"`` (module docstring).
        params: ``"all"`` trainable parameters, or ``"weights"`` only (ndim >= 2, as TE-NAS).
        bn: ``"eval"`` | ``"frozen"`` | ``"batch"`` BatchNorm semantics (see ``prepare``).
        dtype: accumulation dtype of the kernel (float64 by default).
        device: ``"cpu"``, ``"cuda"`` or ``"auto"`` (CUDA when available).
        chunk_size: samples per vectorised chunk (default: from ``max_memory``).
        max_memory: working-memory budget in bytes (default: a quarter of the device's free
            memory, within 1–8 GiB); features of parameter groups
            and sample blocks are recomputed rather than held when they would exceed it.
        implementation: ``"vmap"`` (torch.func, any model and BN mode), ``"structured"``
            (per-layer path from one batched forward / backward; independent samples only, with
            the generic path for parameters it does not cover) or ``"auto"``: structured for
            ``bn`` eval / frozen unless most parameters are not covered, vmap for ``"batch"``
            (the faster one in ``experiments/bench_kernels.py``).
        proj_dim, seed: number of random directions and their seed for ``kind="proj"``.

    Returns:
        [N1, N2] (``entk``: [N1·O, N2·O], row n·O + j) in ``dtype`` on the compute device.
        The caller's model is never modified.
    """
    return KernelFn(
        model, kind=kind, params=params, bn=bn, dtype=dtype, device=device,
        chunk_size=chunk_size, max_memory=max_memory, implementation=implementation,
        proj_dim=proj_dim, seed=seed,
    )(x1, x2)  # fmt: skip


def pntk(model: nn.Module, x1: Tensor, x2: Tensor | None = None, **opts) -> Tensor:
    """pNTK(x, x′) = ∇θ f̄(x)·∇θ f̄(x′) with f̄ = Σⱼ fⱼ/√O: a [N1, N2] matrix (see :func:`kernel`)."""
    return kernel(model, x1, x2, kind="pntk", **opts)


def entk(model: nn.Module, x1: Tensor, x2: Tensor | None = None, **opts) -> Tensor:
    """The full empirical NTK J(x)J(x′)ᵀ: [N1·O, N2·O], row n·O + j (see :func:`kernel`)."""
    return kernel(model, x1, x2, kind="entk", **opts)
