"""Tests of the kernel engine against independent references.

The reference is a naive per-sample ``torch.autograd.grad`` loop that builds the Jacobian
J[n, j, :] = ∂f_j(x_n)/∂θ explicitly; for ``bn="batch"`` it differentiates each output of the
whole-batch train-mode forward, and for ``bn="frozen"`` the same forward with the batch mean and
variance detached (a different mechanism from the engine's frozen running statistics).
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from nasntk.errors import NasntkError
from nasntk.kernels import entk, kernel, pntk

torch.set_num_threads(1)
DT = torch.float64


# ---------------------------------------------------------------------------------------------
# reference
# ---------------------------------------------------------------------------------------------
def _detached_batch_norm(
    inp, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5
):
    """F.batch_norm whose train-mode statistics are computed here and held constant."""
    if not training:
        return _ORIG_BN(inp, running_mean, running_var, weight, bias, False, momentum, eps)
    dims = [d for d in range(inp.ndim) if d != 1]
    mean = inp.mean(dims).detach()
    var = inp.var(dims, unbiased=False).detach()
    return _ORIG_BN(inp, mean, var, weight, bias, False, momentum, eps)


_ORIG_BN = F.batch_norm


def naive_jacobian(model, x, bn="eval", params="all", monkeypatch=None):
    """J[n, j, :] for every sample n of x and output j, by one autograd.grad call per entry."""
    m = copy.deepcopy(model)
    m.eval()
    theta = [p for p in m.parameters() if p.requires_grad and (params == "all" or p.ndim >= 2)]
    if bn == "eval":
        rows = []
        for n in range(x.shape[0]):
            out = m(x[n : n + 1])[0]
            rows.append(_rows(out, theta))
        return torch.stack(rows)
    for mod in m.modules():
        if isinstance(mod, nn.modules.batchnorm._BatchNorm):
            mod.train()
    if bn == "frozen":
        monkeypatch.setattr(F, "batch_norm", _detached_batch_norm)
    try:
        out = m(x)
    finally:
        if bn == "frozen":
            monkeypatch.setattr(F, "batch_norm", _ORIG_BN)
    return torch.stack([_rows(out[n], theta) for n in range(x.shape[0])])


def _rows(out, theta):
    grads = []
    for j in range(out.shape[0]):
        g = torch.autograd.grad(out[j], theta, retain_graph=True, allow_unused=True)
        g = [torch.zeros_like(t) if gi is None else gi for gi, t in zip(g, theta, strict=True)]
        grads.append(torch.cat([gi.reshape(-1) for gi in g]).to(DT))
    return torch.stack(grads)


def reference(model, x1, x2, bn="eval", params="all", monkeypatch=None):
    """(eNTK [N1·O, N2·O], pNTK [N1, N2]) from explicit Jacobians."""
    n1 = x1.shape[0]
    if bn == "eval":
        j1 = naive_jacobian(model, x1, bn, params)
        j2 = naive_jacobian(model, x2, bn, params)
    else:
        j = naive_jacobian(model, torch.cat([x1, x2]), bn, params, monkeypatch)
        j1, j2 = j[:n1], j[n1:]
    o = j1.shape[1]
    e = j1.reshape(-1, j1.shape[2]) @ j2.reshape(-1, j2.shape[2]).T
    p = (j1.sum(1) / o**0.5) @ (j2.sum(1) / o**0.5).T
    return e, p


def rel(a, b):
    return ((a - b).norm() / b.norm()).item()


# ---------------------------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------------------------
def small_cnn(o=3, seed=0):
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 5, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(5),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(5, o),
    ).to(DT)
    for mod in net.modules():  # non-trivial affine parameters and running statistics
        if isinstance(mod, nn.BatchNorm2d):
            nn.init.uniform_(mod.weight, 0.5, 1.5)
            nn.init.uniform_(mod.bias, -0.5, 0.5)
            mod.running_mean.uniform_(-0.2, 0.2)
            mod.running_var.uniform_(0.5, 1.5)
    return net


def small_mlp(d=6, h=7, o=4, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(d, h), nn.Tanh(), nn.Linear(h, h), nn.GELU(), nn.Linear(h, o)
    ).to(DT)


def tiny_timm(o=3):
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    return timm.create_model("test_efficientnet", pretrained=False, num_classes=o).to(DT)


def images(n, seed, size=8):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=g, dtype=DT)


# ---------------------------------------------------------------------------------------------
# against the naive reference
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bn", ["eval", "frozen", "batch"])
def test_cnn_matches_naive_reference(bn, monkeypatch):
    net = small_cnn()
    x1, x2 = images(5, 1), images(4, 2)
    e_ref, p_ref = reference(net, x1, x2, bn, monkeypatch=monkeypatch)
    assert rel(entk(net, x1, x2, bn=bn, device="cpu"), e_ref) < 1e-5
    assert rel(pntk(net, x1, x2, bn=bn, device="cpu"), p_ref) < 1e-5


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_symmetric_gram_from_the_upper_blocks_equals_the_full_product(dtype, monkeypatch):
    """A Gram X Xᵀ formed from its row blocks on and above the diagonal (both dtypes, the
    float32 features summed in blocks of BLOCK parameters) equals the float64 product."""
    from nasntk.kernels import gram

    monkeypatch.setattr(gram, "TRIANGLE_ROWS", 3)
    monkeypatch.setattr(gram, "BLOCK", 16)
    calls = []
    bmm = torch.bmm
    monkeypatch.setattr(torch, "bmm", lambda a, b: calls.append(a.shape) or bmm(a, b))
    a = torch.randn(2, 9, 50, dtype=dtype)
    ref = torch.einsum("knp,kmp->knm", a.double(), a.double())
    got = gram.dot(a, a, torch.float64, 1 << 20, symmetric=True)
    assert rel(got, got.transpose(1, 2)) < 1e-6
    assert rel(got, ref) < (1e-6 if dtype == torch.float32 else 1e-12)
    assert all(shape[1] < 9 for shape in calls)  # never the whole 9×9 product: 3 of 4 blocks
    full = gram.dot(a, a, torch.float64, 1 << 20)
    assert rel(full, ref) < (1e-6 if dtype == torch.float32 else 1e-12)


def test_cnn_pntk_from_upper_gram_blocks_matches_naive_reference(monkeypatch):
    from nasntk.kernels import gram

    monkeypatch.setattr(gram, "TRIANGLE_ROWS", 2)
    net = small_cnn()
    x1 = images(6, 1)
    e_ref, p_ref = reference(net, x1, x1, "eval", monkeypatch=monkeypatch)
    assert rel(pntk(net, x1, device="cpu"), p_ref) < 1e-5
    assert rel(entk(net, x1, device="cpu"), e_ref) < 1e-5


@pytest.mark.parametrize("free_gib, budget_gib", [(100, 8), (16, 4), (2, 1)])
def test_default_budget_is_a_quarter_of_free_memory_within_bounds(
    free_gib, budget_gib, monkeypatch
):
    import psutil

    from nasntk.kernels import api

    class Reading:
        available = free_gib << 30

    monkeypatch.setattr(psutil, "virtual_memory", lambda: Reading())
    assert api.default_budget(torch.device("cpu")) == budget_gib << 30
    net, x = small_cnn(), images(5, 1)  # the budget moves no number
    assert rel(pntk(net, x, device="cpu"), pntk(net, x, device="cpu", max_memory=20_000)) < 1e-12


def test_bn_modes_differ():
    """The three BatchNorm modes are genuinely different kernels on a BN network."""
    net = small_cnn()
    x1, x2 = images(5, 1), images(4, 2)
    ks = {bn: pntk(net, x1, x2, bn=bn, device="cpu") for bn in ["eval", "frozen", "batch"]}
    assert rel(ks["eval"], ks["frozen"]) > 1e-3
    assert rel(ks["frozen"], ks["batch"]) > 1e-3


def test_mlp_matches_naive_reference():
    net = small_mlp()
    g = torch.Generator().manual_seed(3)
    x1, x2 = torch.randn(6, 6, generator=g, dtype=DT), torch.randn(3, 6, generator=g, dtype=DT)
    e_ref, p_ref = reference(net, x1, x2)
    assert rel(entk(net, x1, x2, device="cpu"), e_ref) < 1e-5
    assert rel(pntk(net, x1, x2, device="cpu"), p_ref) < 1e-5


@pytest.mark.parametrize("bn", ["eval", "frozen", "batch"])
def test_timm_matches_naive_reference(bn, monkeypatch):
    net = tiny_timm()
    x1, x2 = images(3, 4, size=16), images(2, 5, size=16)
    e_ref, p_ref = reference(net, x1, x2, bn, monkeypatch=monkeypatch)
    assert rel(entk(net, x1, x2, bn=bn, device="cpu"), e_ref) < 1e-5
    assert rel(pntk(net, x1, x2, bn=bn, device="cpu"), p_ref) < 1e-5


def test_weights_only_matches_reference():
    net = small_cnn()
    x1, x2 = images(3, 6), images(2, 7)
    e_ref, p_ref = reference(net, x1, x2, params="weights")
    assert rel(entk(net, x1, x2, params="weights", device="cpu"), e_ref) < 1e-5
    assert rel(pntk(net, x1, x2, params="weights", device="cpu"), p_ref) < 1e-5
    assert rel(pntk(net, x1, x2, device="cpu"), p_ref) > 1e-3  # biases and BN affine do count


# ---------------------------------------------------------------------------------------------
# analytic cases and identities
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bias", [True, False])
def test_linear_model_is_analytic(bias):
    torch.manual_seed(0)
    o, d = 4, 5
    net = nn.Linear(d, o, bias=bias).to(DT)
    x1, x2 = torch.randn(3, d, dtype=DT), torch.randn(6, d, dtype=DT)
    k = x1 @ x2.T + (1.0 if bias else 0.0)
    want = torch.kron(k, torch.eye(o, dtype=DT))
    assert torch.allclose(entk(net, x1, x2, device="cpu"), want, rtol=1e-12, atol=1e-12)
    for kind in ["pntk", "first", "trace", "proj"]:
        got = kernel(net, x1, x2, kind=kind, device="cpu", proj_dim=3, seed=5)
        assert torch.allclose(got, k, rtol=1e-12, atol=1e-12), kind


@settings(max_examples=8, deadline=None)
@given(
    h=st.integers(1, 6),
    o=st.integers(1, 5),
    n1=st.integers(1, 4),
    n2=st.integers(1, 4),
    seed=st.integers(0, 10_000),
)
def test_pntk_is_mean_of_entk_blocks(h, o, n1, n2, seed):
    net = small_mlp(d=3, h=h, o=o, seed=seed)
    g = torch.Generator().manual_seed(seed)
    x1 = torch.randn(n1, 3, generator=g, dtype=DT)
    x2 = torch.randn(n2, 3, generator=g, dtype=DT)
    e = entk(net, x1, x2, device="cpu").reshape(n1, o, n2, o)
    p = pntk(net, x1, x2, device="cpu")
    assert torch.allclose(p, e.sum((1, 3)) / o, rtol=1e-10, atol=1e-12)


def test_reductions_match_their_definitions():
    net = small_cnn(o=4)
    x1, x2 = images(3, 8), images(2, 9)
    o = 4
    e = entk(net, x1, x2, device="cpu").reshape(3, o, 2, o)
    first = kernel(net, x1, x2, kind="first", device="cpu")
    trace = kernel(net, x1, x2, kind="trace", device="cpu")
    proj = kernel(net, x1, x2, kind="proj", proj_dim=5, seed=11, device="cpu")
    assert torch.allclose(first, e[:, 0, :, 0], rtol=1e-10)
    assert torch.allclose(trace, torch.diagonal(e, dim1=1, dim2=3).mean(-1), rtol=1e-10)
    # documented directions: unit-normalised rows of randn(k, O) from Generator().manual_seed(seed)
    p = torch.randn(5, o, generator=torch.Generator().manual_seed(11), dtype=DT)
    p = p / p.norm(dim=1, keepdim=True)
    want = torch.einsum("ri,aibj,rj->ab", p, e, p) / 5
    assert torch.allclose(proj, want, rtol=1e-10)
    other = kernel(net, x1, x2, kind="proj", proj_dim=5, seed=12, device="cpu")
    assert rel(other, proj) > 1e-6


# ---------------------------------------------------------------------------------------------
# properties
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["pntk", "entk", "trace"])
@pytest.mark.parametrize("bn", ["eval", "batch"])
def test_symmetric_and_psd(kind, bn):
    net = small_cnn()
    x = images(6, 10)
    k = kernel(net, x, kind=kind, bn=bn, device="cpu")
    assert torch.equal(k, k.T)
    ev = torch.linalg.eigvalsh(k)
    assert ev.min() > -1e-10 * ev.max()


def test_x2_none_equals_x2_is_x1():
    net = small_cnn()
    x = images(4, 12)
    assert torch.allclose(pntk(net, x, device="cpu"), pntk(net, x, x.clone(), device="cpu"))


@settings(max_examples=6, deadline=None)
@given(
    chunk=st.integers(1, 5),
    memory=st.sampled_from([None, 2_000, 20_000, 200_000]),
    kind=st.sampled_from(["pntk", "entk"]),
    bn=st.sampled_from(["eval", "frozen", "batch"]),
    sym=st.booleans(),
)
def test_chunked_equals_unchunked(chunk, memory, kind, bn, sym):
    net = small_cnn()
    x1, x2 = images(5, 13), (None if sym else images(3, 14))
    whole = kernel(net, x1, x2, kind=kind, bn=bn, device="cpu", max_memory=1 << 30)
    part = kernel(net, x1, x2, kind=kind, bn=bn, device="cpu", chunk_size=chunk, max_memory=memory)
    assert torch.allclose(part, whole, rtol=1e-10, atol=1e-12)


class SharedBN(nn.Module):
    """One BatchNorm layer applied twice (``bn="frozen"``: the statistics of its last call)."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        x = self.bn(torch.relu(self.c2(torch.relu(self.bn(self.c1(x))))))
        return self.head(x.mean((2, 3)))


