"""VKDNW (Dvořák et al., "Training-free neural architecture search through variance of knowledge
of deep network weights", CVPR 2025): the spread of the Fisher information's spectrum.

Protocol, as the authors score NAS-Bench-201: the network re-initialised (Kaiming, as AZ-NAS:
:func:`nasntk.proxies.reinit.kaiming_params`), BatchNorm in eval mode, a batch of Gaussian noise
(seeded, the data's shape and batch size). θ = one scalar from each of the first P = 128
parameter tensors (``named_parameters()`` order, the tensor's first entry). With the logits f(x)
and the smoothed probabilities p = (1 − α)·softmax(f) + α/K (α = 0.05), the empirical Fisher
information of the categorical model over the batch is

    F = (1/B) Σ_n J_nᵀ (diag(p_n) − p_n p_nᵀ) J_n,       J_n = ∂f(x_n)/∂θ  (K × P)

(the expectation over the model's own labels taken exactly, no label is sampled). With
λ_1 ≤ … ≤ λ_P its eigenvalues and Q = (q_0.1, …, q_0.9) their deciles (linear interpolation),
t = Q / (Σ Q + 1e-10):

    vkdnw        = −Σ t log(t + 1e-10)  ∈ [0, ln 9]: how evenly the Fisher spectrum spreads
    vkdnw_single = D + vkdnw / (2 ln 9), D = the number of parameter tensors ("trainable
                   layers"): D first, the entropy breaking ties (the paper's lexicographic rank)
    vkdnw_agg    = Σ log rank of FLOPs, AZ-NAS expressivity and trainability, jacob_cov and
                   vkdnw_single (:mod:`nasntk.proxies.aggregate`)

The authors' code multiplies the Cholesky-type factor L (L Lᵀ = diag(p) − ppᵀ) on the other side
(Jᵀ Lᵀ L J); this module computes the Fisher information as the paper defines it.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch

from nasntk.proxies.aggregate import register_aggregate
from nasntk.proxies.aznas import gaussian_batch
from nasntk.proxies.context import Context
from nasntk.proxies.registry import register
from nasntk.proxies.reinit import kaiming_params
from nasntk.spectral import ScoreUndefined

__all__ = ["decile_entropy", "fisher_information"]

FAMILY = "vkdnw"
REFERENCE = "Dvořák et al., CVPR 2025 (VKDNW)"
TENSORS = 128
ALPHA = 0.05


def per_sample_jacobian(
    model: torch.nn.Module, x: torch.Tensor, names: list[str]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(J, f): J[n, k, p] = ∂f_k(x_n)/∂θ_p for θ_p the first entry of each named parameter
    tensor, and the logits f [B, K] — for a model whose samples do not interact (BatchNorm in
    eval mode).

    K batched backward passes instead of B·K: each named tensor W (of module m) gets a
    per-sample perturbation δ_p ∈ ℝ^B, zero, added to m's output as δ_p[n]·∂m(x_n)/∂W[0]
    (a forward-mode derivative of m alone); at δ = 0 the network is unchanged and
    ∂f_k(x_n)/∂δ_p[n] = ∂f_k(x_n)/∂θ_p, so ∂(Σ_n f_k(x_n))/∂δ gives every sample's row at once.
    """
    from torch.func import functional_call, jvp

    from nasntk.proxies.classic import logits as logits_of

    owners: dict[torch.nn.Module, list[tuple[int, str]]] = {}
    for i, name in enumerate(names):
        mod, _, pname = name.rpartition(".")
        owners.setdefault(model.get_submodule(mod), []).append((i, pname))
    delta = torch.zeros(len(names), x.shape[0], dtype=x.dtype, device=x.device, requires_grad=True)
    inside = False

    def hook(m: torch.nn.Module, args: tuple, out: torch.Tensor) -> torch.Tensor:
        nonlocal inside
        if inside or not isinstance(out, torch.Tensor) or out.shape[:1] != x.shape[:1]:
            return out
        inside = True
        try:
            for i, pname in owners[m]:
                w = getattr(m, pname).detach()
                tangent = torch.zeros_like(w)
                tangent.view(-1)[0] = 1.0
                _, d = jvp(
                    lambda v, pname=pname: functional_call(m, {pname: v}, args), (w,), (tangent,)
                )
                out = out + delta[i].view(-1, *([1] * (out.dim() - 1))) * d.detach()
        finally:
            inside = False
        return out

    handles = [m.register_forward_hook(hook) for m in owners]
    try:
        with torch.enable_grad():
            f = logits_of(model(x))
            rows = [
                torch.autograd.grad(f[:, k].sum(), delta, retain_graph=True, allow_unused=True)[0]
                for k in range(f.shape[1])
            ]
    finally:
        for h in handles:
            h.remove()
    zeros = torch.zeros_like(delta)
    jac = torch.stack([zeros if r is None else r for r in rows], dim=0)  # K × P × B
    return jac.permute(2, 0, 1).detach(), f.detach()


