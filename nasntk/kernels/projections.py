"""Output projections: how each kernel kind reduces the O logits.

Every N×N kernel of the family is an average of projected-Jacobian Grams,

    K_P(x, x′) = (1/R) Σ_r (p_r·J(x)) (p_r·J(x′))ᵀ,        J(x) = ∂f(x)/∂θ ∈ R^{O×P},

with R unit vectors p_r ∈ R^O (the rows of P):

* ``pntk``:  P = 1ᵀ/√O (R = 1): the gradient of f̄(x) = Σⱼ fⱼ(x)/√O, so
  pNTK(x, x′) = (1/O) Σⱼₖ eNTK_jk(x, x′).
* ``first``: P = e₁ᵀ: the first logit's NTK, eNTK_11.
* ``trace``: P = I_O (R = O): the mean of the diagonal blocks, (1/O) Σⱼ eNTK_jj = tr(eNTK(x,x′))/O.
* ``proj``:  P = R Gaussian directions normalised to unit length (seeded): a Monte Carlo estimate
  of ``trace``.

Because each p_r has unit norm, if eNTK = K ⊗ I_O exactly then every reduction returns K: the
"⊗ I" approximation of each is eNTK ≈ K_P ⊗ I_O. ``entk`` uses P = I_O and keeps every block.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from nasntk.errors import NasntkError

KINDS = ("pntk", "entk", "first", "trace", "proj")


def projection(
    kind: str,
    num_outputs: int,
    *,
    proj_dim: int = 8,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> Tensor:
    """The projection matrix P [R, O] (unit rows) of ``kind`` (see module docstring)."""
    o = num_outputs
    if kind == "pntk":
        p = torch.full((1, o), 1.0 / math.sqrt(o), dtype=torch.float64)
    elif kind == "first":
        p = torch.zeros(1, o, dtype=torch.float64)
        p[0, 0] = 1.0
    elif kind in ("trace", "entk"):
        p = torch.eye(o, dtype=torch.float64)
    elif kind == "proj":
        if not (isinstance(proj_dim, int) and proj_dim >= 1):
            raise NasntkError(f"proj_dim must be a positive integer; got {proj_dim!r}")
        gen = torch.Generator().manual_seed(int(seed))
        p = torch.randn(proj_dim, o, generator=gen, dtype=torch.float64)
        p = p / p.norm(dim=1, keepdim=True)
    else:
        raise NasntkError(f"unknown kernel kind {kind!r}; choose one of {', '.join(KINDS)}")
    return p.to(dtype=dtype, device=device)