def test_frozen_statistics_are_recorded_in_the_forward_or_frozen_first(monkeypatch):
    """One structured chunk of the whole batch records the frozen statistics on its way (no
    separate freezing forward); chunks, the vmap path and a BatchNorm layer that runs twice
    freeze first. All give the same kernel."""
    from nasntk.kernels import prepare

    calls = []
    real = prepare.freeze_batch_statistics

    def counting(*args):
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(prepare, "freeze_batch_statistics", counting)
    x = images(5, 31)
    for net, fused in ((small_cnn(), True), (SharedBN().to(DT), False)):
        runs = {}
        for how, opts in {
            "one chunk": {"implementation": "structured"},
            "chunks": {"implementation": "structured", "chunk_size": 2},
            "vmap": {"implementation": "vmap"},
        }.items():
            calls.clear()
            runs[how] = kernel(net, x, bn="frozen", device="cpu", **opts)
            assert len(calls) == (0 if how == "one chunk" and fused else 1)
        assert rel(runs["one chunk"], runs["vmap"]) < 1e-10
        assert rel(runs["chunks"], runs["vmap"]) < 1e-10


@pytest.mark.parametrize(
    "size, conv",
    [
        (6, dict(stride=1, padding=1, dilation=1)),  # 36 positions: patches
        (18, dict(stride=1, padding=1, dilation=1)),  # 324 positions: per kernel offset
        (35, dict(stride=2, padding=(2, 1), dilation=(2, 1))),
        (17, dict(stride=1, padding="same", dilation=2)),
    ],
)
def test_per_sample_conv_gradients_match_autograd_on_both_paths(size, conv):
    from nasntk.kernels import persample

    torch.manual_seed(0)
    layer = nn.Conv2d(3, 4, 3, **conv).to(DT)
    x = images(3, 40, size=size)
    out = layer(x)
    g = torch.randn_like(out)
    ref = torch.stack(  # per-sample autograd: ∂(g_n · conv(x_n))/∂W
        [
            torch.autograd.grad((layer(x[i : i + 1]) * g[i : i + 1]).sum(), layer.weight)[0]
            for i in range(3)
        ]
    ).reshape(3, -1)
    hyper = {k: getattr(layer, k) for k in ("stride", "padding", "dilation", "groups")}
    got = persample.conv_grads(x, g, tuple(layer.weight.shape), hyper, True, False)[0]
    offsets = out.shape[-2] * out.shape[-1] >= persample.OFFSETS_MIN_POSITIONS
    assert offsets == (size in (18, 35, 17))
    assert rel(got, ref) < 1e-12


