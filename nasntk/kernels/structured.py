"""The per-layer fast path for independent samples (``bn="eval"`` / ``"frozen"``).

One batched forward of a chunk of samples under a :class:`~.trace.Tracer` finds every layer
call (*site*) that uses a differentiated parameter; one batched backward of Σₙ p_r·f(xₙ) per
projection r (gradients taken w.r.t. the input only, so no weight gradients are formed) hands
each site its per-sample output gradients. Each site's contribution to the Gram then follows
from (input aₙ, output gradient gₙ) alone (:mod:`.persample`), in one of three forms chosen per
site by operation count and memory:

* ``factor`` (linear, ungrouped conv): keep aₙ [T, d′] (conv patches) and gₙ [T, d_out]; the
  block Gram is Σ_{t,s}(aₙₜ·aₘₛ)(gₙₜ·gₘₛ) -- cheap when few positions T share a large weight.
* ``raw`` (linear, conv): keep the layer's input and output gradient as they are; per-sample
  gradients φₙ are materialised only when the Gram is formed, a slice of output channels at a
  time, so their memory is bounded whatever P is.
* ``mat`` (norm affines, broadcast parameters, small layers): materialise φₙ ∈ R^P during the
  backward.

Parameters used any other way (weights standardised before use, parameters shared by several
calls, layers whose batch dimension is not first) go through the generic torch.func path; the
two kernels add.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from . import gram, persample
from .prepare import Setup, StatisticsRecheck
from .trace import Site, Tracer, run

_NORMS = {
    "batch_norm": persample.batch_norm_grads,
    "layer_norm": persample.layer_norm_grads,
    "group_norm": persample.group_norm_grads,
}
_BROADCAST = ("add", "mul", "expand")
COMBINE_WEIGHT = 100


class Unsupported(Exception):
    """The model cannot use the structured path (the caller falls back to torch.func)."""


class Recheck(Unsupported):
    """A site planned from the one-sample probe failed its check on a batch: probe again on one
    and two samples, which leaves that site's parameters to the generic path."""


@dataclass
class SitePlan:
    """How one site's contribution is computed and stored."""

    index: int
    site: Site
    has_w: bool
    has_b: bool
    form: str  # "mat" | "factor" | "raw"
    tokens: int = 1  # T: positions sharing the weight
    d_in: int = 0  # d′ (with the bias column)
    d_out: int = 0
    width: int = 0  # P: parameters of the site that count
    column: int = 0  # first column in the group's "mat" block

    def row_bytes(self, r: int, store: int) -> int:
        """Bytes of one sample's stored features (in the model's dtype)."""
        if self.form == "mat":
            return r * self.width * store
        if self.form == "factor":
            return self.tokens * (self.d_in + r * self.d_out) * store
        return (math.prod(self.site.in_shape[1:]) + r * math.prod(self.site.out_shape[1:])) * store


def _site_dims(site: Site, has_w: bool, has_b: bool) -> tuple[int, int, int, int]:
    """(T, d′, d_out, P) of a linear / conv site, P = parameters of the site that count."""
    if site.kind == "linear":
        t, d_in, d_out = persample.tokens(site.in_shape), site.in_shape[-1], site.out_shape[-1]
    else:
        cout, cin_g, kh, kw = site.weight_shape
        t, d_in, d_out = math.prod(site.out_shape[2:]), cin_g * kh * kw, cout
    p = (d_in * d_out if has_w else 0) + (d_out if has_b else 0)
    dp = (d_in if has_w else 0) + (1 if has_b else 0)
    return t, dp, d_out, p


def _plan_site(i: int, site: Site, names: set[str], n: int, r: int, full: bool) -> SitePlan | None:
    has_w = site.weight is not None and site.weight in names
    has_b = site.bias is not None and site.bias in names
    if not (has_w or has_b):
        return None
    if site.kind in _BROADCAST:
        return SitePlan(i, site, has_w, False, "mat", width=math.prod(site.hyper["q_shape"]))
    if site.kind in _NORMS:
        width = (math.prod(site.weight_shape) if has_w else 0) + (
            math.prod(site.bias_shape) if has_b else 0
        )
        return SitePlan(i, site, has_w, has_b, "mat", width=width)
    t, dp, d_out, p = _site_dims(site, has_w, has_b)
    factorable = has_w and not (site.kind == "conv2d" and site.hyper["groups"] != 1)
    form = choose_form(site, factorable, t, dp, d_out, p, n, r, full)
    return SitePlan(i, site, has_w, has_b, form, t, dp, d_out, width=p)