def fisher_information(
    model: torch.nn.Module, x: torch.Tensor, *, tensors: int = TENSORS, alpha: float = ALPHA
) -> np.ndarray:
    """F (P × P, float64) of the module docstring for the first ``tensors`` parameter tensors of
    ``model`` (run as it is: BatchNorm in eval mode for samples that do not interact)."""
    names = [n for n, _ in model.named_parameters()][:tensors]
    if not names:
        raise ScoreUndefined("the model has no parameters", math.nan)
    jac, logits = per_sample_jacobian(model, x, names)
    jac, logits = jac.to(torch.float64), logits.to(torch.float64)
    k = logits.shape[1]
    p = (1.0 - alpha) * torch.softmax(logits, dim=1) + alpha / k
    cov = torch.diag_embed(p) - p.unsqueeze(2) * p.unsqueeze(1)  # B × K × K
    fisher = torch.einsum("bkp,bkl,blq->pq", jac, cov, jac) / x.shape[0]
    f = fisher.cpu().numpy()
    if not np.all(np.isfinite(f)):
        raise ScoreUndefined("the Fisher information is not finite")
    return f


def decile_entropy(eigs: np.ndarray) -> float:
    """−Σ t log(t + 1e-10), t the deciles q_0.1 … q_0.9 of ``eigs`` normalised to sum 1."""
    lam = np.abs(np.asarray(eigs, dtype=np.float64))
    q = np.quantile(lam, np.arange(1, 10) / 10.0)
    t = q / (q.sum() + 1e-10)
    return float(-(t * np.log(t + 1e-10)).sum())


def _entropy(ctx: Context) -> float:
    from nasntk.proxies.classic import forward_mode

    def make() -> float:
        net = copy.deepcopy(ctx.model)
        with torch.no_grad():
            for name, value in kaiming_params(net).items():
                net.get_parameter(name).copy_(value)
        with forward_mode(net, "eval"):
            try:
                f = fisher_information(net, gaussian_batch(ctx.x))
            except (RuntimeError, ValueError, NotImplementedError) as exc:
                raise ScoreUndefined(
                    f"per-sample Jacobian failed ({type(exc).__name__})", math.nan
                ) from exc
        return decile_entropy(np.linalg.eigvalsh((f + f.T) / 2.0))

    return ctx.cached("vkdnw_entropy", make)


@register(
    "vkdnw",
    direction="maximize",
    needs=("grad",),
    help="VKDNW: entropy of the deciles of the Fisher information's eigenvalues (128 weights)",
    family=FAMILY,
    reference=REFERENCE,
)
def vkdnw(ctx: Context) -> float:
    return _entropy(ctx)


@register(
    "vkdnw_single",
    direction="maximize",
    needs=("grad",),
    help="VKDNW: the number of parameter tensors, ties broken by the vkdnw entropy",
    family=FAMILY,
    reference=REFERENCE,
)
def vkdnw_single(ctx: Context) -> float:
    tensors = sum(1 for _ in ctx.model.parameters())
    return tensors + _entropy(ctx) / (2.0 * math.log(9.0))


register_aggregate(
    "vkdnw_agg",
    ["flops", "az_expressivity", "az_trainability", "jacob_cov", "vkdnw_single"],
    help="VKDNW_agg: Σ log rank of FLOPs, expressivity, trainability, jacob_cov, vkdnw_single",
    family=FAMILY,
    reference=REFERENCE,
)