@pytest.mark.parametrize(
    "conv",
    [
        dict(stride=1, padding=1, dilation=1),
        dict(stride=2, padding=(2, 1), dilation=(2, 1)),
        dict(stride=1, padding="same", dilation=2),
    ],
)
@pytest.mark.parametrize("projections", [None, 2])
def test_per_sample_depthwise_conv_gradients_match_autograd(conv, projections):
    """Grouped per-sample weight gradients of a depthwise conv (the mobile families' layer)
    against per-sample autograd, with one output gradient per sample and with R = 2 (one per
    projection)."""
    from nasntk.kernels import persample

    torch.manual_seed(0)
    layer = nn.Conv2d(4, 4, 3, groups=4, **conv).to(DT)
    x = torch.randn(3, 4, 9, 9, dtype=DT)  # every channel its own values
    out = layer(x)
    r = projections or 1
    g = torch.randn(3, r, *out.shape[1:], dtype=DT)
    ref = torch.stack(
        [
            torch.stack(
                [
                    torch.autograd.grad((layer(x[i : i + 1]) * g[i, k]).sum(), layer.weight)[0]
                    for k in range(r)
                ]
            ).reshape(r, -1)
            for i in range(3)
        ]
    )
    hyper = {k: getattr(layer, k) for k in ("stride", "padding", "dilation", "groups")}
    gin = g if projections else g[:, 0]
    got = persample.conv_grads(x, gin, tuple(layer.weight.shape), hyper, True, False)[0]
    assert rel(got, ref if projections else ref[:, 0]) < 1e-12