def choose_form(
    site: Site, factorable: bool, t: int, dp: int, d_out: int, p: int, n: int, r: int, full: bool
) -> str:
    """The cheapest form of a linear / conv site for n rows and r projections.

    ``factor`` when its Gram costs fewer operations than materialising, otherwise whichever of
    ``raw`` / ``mat`` stores less per sample (they cost the same operations).
    """
    rr = r * r if full else r
    mat_cost = n * r * t * p + n * n * rr * p
    # two GEMMs, then an elementwise combine over n²·T²·(R² or 1) terms, memory-bound: weighed
    # as 100 multiply-adds each (measured on a CNN width sweep)
    combine = COMBINE_WEIGHT * (rr if full else 1)
    factor_cost = n * n * t * t * (dp + rr * d_out + combine)
    if factorable and factor_cost < mat_cost:
        return "factor"
    raw = math.prod(site.in_shape[1:]) + r * math.prod(site.out_shape[1:])
    return "raw" if raw < r * p else "mat"


def _same_but_batch(a: tuple, b: tuple, n1: int, n2: int) -> bool:
    return len(a) == len(b) and a[0] == n1 and b[0] == n2 and a[1:] == b[1:]


def _batch_first(one: Site, other: Site, n: int) -> bool:
    """Is ``other`` the same call as the one-sample site ``one``, on n samples, sample dim first?"""
    return (
        one.kind == other.kind
        and _same_but_batch(one.in_shape, other.in_shape, 1, n)
        and _same_but_batch(one.out_shape, other.out_shape, 1, n)
    )


@dataclass
class Probed:
    """What the probe's traced passes saw (on ``sizes`` samples): reusable for any batch of the
    same input shape through the same prepared model."""

    sizes: tuple[int, ...]
    one: Tracer
    two: Tracer
    reached: list[set[int]]
    #: the deferred sample-dimension check of a one-sample probe passed on a batched forward
    checked: bool = False


def trace_probe(setup: Setup, proj: Tensor, *, sizes: tuple[int, ...] = (1, 2)) -> Probed:
    """The traced forward and backward of the probe (see :func:`probe`)."""
    tracked = {id(p): k for k, p in setup.params.items()}
    tracers, reached = [], []
    for n in sizes:
        x = setup.x[[0] * n].detach().requires_grad_(True)
        got: set[int] = set()
        out, tr = run(setup.model, x, tracked, lambda i, g, got=got: got.add(i))
        torch.autograd.grad((out @ proj[0]).sum(), tr.grad_inputs(x), allow_unused=True)
        tr.on_grad = None  # keep the sites, drop the graph (see Tracer.close)
        tr.outputs.clear()
        del out
        for site in tr.sites:
            site.input = None
        tracers.append(tr)
        reached.append(got)
    return Probed(sizes, tracers[0], tracers[-1], reached)


def plan_probe(
    setup: Setup, probed: Probed, proj: Tensor, full: bool
) -> tuple[list[SitePlan], list[str]]:
    """Plan the sites a probe found for the batch of ``setup`` (see :func:`probe`)."""
    one, two, sizes = probed.one, probed.two, probed.sizes
    if len(one.sites) != len(two.sites):
        raise Unsupported("the forward differs between batch sizes")
    bad = set(one.unsupported) | set(two.unsupported)
    uses: dict[str, int] = {}
    for i, (a, b) in enumerate(zip(one.sites, two.sites, strict=True)):
        members = [m for m in (a.weight, a.bias) if m]
        for m in members:
            uses[m] = uses.get(m, 0) + 1
        if not (_batch_first(a, b, sizes[-1]) and all(i in got for got in probed.reached)):
            bad.update(members)
    bad.update(m for m, c in uses.items() if c > 1)
    bad.update(k for k in setup.params if k not in uses)  # used in no call we could see
    keep = {k for k in setup.params if k not in bad}
    rows = setup.n1 if setup.symmetric else setup.n1 + setup.n2
    plans = []
    for i, site in enumerate(one.sites):
        p = _plan_site(i, site, keep, rows, proj.shape[0], full)
        if p is not None:
            plans.append(p)
    leftovers = [k for k in setup.params if k in bad]
    return plans, leftovers


