"""Per-sample parameter gradients of single layers from their input and output gradient.

With independent samples, one batched backward of Σₙ p·f(xₙ) gives, at a layer with input aₙ and
output yₙ, the per-sample output gradient gₙ = ∂(p·f(xₙ))/∂yₙ. The per-sample gradient of the
layer's parameters is then a function of (aₙ, gₙ) alone:

* linear  y_t = W a_t + b (t over tokens):        ∂W = Σ_t g_t a_tᵀ,          ∂b = Σ_t g_t
* conv2d  (patches a_l of the unfolded input):     ∂W = Σ_l g_l a_lᵀ per group, ∂b = Σ_l g_l
* norms   y = x̂ ⊙ w + b (x̂ the normalised input):  ∂w = Σ g ⊙ x̂ over non-channel dims, ∂b = Σ g

For linear and ungrouped conv layers the gradient factorises, so the Gram of two samples is
⟨∂Wₙ, ∂Wₘ⟩ = Σ_{t,s} (aₙₜ·aₘₛ)(gₙₜ·gₘₛ): :func:`factors` returns (a, g) for that form, with a
column of ones appended to a when the bias counts.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def conv_padding(padding, kernel: tuple[int, int], dilation: tuple[int, int]) -> tuple[int, ...]:
    """F.pad amounts (left, right, top, bottom) equivalent to conv2d's ``padding`` argument."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        total = [d * (k - 1) for d, k in zip(dilation, kernel, strict=True)]  # "same"
        return (total[1] // 2, total[1] - total[1] // 2, total[0] // 2, total[0] - total[0] // 2)
    ph, pw = (padding, padding) if isinstance(padding, int) else tuple(padding)
    return (pw, pw, ph, ph)


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def _padded(x: Tensor, kernel: tuple[int, int], hyper: dict) -> tuple[Tensor, tuple[int, int]]:
    """The input with any asymmetric padding applied, and the remaining symmetric padding."""
    dil = _pair(hyper["dilation"])
    left, right, top, bottom = conv_padding(hyper["padding"], kernel, dil)
    if left == right and top == bottom:
        return x, (top, left)
    return F.pad(x, (left, right, top, bottom)), (0, 0)


def _offset_views(x: Tensor, kernel: tuple[int, int], hyper: dict) -> list[Tensor]:
    """The padded input's strided views [n, C, H′, W′], one per kernel offset (i, j) in
    row-major order: view (i, j) holds the input value each output position meets at (i, j)."""
    x, (ph, pw) = _padded(x, kernel, hyper)
    if ph or pw:
        x = F.pad(x, (pw, pw, ph, ph))
    (sh, sw), (dh, dw) = _pair(hyper["stride"]), _pair(hyper["dilation"])
    h, w = x.shape[-2:]
    ho, wo = (h - dh * (kernel[0] - 1) - 1) // sh + 1, (w - dw * (kernel[1] - 1) - 1) // sw + 1
    return [
        x[:, :, i * dh : i * dh + sh * (ho - 1) + 1 : sh, j * dw : j * dw + sw * (wo - 1) + 1 : sw]
        for i in range(kernel[0])
        for j in range(kernel[1])
    ]


def conv_patches(x: Tensor, kernel: tuple[int, int], hyper: dict) -> Tensor:
    """Input patches [n, L, C_in·kh·kw] of a conv2d (channel-major, like the weight).

    Built from kh·kw strided slices (much faster than ``F.unfold`` on CPU).
    """
    patches = torch.stack(_offset_views(x, kernel, hyper), 2)  # [n, C, k², ho, wo]
    n, c, _, ho, wo = patches.shape
    return patches.reshape(n, c * kernel[0] * kernel[1], ho * wo).transpose(1, 2)


#: Output positions from which an ungrouped conv's per-sample weight gradients are formed per
#: kernel offset rather than from the unfolded patches (one CPU thread, 3×3 kernel: 4× faster
#: at 32×32 and 1.3× at 16×16 maps, 1.2× slower at 8×8; experiments/README.md).
OFFSETS_MIN_POSITIONS = 256


def _conv_weight_grads(x: Tensor, g: Tensor, kernel: tuple[int, int], hyper: dict) -> Tensor:
    """Per-sample weight gradients [n, M, C_in·kh·kw] of an ungrouped conv2d, M = (R·)C_out.

    ∂W[m, c, i, j] = Σ_l g[m, l] · x_pad[c, l shifted by (i·dh, j·dw)]: one batched product per
    kernel offset (i, j) with that strided view of the input -- the same numbers as the product
    with the unfolded patches, without building the kh·kw-times larger patch tensor.
    """
    n, c = x.shape[:2]
    gg = g.reshape(n, g.shape[1], -1)
    out = torch.empty(n, gg.shape[1], c, *kernel, dtype=g.dtype, device=g.device)
    for k, xs in enumerate(_offset_views(x, kernel, hyper)):
        out[:, :, :, k // kernel[1], k % kernel[1]] = torch.bmm(gg, xs.reshape(n, c, -1).mT)
    return out.reshape(n, gg.shape[1], -1)


def linear_grads(a: Tensor, g: Tensor, has_w: bool, has_b: bool) -> list[Tensor]:
    """Per-sample gradients of a linear layer: [weight [n, ..., d_out·d_in]] + [bias [n, ..., d_out]].

    a [n, T, d_in]; g [n, T, d_out] or [n, R, T, d_out] (one gradient per projection r).
    """
    parts = []
    lead = g.shape[:-2]
    if has_w:
        aa = a if g.ndim == 3 else a.unsqueeze(1)
        parts.append(torch.matmul(g.transpose(-1, -2), aa).reshape(*lead, -1))
    if has_b:
        parts.append(g.sum(-2))
    return parts


def conv_grads(
    x: Tensor, g: Tensor, weight_shape, hyper: dict, has_w: bool, has_b: bool
) -> list[Tensor]:
    """Per-sample gradients of a conv2d: [weight [n, (R,) P_w]] + [bias [n, (R,) C_out]].

    x is its input [n, C_in, H, W]; g the output gradient [n, C_out, H′, W′], or [n, R, C_out,
    H′, W′] for R projections. Ungrouped: one batched matrix product of the gradients with the
    input patches, or, on large maps, one per kernel offset (:func:`_conv_weight_grads`).
    Grouped: the weight gradient of one convolution with the samples stacked as channel groups
    (n·groups groups).
    """
    n = x.shape[0]
    lead = g.shape[:-3]
    cout = g.shape[-3]
    parts = []
    if has_w:
        groups = hyper["groups"]
        kernel = tuple(weight_shape[2:])
        if groups == 1 and g.shape[-2] * g.shape[-1] >= OFFSETS_MIN_POSITIONS:
            w = _conv_weight_grads(x, g.reshape(n, -1, *g.shape[-2:]), kernel, hyper)
        elif groups == 1:
            patches = conv_patches(x, kernel, hyper)  # [n, L, d_in]
            w = torch.bmm(g.reshape(n, -1, patches.shape[1]), patches)
        else:
            xp, pad = _padded(x, tuple(weight_shape[2:]), hyper)
            gs = g.reshape(n, -1, cout, *g.shape[-2:])
            w = torch.stack(
                [
                    torch.nn.grad.conv2d_weight(
                        xp.reshape(1, -1, *xp.shape[2:]),
                        (n * cout, *weight_shape[1:]),
                        gs[:, k].reshape(1, n * cout, *g.shape[-2:]),
                        stride=_pair(hyper["stride"]),
                        padding=pad,
                        dilation=_pair(hyper["dilation"]),
                        groups=n * groups,
                    ).reshape(n, -1)
                    for k in range(gs.shape[1])
                ],
                1,
            )
        parts.append(w.reshape(*lead, -1))
    if has_b:
        parts.append(g.sum((-2, -1)))
    return parts


def factors(a: Tensor, g: Tensor, has_w: bool, has_b: bool) -> tuple[Tensor, Tensor]:
    """(a′ [n, T, d′], g [n, T, d_out]) with ⟨∂θₙ, ∂θₘ⟩ = Σ_{t,s} (a′ₙₜ·a′ₘₛ)(gₙₜ·gₘₛ)."""
    if has_b:
        ones = torch.ones(*a.shape[:2], 1, dtype=a.dtype, device=a.device)
        a = torch.cat([a, ones], 2) if has_w else ones
    return a, g


def _affine_grads(xhat: Tensor, g: Tensor, channel_dims: list[int], has_w: bool, has_b: bool):
    n = g.shape[0]
    keep = set(channel_dims) | {0}
    dims = [d for d in range(g.ndim) if d not in keep]
    parts = []
    if has_w:
        gw = (g * xhat).sum(dims) if dims else g * xhat
        parts.append(gw.reshape(n, -1))
    if has_b:
        parts.append((g.sum(dims) if dims else g).reshape(n, -1))
    return torch.cat(parts, 1) if len(parts) > 1 else parts[0]


def batch_norm_grads(x: Tensor, g: Tensor, hyper: dict, has_w: bool, has_b: bool) -> Tensor:
    """[n, 2C] per-sample affine gradients of an eval-mode batch norm (fixed mean μ, var σ²).

    Σ g·x̂ = (Σ g·x − μ Σ g)/√(σ² + ε) over the non-channel dimensions, without forming x̂.
    """
    n, c = x.shape[:2]
    gs = g.reshape(n, c, -1).sum(2)
    parts = []
    if has_w:
        gx = torch.einsum("ncl,ncl->nc", g.reshape(n, c, -1), x.reshape(n, c, -1))
        rstd = torch.rsqrt(hyper["running_var"] + hyper["eps"])
        parts.append((gx - hyper["running_mean"] * gs) * rstd)
    if has_b:
        parts.append(gs)
    return torch.cat(parts, 1) if len(parts) > 1 else parts[0]


def layer_norm_grads(x: Tensor, g: Tensor, hyper: dict, has_w: bool, has_b: bool) -> Tensor:
    """Per-sample affine gradients of a layer norm over the last len(normalized_shape) dims."""
    k = len(tuple(hyper["normalized_shape"]))
    dims = list(range(x.ndim - k, x.ndim))
    mean = x.mean(dims, keepdim=True)
    var = x.var(dims, unbiased=False, keepdim=True)
    xhat = (x - mean) * torch.rsqrt(var + hyper["eps"])
    return _affine_grads(xhat, g, dims, has_w, has_b)


def group_norm_grads(x: Tensor, g: Tensor, hyper: dict, has_w: bool, has_b: bool) -> Tensor:
    """Per-sample affine gradients of a group norm (channels split into ``num_groups``)."""
    n, c = x.shape[:2]
    xg = x.reshape(n, hyper["num_groups"], -1)
    mean = xg.mean(2, keepdim=True)
    var = xg.var(2, unbiased=False, keepdim=True)
    xhat = ((xg - mean) * torch.rsqrt(var + hyper["eps"])).reshape(x.shape)
    return _affine_grads(xhat, g, [1], has_w, has_b)


def tokens(shape: tuple[int, ...]) -> int:
    """Number of positions sharing a linear layer's weight in an input of ``shape`` [n, ..., d]."""
    return math.prod(shape[1:-1])


def broadcast_grads(g: Tensor, q_shape: tuple[int, ...], other: Tensor | None = None) -> Tensor:
    """[n, numel(q)] per-sample gradients of q broadcast into a batched output.

    For ``o + q`` and ``q.expand(n, ...)`` the gradient is the output gradient g summed over the
    dimensions q is broadcast along (the sample dimension kept); for ``o * q`` it is g·o summed.
    """
    if other is not None:
        g = g * other
    n = g.shape[0]
    qs = (1,) * (g.ndim - len(q_shape)) + tuple(q_shape)
    dims = [d for d in range(1, g.ndim) if qs[d] == 1 and g.shape[d] != 1]
    if dims:
        g = g.sum(dims, keepdim=True)
    return g.reshape(n, -1)