def test_float32_model_accumulates_in_requested_dtype():
    net = small_cnn().float()
    x = images(4, 15).float()
    k64 = pntk(net, x, device="cpu")
    k32 = pntk(net, x, device="cpu", dtype=torch.float32)
    assert k64.dtype == torch.float64 and k32.dtype == torch.float32
    ref = pntk(small_cnn(), x.double(), device="cpu")
    assert rel(k64, ref) < 1e-5


def test_model_is_not_modified():
    net = small_cnn()
    net.train()
    net[0].weight.requires_grad_(False)
    before = copy.deepcopy(net.state_dict())
    for bn in ["eval", "frozen", "batch"]:
        kernel(net, images(4, 16), images(3, 17), bn=bn, device="cpu")
    assert net.training and all(m.training for m in net.modules())
    assert not net[0].weight.requires_grad and net[3].weight.requires_grad
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    # no gradient, hook or new buffer is left on the caller's modules
    assert all(p.grad is None for p in net.parameters())
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in net.modules())


def test_private_copy_shares_storage_and_owns_everything_else():
    from nasntk.kernels.prepare import private_copy

    net = small_cnn().train()
    cp = private_copy(net)
    assert cp is not net and all(
        a is not b for a, b in zip(cp.modules(), net.modules(), strict=True)
    )
    for (name, p), q in zip(net.named_parameters(), cp.parameters(), strict=True):
        assert q is not p and q.data_ptr() == p.data_ptr(), name  # the same numbers, no copy
    bn = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)][0]
    bn_cp = [m for m in cp.modules() if isinstance(m, nn.BatchNorm2d)][0]
    assert bn_cp.running_mean.data_ptr() != bn.running_mean.data_ptr()  # its own statistics
    cp.eval()
    cp[0].weight.requires_grad_(False)
    cp[0].register_forward_hook(lambda *a: None)
    assert net.training and net[0].weight.requires_grad and not net[0]._forward_hooks

    class KeepsAModuleAside(nn.Module):  # a module outside _modules: only a deep copy remaps it
        def __init__(self) -> None:
            super().__init__()
            self.body = small_cnn()
            self.__dict__["alias"] = self.body[0]

        def forward(self, x):
            return self.body(x)

    odd = KeepsAModuleAside()
    cp = private_copy(odd)
    assert cp.alias is cp.body[0] and cp.alias is not odd.body[0]
    x = images(5, 18)
    assert torch.allclose(pntk(odd, x, bn="frozen"), pntk(odd.body, x, bn="frozen"))