def probe(
    setup: Setup, proj: Tensor, full: bool, *, sizes: tuple[int, ...] = (1, 2)
) -> tuple[list[SitePlan], list[str]]:
    """Find the sites (on one and on two samples) and plan them; return (plans, leftovers).

    A site is kept only if its input and output carry the sample dimension first (shapes for one
    and two samples differ exactly there), its output gradient arrives in the backward, and its
    parameters are used nowhere else. With ``sizes=(1,)`` the probe runs on one sample only and
    the sample-dimension check is left to :class:`StructuredFeatures`, which makes it on the
    first batched forward (saving a traced forward and backward per kernel). The traced part
    (:func:`trace_probe`) does not depend on the batch size and can be reused.
    """
    return plan_probe(setup, trace_probe(setup, proj, sizes=sizes), proj, full)


@dataclass
class StructuredRows:
    """Stored features of a block of rows, by form."""

    mat: Tensor  # [n, R, P_mat]: materialised gradients of the "mat" sites, side by side
    factors: list[tuple[Tensor, Tensor]]  # per factor site: a [n, T, d′], g [n, R, T, d_out]
    raw: list[tuple[SitePlan, Tensor, Tensor]]  # per raw site: input [n, ...], g [n, R, ...]

    def __getitem__(self, s: slice) -> StructuredRows:
        return StructuredRows(
            self.mat[s],
            [(a[s], g[s]) for a, g in self.factors],
            [(p, x[s], g[s]) for p, x, g in self.raw],
        )


