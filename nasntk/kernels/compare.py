"""How well each N×N reduction, tensored with I_O, approximates the full eNTK.

For a reduction K of kind ``pntk`` / ``first`` / ``trace`` / ``proj`` (each built from unit
projections, see :mod:`.projections`), the "⊗ I" approximation of the eNTK is K ⊗ I_O and its
relative Frobenius error is

    err(K) = ‖eNTK − K ⊗ I_O‖_F / ‖eNTK‖_F,

which Mohamadi, Bae & Sutherland (ICML 2023) show is O(n^-1/2) in the width n at initialisation.
"""

from __future__ import annotations

import math
import time

import torch
from torch import Tensor, nn

from .api import kernel


def kron_error(e: Tensor, k: Tensor, num_outputs: int) -> float:
    """‖E − K ⊗ I_O‖_F / ‖E‖_F for E [N1·O, N2·O] (row n·O + j) and K [N1, N2]."""
    o = num_outputs
    n1, n2 = k.shape
    blocks = e.reshape(n1, o, n2, o).to(torch.float64)
    eye = torch.eye(o, dtype=torch.float64, device=e.device)
    diff = blocks - k.to(torch.float64)[:, None, :, None] * eye[None, :, None, :]
    return float(diff.norm() / blocks.norm())


def condition_number(k: Tensor) -> float:
    """λmax/λmin of the symmetric PSD kernel (float64); inf when λmin ≤ 0."""
    k = k.to(torch.float64)
    ev = torch.linalg.eigvalsh((k + k.T) / 2)
    return float(ev[-1] / ev[0]) if ev[0] > 0 else math.inf


def compare(
    model: nn.Module,
    x: Tensor,
    *,
    kinds: tuple[str, ...] = ("pntk", "first", "trace", "proj"),
    **opts,
) -> dict:
    """Compute the eNTK and each reduction of ``model`` on ``x`` and compare them.

    Returns ``{"n", "num_outputs", "entk": {"seconds", "cond"}, kind: {"seconds", "cond",
    "kron_error"}, ...}``; ``opts`` go to :func:`nasntk.kernels.kernel` (``bn``, ``device``, ...).
    """
    t = time.perf_counter()
    e = kernel(model, x, kind="entk", **opts)
    out: dict = {"n": int(x.shape[0]), "num_outputs": e.shape[0] // x.shape[0]}
    out["entk"] = {"seconds": time.perf_counter() - t, "cond": condition_number(e)}
    for kind in kinds:
        t = time.perf_counter()
        k = kernel(model, x, kind=kind, **opts)
        out[kind] = {
            "seconds": time.perf_counter() - t,
            "cond": condition_number(k),
            "kron_error": kron_error(e, k, out["num_outputs"]),
        }
    return out