def test_frozen_parameters_do_not_count():
    net = small_mlp()
    for p in net[0].parameters():
        p.requires_grad_(False)
    x = torch.randn(3, 6, dtype=DT)
    e_ref, p_ref = reference(net, x, x)
    assert rel(pntk(net, x, device="cpu"), p_ref) < 1e-10


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------
def test_error_no_trainable_parameters():
    net = small_mlp()
    net.requires_grad_(False)
    with pytest.raises(NasntkError, match="no trainable"):
        pntk(net, torch.randn(2, 6, dtype=DT))
    with pytest.raises(NasntkError, match="no trainable weight"):
        pntk(
            nn.Sequential(nn.Flatten(), nn.BatchNorm1d(6)).to(DT),
            torch.randn(2, 6),
            params="weights",
        )


def test_error_feature_shapes_differ():
    with pytest.raises(NasntkError, match="same feature shape"):
        pntk(small_mlp(), torch.randn(2, 6, dtype=DT), torch.randn(2, 5, dtype=DT))


class _Tuple(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 2)

    def forward(self, x):
        return self.lin(x), x


def test_error_output_not_n_by_o():
    with pytest.raises(NasntkError, match=r"\[N, O\]"):  # [N, 2, 3]
        pntk(nn.Sequential(nn.Linear(4, 6), nn.Unflatten(1, (2, 3))), torch.randn(3, 4))
    with pytest.raises(NasntkError, match=r"\[N, O\]"):  # [N·O], no sample dimension
        pntk(nn.Sequential(nn.Linear(4, 2), nn.Flatten(0)), torch.randn(3, 4))
    with pytest.raises(NasntkError, match="tensor"):
        pntk(_Tuple(), torch.randn(3, 4))


