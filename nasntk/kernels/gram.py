"""Accumulate a kernel from per-row features, in blocks, within a memory budget.

An implementation supplies, for a group of parameters θ_g and a set of rows of the scored batch,
the projected Jacobian F[n, r, :] = p_r·∂f(x_n)/∂θ_g ∈ R^{P_g} (in the model's dtype).
The kernel is a sum over parameter groups of Grams of these features:

    full (eNTK):   K[(n, r), (m, s)] = Σ_g ⟨F_g[n, r], F_g[m, s]⟩
    reduced:       K[n, m]           = (1/R) Σ_g Σ_r ⟨F_g[n, r], F_g[m, r]⟩

If the features of every row of a group fit in the budget they are computed once; otherwise rows
are split into blocks and each block pair (I, J) is formed from recomputed features, so peak
memory is the budget plus the output, whatever N is.

Precision: when the features are in a narrower dtype than the kernel (float32 model, float64
kernel), each inner product is summed in the features' dtype over blocks of at most
:data:`BLOCK` parameters, and the block sums are accumulated in the kernel's dtype. The rounding
error is then about ε₃₂·BLOCK/√P relative (~1e-7), against ~ε₃₂·√P for one float32 product,
at float32 matrix-multiply speed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

Features = Callable[[Any, range], Any]  # (group, rows) -> features of those rows
Pair = Callable[[Any, Any, bool], Tensor]  # (features, features, full) -> block of the kernel


#: Parameters per block summed in the features' dtype before accumulating in the kernel's dtype.
BLOCK = 4096


#: A symmetric Gram X Xᵀ is formed block by block, only the blocks on and above the diagonal,
#: when X has at least 2·TRIANGLE_ROWS rows: (B+1)/2B of the full product's multiply-adds for
#: B row blocks (B ≤ TRIANGLE_PARTS: 75 % at B = 2; smaller blocks lose GEMM speed on CPU).
TRIANGLE_ROWS = 64
TRIANGLE_PARTS = 2


def products(x: Tensor, y: Tensor, symmetric: bool = False) -> Tensor:
    """Batched x[k] y[k]ᵀ ([k, n, P] × [k, m, P] → [k, n, m]) in x's dtype.

    ``symmetric``: y is x, and only the row blocks on and above the diagonal are multiplied
    (the others are their transposes).
    """
    n = x.shape[1]
    parts = min(TRIANGLE_PARTS, n // TRIANGLE_ROWS) if symmetric else 1
    if parts < 2:
        return torch.bmm(x, y.transpose(1, 2))
    out = torch.empty(x.shape[0], n, n, dtype=x.dtype, device=x.device)
    edges = [n * i // parts for i in range(parts + 1)]
    rows = [slice(edges[i], edges[i + 1]) for i in range(parts)]
    for i, ri in enumerate(rows):
        for rj in rows[i:]:
            block = torch.bmm(x[:, ri], x[:, rj].transpose(1, 2))
            out[:, ri, rj] = block
            if rj != ri:
                out[:, rj, ri] = block.transpose(1, 2)
    return out


def dot(
    a: Tensor, b: Tensor, dtype: torch.dtype, budget: int, *, symmetric: bool = False
) -> Tensor:
    """Batched inner products a[k] b[k]ᵀ ([k, n, P] × [k, m, P] → [k, n, m]) in ``dtype``.

    ``symmetric``: b equals a (a Gram): only half of the products are formed (:func:`products`).
    """
    if a.dtype == dtype:
        return products(a, b, symmetric)
    k, n, p = a.shape
    m = b.shape[1]
    out = torch.zeros(k, n, m, dtype=dtype, device=a.device)
    blocks = p // BLOCK
    per_block = k * (n * m + BLOCK * (n + m)) * a.element_size()
    step = max(1, budget // (4 * per_block))
    for s in range(0, blocks, step):
        g = min(step, blocks - s)
        cols = slice(s * BLOCK, (s + g) * BLOCK)
        aa = a[:, :, cols].reshape(k, n, g, BLOCK).transpose(1, 2).reshape(k * g, n, BLOCK)
        bb = aa
        if not symmetric:
            bb = b[:, :, cols].reshape(k, m, g, BLOCK).transpose(1, 2).reshape(k * g, m, BLOCK)
        out += products(aa, bb, symmetric).reshape(k, g, n, m).sum(1, dtype=dtype)
    if p % BLOCK:
        tail = slice(blocks * BLOCK, p)
        out += products(a[:, :, tail], b[:, :, tail], symmetric).to(dtype)
    return out


def pair_gram(
    f1: Tensor,
    f2: Tensor,
    full: bool,
    *,
    dtype: torch.dtype,
    budget: int,
    symmetric: bool = False,
) -> Tensor:
    """Gram of two feature blocks: [n, R, m, R] when ``full`` else the r-averaged [n, m].

    ``symmetric``: f2 is f1 (a diagonal block), so half of the products are formed.
    """
    n, r, p = f1.shape
    m = f2.shape[0]
    if full:
        a = f1.reshape(1, n * r, p)
        b = a if symmetric else f2.reshape(1, m * r, p)
        return dot(a, b, dtype, budget, symmetric=symmetric).reshape(n, r, m, r)
    a = f1.transpose(0, 1)
    b = a if symmetric else f2.transpose(0, 1)
    return dot(a, b, dtype, budget, symmetric=symmetric).sum(0) / r


def split(rows: range, size: int) -> list[range]:
    """Consecutive sub-ranges of ``rows`` of at most ``size`` rows."""
    size = max(1, int(size))
    return [rows[i : i + size] for i in range(0, len(rows), size)]


def accumulate(
    features: Features,
    groups: Sequence[tuple[Any, int]],
    *,
    n1: int,
    n2: int,
    symmetric: bool,
    num_proj: int,
    full: bool,
    dtype: torch.dtype,
    device: torch.device,
    budget: int,
    pair: Pair | None = None,
) -> Tensor:
    """Sum the Grams of every parameter group (``(group, bytes of one row's features)`` pairs).

    Rows ``range(0, n1)`` are x1; x2 is rows ``range(n1, n1 + n2)``, or x1 again if ``symmetric``.
    Returns [n1*R, n2*R] (row n*R + r) when ``full`` else [n1, n2].
    """
    r = num_proj
    pair = pair or (
        lambda f1, f2, full: pair_gram(f1, f2, full, dtype=dtype, budget=budget, symmetric=f1 is f2)
    )
    shape = (n1, r, n2, r) if full else (n1, n2)
    out = torch.zeros(shape, dtype=dtype, device=device)
    rows1 = range(0, n1)
    rows2 = rows1 if symmetric else range(n1, n1 + n2)
    for names, row_bytes in groups:
        block = max(1, budget // (2 * max(1, row_bytes)))
        if symmetric:
            blocks = split(rows1, block)
            for i, bi in enumerate(blocks):
                fi = features(names, bi)
                for bj in blocks[i:]:
                    fj = fi if bj == bi else features(names, bj)
                    g = pair(fi, fj, full)
                    si, sj = slice(bi.start, bi.stop), slice(bj.start, bj.stop)
                    if full:
                        out[si, :, sj, :] += g
                        if bj != bi:
                            out[sj, :, si, :] += g.permute(2, 3, 0, 1)
                    else:
                        out[si, sj] += g
                        if bj != bi:
                            out[sj, si] += g.T
                    del fj, g
                del fi
        elif n1 + n2 <= block:
            f = features(names, range(0, n1 + n2))
            g = pair(f[:n1], f[n1:], full)
            out += g
            del f, g
        else:
            for bi in split(rows1, block):
                fi = features(names, bi)
                for bj in split(rows2, block):
                    fj = features(names, bj)
                    si, sj = slice(bi.start, bi.stop), slice(bj.start - n1, bj.stop - n1)
                    if full:
                        out[si, :, sj, :] += pair(fi, fj, full)
                    else:
                        out[si, sj] += pair(fi, fj, full)
                    del fj
                del fi
    if full:
        out = out.reshape(n1 * r, n2 * r)
    if symmetric:
        out = (out + out.T) / 2
    return out


def groups_within(row_bytes: dict[Any, int], *, rows: int, budget: int) -> list[tuple[list, int]]:
    """Split items (in order) into groups whose features for ``rows`` rows fit the budget.

    ``row_bytes[item]`` is the size of one row's features of the item. A group holds consecutive
    items while ``rows * Σ row_bytes`` stays within a third of the budget; an item too large on
    its own forms its own group (its rows are then blocked by :func:`accumulate`). Returns
    ``(items, row bytes of the group)`` pairs.
    """
    cap = max(1, budget // (2 * max(1, rows)))
    groups: list[tuple[list, int]] = []
    items: list = []
    total = 0
    for item, size in row_bytes.items():
        if items and total + size > cap:
            groups.append((items, total))
            items, total = [], 0
        items.append(item)
        total += size
    if items:
        groups.append((items, total))
    return groups