class StructuredFeatures:
    """``features(group, rows)`` for :func:`gram.accumulate`: groups are lists of site plans."""

    def __init__(
        self,
        setup: Setup,
        proj: Tensor,
        chunk: int,
        budget: int,
        plans: list[SitePlan] | None = None,
    ) -> None:
        """``plans``: every planned site, when the probe ran on one sample only; the first
        forward then checks that each carries the sample dimension first."""
        self.setup, self.proj, self.chunk, self.budget = setup, proj, chunk, budget
        self.tracked = {id(p): k for k, p in setup.params.items()}
        self.unchecked = plans
        self.checked_by_probe = plans is None

    def _check(self, sites: list[Site], n: int) -> None:
        """The sample-dimension check the probe left to the first forward (see :func:`probe`)."""
        if self.unchecked is None:
            return
        if n < 2:  # one sample shows nothing: look at two (a traced forward, no backward)
            x = self.setup.x[[0, 0]].detach()
            out, tracer = run(self.setup.model, x, self.tracked)
            sites, n = list(tracer.sites), 2
            tracer.close()
            del out, tracer
        for p in self.unchecked:
            if p.index >= len(sites) or not _batch_first(p.site, sites[p.index], n):
                raise Recheck("a layer's input or output does not carry the samples first")
        self.unchecked = None

    def __call__(self, group: list[SitePlan], rows: range) -> StructuredRows:
        s, r = self.setup, self.proj.shape[0]
        store, dev = s.x.dtype, s.device
        n = len(rows)
        col = 0
        for p in group:
            if p.form == "mat":
                p.column, col = col, col + p.width
        bufs: dict[int, tuple[Tensor, Tensor]] = {}
        for p in group:
            if p.form == "factor":
                a_shape, g_shape = (p.tokens, p.d_in), (p.tokens, p.d_out)
            elif p.form == "raw":
                a_shape, g_shape = p.site.in_shape[1:], p.site.out_shape[1:]
            else:
                continue
            bufs[p.index] = (
                torch.empty(n, *a_shape, dtype=store, device=dev),
                torch.empty(n, r, *g_shape, dtype=store, device=dev),
            )
        mat = torch.empty(n, r, col, dtype=store, device=dev)  # every entry is written
        by_index = {p.index: p for p in group}
        for start in range(0, n, self.chunk):
            stop = min(n, start + self.chunk)
            x = s.x[rows.start + start : rows.start + stop].detach().requires_grad_(True)
            state: dict = {"r": 0, "sites": None, "hit": set()}

            def on_grad(i: int, g: Tensor, state=state, lo=start, hi=stop) -> None:
                p = by_index.get(i)
                if p is not None:
                    _fill(p, state["sites"][i], g, state["r"], mat, bufs, lo, hi)
                    state["hit"].add(i)

            whole = rows.start + start == 0 and stop - start == len(s.x)
            if s.pending and not whole:
                s.freeze()
            try:  # the whole batch in one forward: it records the frozen BN statistics
                with s.recording_statistics() if s.pending else contextlib.nullcontext():
                    out, tracer = run(s.model, x, self.tracked, on_grad)
            except StatisticsRecheck:  # statistics now frozen the usual way: forward again
                tracer.close()
                del out, tracer
                out, tracer = run(s.model, x, self.tracked, on_grad)
            state["sites"] = tracer.sites
            if len(tracer.sites) <= max((p.index for p in group), default=-1):
                raise Unsupported("the forward found fewer layer calls than the probe")
            self._check(tracer.sites, stop - start)
            inputs = tracer.grad_inputs(x)
            for k in range(r):
                state["r"] = k
                loss = (out @ self.proj[k]).sum()
                torch.autograd.grad(loss, inputs, retain_graph=k < r - 1, allow_unused=True)
            tracer.close()  # breaks the hook -> tracer -> graph cycle (see Tracer.close)
            del out, tracer, inputs
            if len(state["hit"]) != len(by_index):  # its buffers would be left unwritten
                err = Unsupported if self.checked_by_probe else Recheck
                raise err("a layer's output gradient did not arrive in the backward")
        return StructuredRows(
            mat,
            [bufs[p.index] for p in group if p.form == "factor"],
            [(p, *bufs[p.index]) for p in group if p.form == "raw"],
        )

    def pair(self, f1: StructuredRows, f2: StructuredRows, full: bool) -> Tensor:
        """Block of the kernel between two row blocks (accumulated in the setup's dtype)."""
        dt, budget = self.setup.dtype, self.budget
        n, r = f1.mat.shape[:2]
        m = f2.mat.shape[0]
        out = torch.zeros((n, r, m, r) if full else (n, m), dtype=dt, device=f1.mat.device)
        same = f1 is f2
        if f1.mat.shape[2]:
            out += gram.pair_gram(f1.mat, f2.mat, full, dtype=dt, budget=budget, symmetric=same)
        for (a1, g1), (a2, g2) in zip(f1.factors, f2.factors, strict=True):
            out += _factor_gram(a1, g1, a2, g2, full, dt, budget)
        for (p, x1, g1), (_, x2, g2) in zip(f1.raw, f2.raw, strict=True):
            for part in _slices(p, n + m, r, budget):
                phi1 = _materialise(p, x1, g1, part)
                phi2 = phi1 if same else _materialise(p, x2, g2, part)
                for a, b in zip(phi1, phi2, strict=True):
                    out += gram.pair_gram(a, b, full, dtype=dt, budget=budget, symmetric=same)
                del phi1, phi2
        return out


def _fill(p: SitePlan, site: Site, g: Tensor, r: int, mat, bufs, lo: int, hi: int) -> None:
    """Store what the Gram needs from one site's output gradient (see the module docstring)."""
    x = site.input
    c = g.shape[0]
    if p.form == "raw":
        xs, gs = bufs[p.index]
        if r == 0:
            xs[lo:hi] = x
        gs[lo:hi, r] = g
        return
    if p.form == "factor":
        if p.site.kind == "linear":
            a, gg = x.reshape(c, p.tokens, -1), g.reshape(c, p.tokens, -1)
        else:
            a = persample.conv_patches(x, site.weight_shape[2:], site.hyper)
            gg = g.reshape(c, g.shape[1], -1).transpose(1, 2)
        fa, fg = bufs[p.index]
        if r == 0:
            fa[lo:hi] = persample.factors(a, gg, p.has_w, p.has_b)[0]
        fg[lo:hi, r] = gg
        return
    if p.site.kind in _BROADCAST:
        other = x if p.site.kind == "mul" else None
        parts = [persample.broadcast_grads(g, site.hyper["q_shape"], other)]
    elif p.site.kind in _NORMS:
        parts = [_NORMS[p.site.kind](x, g, site.hyper, p.has_w, p.has_b)]
    elif p.site.kind == "linear":
        a, gg = x.reshape(c, p.tokens, -1), g.reshape(c, p.tokens, -1)
        parts = persample.linear_grads(a, gg, p.has_w, p.has_b)
    else:
        parts = persample.conv_grads(x, g, site.weight_shape, site.hyper, p.has_w, p.has_b)
    col = p.column
    for part in parts:
        mat[lo:hi, r, col : col + part.shape[1]] = part
        col += part.shape[1]