@pytest.mark.parametrize(
    "opts, msg",
    [
        ({"kind": "bogus"}, "kind"),
        ({"bn": "train"}, "bn"),
        ({"params": "biases"}, "params"),
        ({"implementation": "fast"}, "implementation"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"max_memory": -1}, "max_memory"),
        ({"kind": "proj", "proj_dim": 0}, "proj_dim"),
    ],
)
def test_error_bad_options(opts, msg):
    with pytest.raises(NasntkError, match=msg):
        kernel(small_mlp(), torch.randn(2, 6, dtype=DT), **opts)


# ---------------------------------------------------------------------------------------------
# the per-layer (structured) path against the reference, on every layer form it handles
# ---------------------------------------------------------------------------------------------
class Zoo(nn.Module):
    """Convs (asymmetric 'same', dilated+grouped, reflect-padded strided, depthwise), GroupNorm,
    a layer-scale view multiplied in place, a class token (expand), a position embedding (add),
    LayerNorm, a Linear used twice (tied), a parameter used in an unsupported op, and a learned
    query whose branch does not reach the input."""

    def __init__(self):
        super().__init__()
        self.conv_same = nn.Conv2d(3, 4, 4, padding="same")
        self.conv_dil = nn.Conv2d(4, 4, 3, padding=2, dilation=2, groups=2)
        self.conv_reflect = nn.Conv2d(4, 6, 3, stride=2, padding=1, padding_mode="reflect")
        self.dw = nn.Conv2d(6, 6, 3, padding=1, groups=6, bias=False)
        self.gn = nn.GroupNorm(2, 6)
        self.gamma = nn.Parameter(torch.rand(6) + 0.5)
        self.tok = nn.Parameter(torch.randn(1, 1, 6))
        self.pos = nn.Parameter(0.1 * torch.randn(1, 5, 6))
        self.ln = nn.LayerNorm(6)
        self.shared = nn.Linear(6, 6)
        self.scale = nn.Parameter(torch.tensor(1.2))
        self.latent = nn.Parameter(torch.randn(1, 2, 6))
        self.q = nn.Linear(6, 6)
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        x = torch.tanh(self.conv_reflect(self.conv_dil(self.conv_same(x))))
        x = self.gn(self.dw(x))
        x = x.mul_(self.gamma.view(1, -1, 1, 1))
        t = F.avg_pool2d(x, 2).flatten(2).transpose(1, 2)  # [n, 4, 6]
        t = torch.cat([self.tok.expand(t.shape[0], -1, -1), t], 1) + self.pos
        t = self.shared(torch.relu(self.shared(self.ln(t)))) * self.scale**2
        attn = torch.softmax(self.q(self.latent) @ t.transpose(1, 2), -1)  # [n, 2, 5]
        return self.head((attn @ t).mean(1))


@pytest.mark.filterwarnings("ignore:Using padding=.same.")
def test_structured_path_routes_each_layer_form():
    from nasntk.kernels.prepare import prepare
    from nasntk.kernels.projections import projection
    from nasntk.kernels.structured import probe

    torch.manual_seed(0)
    net = Zoo().to(DT)
    setup = prepare(net, images(2, 20), None, device="cpu")
    plans, leftovers = probe(setup, projection("pntk", 3, dtype=DT), False)
    handled = {n for p in plans for n in (p.site.weight, p.site.bias) if n}
    assert set(leftovers) == {
        "shared.weight",
        "shared.bias",
        "scale",
        "latent",
        "q.weight",
        "q.bias",
    }
    assert handled == {n for n, _ in net.named_parameters()} - set(leftovers)


@pytest.mark.parametrize("kind", ["pntk", "entk"])
def test_structured_matches_naive_reference_on_every_layer_form(kind):
    torch.manual_seed(0)
    net = Zoo().to(DT)
    x1, x2 = images(3, 21), images(2, 22)
    e_ref, p_ref = reference(net, x1, x2)
    got = kernel(net, x1, x2, kind=kind, implementation="structured", device="cpu")
    assert rel(got, e_ref if kind == "entk" else p_ref) < 1e-5


class SequenceFirst(nn.Module):
    """A linear layer applied to [1, samples, features]: on one sample its input looks
    batch-first, only a batch shows the samples are in dimension 1."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.mix = nn.Linear(4, 4)
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        t = torch.tanh(self.conv(x)).mean((2, 3)).unsqueeze(0)  # [1, n, 4]
        return self.head(torch.tanh(self.mix(t))[0])


def test_one_sample_probe_is_checked_on_the_first_batch(monkeypatch):
    """The probe runs on one sample; a site whose sample dimension is not first is caught on the
    first batched forward -- or, with one-sample chunks, by a two-sample look -- and the model
    is probed again on one and two samples, which leaves that layer to the generic path."""
    from nasntk.kernels import api, structured

    sizes = []

    def recording(*args, **kwargs):
        sizes.append(kwargs["sizes"])
        return structured.trace_probe(*args, **kwargs)

    monkeypatch.setattr(api, "trace_probe", recording)
    kernel(small_cnn().to(DT), images(3, 1), implementation="structured", device="cpu")
    assert sizes == [(1,)]  # every layer carries the samples first: no second probe
    torch.manual_seed(0)
    net = SequenceFirst().to(DT)
    x1, x2 = images(3, 21), images(2, 22)
    _, p_ref = reference(net, x1, x2)
    for chunk in (None, 1):
        sizes.clear()
        got = kernel(net, x1, x2, implementation="structured", chunk_size=chunk, device="cpu")
        assert sizes == [(1,), (1, 2)]
        assert rel(got, p_ref) < 1e-5


@pytest.mark.parametrize("bn", ["eval", "frozen", "batch"])
def test_kernel_fn_equals_kernel_on_every_batch_and_probes_once(bn, monkeypatch):
    """A kernel function is set up once: each batch gives what a fresh ``kernel`` call gives
    (frozen BatchNorm takes each batch's own statistics), the per-layer probe runs once per input
    shape, and in-place updates of the caller's parameters are seen."""
    from nasntk.kernels import api, kernel_fn, structured

    traced = []

    def counting(*args, **kwargs):
        traced.append(kwargs["sizes"])
        return structured.trace_probe(*args, **kwargs)

    monkeypatch.setattr(api, "trace_probe", counting)
    net = small_cnn()
    fn = kernel_fn(net, bn=bn, device="cpu")
    batches = [(images(5, 31), None), (images(4, 32), images(3, 33)), (images(6, 34), None)]
    for x1, x2 in batches:
        assert torch.allclose(fn(x1, x2), kernel(net, x1, x2, bn=bn, device="cpu"), atol=1e-12)
    if bn != "batch":  # the structured path: one probe for the three batches of fn
        assert traced.count((1,)) == 1 + len(batches)  # fn once, each kernel() call once
    with torch.no_grad():
        net[-1].weight.mul_(2.0)  # an optimiser-like in-place step on the caller's model
    x = images(5, 35)
    assert torch.allclose(fn(x), kernel(net, x, bn=bn, device="cpu"), atol=1e-12)
    small = images(3, 36, size=6)  # another input shape: probed anew
    assert torch.allclose(fn(small), kernel(net, small, bn=bn, device="cpu"), atol=1e-12)


@pytest.mark.parametrize("name", ["test_vit", "test_convnext", "test_nfnet"])
def test_structured_equals_vmap_on_timm(name):
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    kw = {"img_size": 32, "patch_size": 8} if "vit" in name else {}
    net = timm.create_model(name, pretrained=False, num_classes=3, **kw).to(DT)
    x1 = torch.randn(3, 3, 32, 32, dtype=DT)
    x2 = torch.randn(2, 3, 32, 32, dtype=DT)
    for kind in ["pntk", "trace"]:
        fast = kernel(net, x1, x2, kind=kind, implementation="structured", device="cpu")
        slow = kernel(net, x1, x2, kind=kind, implementation="vmap", device="cpu")
        assert rel(fast, slow) < 1e-10


def test_structured_refuses_batch_statistics():
    with pytest.raises(NasntkError, match="structured"):
        pntk(small_cnn(), images(3, 23), bn="batch", implementation="structured")


@pytest.mark.parametrize("form", ["mat", "raw", "factor"])
@pytest.mark.parametrize("kind", ["pntk", "entk"])
@pytest.mark.parametrize("budget", [None, 20_000])
def test_every_site_form_equals_vmap(form, kind, budget, monkeypatch):
    """Force one storage form on every site that allows it; a tiny budget also forces row
    blocks, output-channel slices and several forward passes."""
    from nasntk.kernels import structured

    def forced(site, factorable, *rest):
        return "mat" if form == "factor" and not factorable else form

    monkeypatch.setattr(structured, "choose_form", forced)
    torch.manual_seed(0)
    for net in (Zoo().to(DT), small_cnn()):
        x1, x2 = images(3, 24), images(2, 25)
        for b in (x2, None):
            opts = {"kind": kind, "device": "cpu", "max_memory": budget}
            fast = kernel(net, x1, b, implementation="structured", **opts)
            slow = kernel(net, x1, b, implementation="vmap", **opts)
            assert rel(fast, slow) < 1e-10


# ---------------------------------------------------------------------------------------------
# comparison helpers and the CLI demo
# ---------------------------------------------------------------------------------------------
def test_kron_error_and_condition_number_against_definitions():
    from nasntk.kernels import condition_number, kron_error

    g = torch.Generator().manual_seed(0)
    k = torch.randn(3, 3, generator=g, dtype=DT)
    k = k @ k.T + torch.eye(3, dtype=DT)
    noise = 0.01 * torch.randn(6, 6, generator=g, dtype=DT)
    e = torch.kron(k, torch.eye(2, dtype=DT)) + noise
    assert kron_error(e, k, 2) == pytest.approx((noise.norm() / e.norm()).item(), rel=1e-12)
    ev = torch.linalg.eigvalsh(k)
    assert condition_number(k) == pytest.approx((ev[-1] / ev[0]).item(), rel=1e-10)


def test_cli_kernel_demo(capsys):
    pytest.importorskip("timm")
    from nasntk.cli.main import main

    assert main(["kernel", "--model", "test_efficientnet", "--n", "3", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "pntk" in out and "eNTK" in out and "30×30" in out
    assert main(["kernel", "--model", "no_such_model", "--n", "3"]) == 2
    assert "no_such_model" in capsys.readouterr().err


@pytest.mark.parametrize(
    "implementation, bn", [("structured", "eval"), ("vmap", "eval"), ("vmap", "batch")]
)
def test_nothing_outlives_the_call(implementation, bn, monkeypatch):
    """The private model copy (hence any autograd graph holding its parameters) is freed."""
    import gc
    import weakref

    from nasntk.kernels import api

    refs = []
    real = api.prepare_model

    def spy(*args, **kwargs):
        prepared = real(*args, **kwargs)
        refs.append(weakref.ref(next(iter(prepared.params.values()))))
        return prepared

    monkeypatch.setattr(api, "prepare_model", spy)
    torch.manual_seed(0)
    kernel(Zoo().to(DT), images(3, 26), kind="trace", bn=bn, implementation=implementation)
    gc.collect()
    assert refs and refs[0]() is None


def test_batchnorm_without_running_stats_uses_batch_statistics_held_fixed(monkeypatch):
    """A BN layer with track_running_stats=False has nothing to evaluate with: in eval mode it
    is treated as in frozen mode (batch statistics, held constant)."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, track_running_stats=False), nn.ReLU(),
        nn.Flatten(), nn.Linear(4 * 6 * 6, 3),
    ).to(DT)  # fmt: skip
    x1, x2 = images(3, 27), images(2, 28)
    _, p_ref = reference(net, x1, x2, bn="frozen", monkeypatch=monkeypatch)
    for implementation in ["structured", "vmap"]:
        got = pntk(net, x1, x2, bn="eval", implementation=implementation, device="cpu")
        assert rel(got, p_ref) < 1e-5