def _slices(p: SitePlan, rows: int, r: int, budget: int) -> list[slice]:
    """Output-channel slices (whole groups for grouped convs) whose per-sample gradients for
    ``rows`` rows fit in a quarter of the budget."""
    groups = p.site.hyper.get("groups", 1) if p.site.kind == "conv2d" else 1
    unit = p.d_out // groups if groups > 1 else 1
    unit_bytes = rows * r * (p.width // p.d_out) * unit * 8
    step = max(1, budget // (4 * max(1, unit_bytes))) * unit
    return [slice(o, min(p.d_out, o + step)) for o in range(0, p.d_out, step)]


def _materialise(p: SitePlan, x: Tensor, g: Tensor, part: slice) -> list[Tensor]:
    """Per-sample gradients [n, R, P_part] (weight, then bias) of output channels ``part`` of a
    raw site."""
    s = p.site
    n, r = g.shape[:2]
    if s.kind == "linear":
        a = x.reshape(n, p.tokens, -1)
        gg = g.reshape(n, r, p.tokens, -1)[..., part]
        return persample.linear_grads(a, gg, p.has_w, p.has_b)
    cout, cin_g, kh, kw = s.weight_shape
    groups = s.hyper["groups"]
    if groups != 1:
        per = cout // groups
        x = x[:, part.start // per * cin_g : part.stop // per * cin_g]
    hyper = dict(s.hyper, groups=1 if groups == 1 else (part.stop - part.start) // (cout // groups))
    shape = (part.stop - part.start, cin_g, kh, kw)
    return persample.conv_grads(x, g[:, :, part], shape, hyper, p.has_w, p.has_b)


def _factor_gram(a1, g1, a2, g2, full: bool, dt: torch.dtype, budget: int) -> Tensor:
    """Σ_{t,u}(a1ₙₜ·a2ₘᵤ)(g1ₙᵣₜ·g2ₘₛᵤ) for a block: [n, m] (r-averaged) or [n, R, m, R]."""
    n, t, _ = a1.shape
    m, r = a2.shape[0], g1.shape[1]
    a2d = a2.reshape(m * t, -1).to(dt)
    per_row = m * t * t * (r * r if full else 1) * 8 * 3
    step = max(1, budget // (4 * per_row))
    parts = []
    for i in range(0, n, step):
        a = a1[i : i + step].to(dt)
        k = a.shape[0]
        aa = (a.reshape(k * t, -1) @ a2d.T).reshape(k, t, m, t)
        if full:
            gg = g1[i : i + step].to(dt).reshape(k * r * t, -1) @ g2.to(dt).reshape(m * r * t, -1).T
            gg = gg.reshape(k, r, t, m, r, t)
            parts.append(torch.einsum("ntmu,nrtmsu->nrms", aa, gg))
        else:
            x1 = g1[i : i + step].to(dt).permute(0, 2, 1, 3).reshape(k * t, -1)
            x2 = g2.to(dt).permute(0, 2, 1, 3).reshape(m * t, -1)
            gg = (x1 @ x2.T).reshape(k, t, m, t)
            parts.append((aa * gg).sum((1, 3)) / r)
    return torch.cat(parts)


def working_bytes(plans: list[SitePlan], setup: Setup) -> int:
    """Rough per-sample memory of a batched forward/backward with the site computations."""
    s = setup.x.element_size()
    act = sum(math.prod(p.site.out_shape[1:]) for p in plans)  # ~ what autograd keeps
    temp = max(
        (
            p.tokens * p.d_in if p.form == "factor" else 2 * p.width
            for p in plans
            if p.form != "raw"
        ),
        default=0,
    )
    return (2 * act + 2 * temp) * s
