"""Tests of the score registry (nasntk.proxies), its maths (nasntk.spectral) and the baselines.

References are independent: numpy / scikit-learn on known matrices, hand-computed tiny networks,
and a naive per-sample autograd pNTK.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nasntk import proxies, spectral
from nasntk.data import Batch
from nasntk.errors import NasntkError
from nasntk.proxies import classic as baselines
from nasntk.proxies import scoring
from nasntk.search_spaces.base import SearchSpace
from nasntk.spectral import ScoreUndefined


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------
def naive_pntk(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """pNTK by a per-sample autograd loop: rows ∇θ (Σ_j f_j(x_i) / √O), K = G Gᵀ (float64)."""
    model = copy.deepcopy(model).double().eval()
    params = [p for p in model.parameters() if p.requires_grad]
    rows = []
    for i in range(x.shape[0]):
        out = model(x[i : i + 1].double())
        fbar = out.sum() / math.sqrt(out.shape[1])
        grads = torch.autograd.grad(fbar, params, allow_unused=True)
        rows.append(torch.cat([g.reshape(-1) for g in grads if g is not None]))
    g = torch.stack(rows)
    return g @ g.T


def naive_kernel_fn(model, x, **_):
    return naive_pntk(model, x)


def spd(n: int, cond: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    lam = np.geomspace(1.0, cond, n)
    return (q * lam) @ q.T


def small_cnn(in_chans: int = 1, classes: int = 4, bn: bool = False) -> nn.Module:
    layers = [nn.Conv2d(in_chans, 6, 3, padding=1)]
    if bn:
        layers.append(nn.BatchNorm2d(6))
    layers += [nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(24, classes)]
    return nn.Sequential(*layers)


def toy_batch(n: int = 16, classes: int = 4, chans: int = 1, size: int = 8, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    x = torch.randn(n, chans, size, size, generator=g) + y.view(-1, 1, 1, 1).float()
    return Batch(x=x, y=y, num_classes=classes, source="toy")


# ------------------------------------------------------------------------------------------------
# spectral maths
# ------------------------------------------------------------------------------------------------
def test_condition_number_matches_numpy_cond():
    k = spd(12, 1e4, seed=1)
    got = spectral.condition_number(spectral.eigenvalues(k))
    assert got == pytest.approx(math.log10(np.linalg.cond(k)), rel=1e-9)
    assert got == pytest.approx(4.0, rel=1e-9)


def test_condition_number_singular_and_nonfinite_give_inf_with_reason():
    v = np.random.default_rng(0).standard_normal((6, 2))
    with pytest.raises(ScoreUndefined, match="singular") as err:
        spectral.condition_number(spectral.eigenvalues(v @ v.T))  # rank 2 of 6
    assert err.value.value is None  # reported as the worst value of the score's direction
    bad = spd(4, 10.0)
    bad[0, 1] = np.nan
    with pytest.raises(ScoreUndefined, match="non-finite") as err:
        spectral.eigenvalues(bad)
    assert err.value.value is None  # reported as the worst value of the score's direction
    with pytest.raises(ScoreUndefined):
        spectral.condition_number(np.zeros(3))


def test_centered_eigenvalues_are_those_of_hkh_without_the_zero():
    k = spd(9, 1e3, seed=2) + 5.0  # a strong constant mode, as in eval-mode kernels
    n = k.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    ref = np.linalg.eigvalsh(h @ k @ h)
    ref = np.delete(ref, np.argmin(np.abs(ref)))  # HKH has exactly one zero eigenvalue here
    got = spectral.centered_eigenvalues(k)
    assert len(got) == n - 1
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-9)
    # centring removes the constant mode: the centred condition number is the smaller one
    assert spectral.condition_number(got) < spectral.condition_number(np.linalg.eigvalsh(k))


def test_effective_rank_limits():
    assert spectral.effective_rank(np.ones(7)) == pytest.approx(7.0)
    assert spectral.effective_rank(np.array([0.0, 0.0, 3.0])) == pytest.approx(1.0)
    # p = (1/4, 3/4): exp(−¼ log ¼ − ¾ log ¾)
    ref = math.exp(-(0.25 * math.log(0.25) + 0.75 * math.log(0.75)))
    assert spectral.effective_rank(np.array([1.0, 3.0])) == pytest.approx(ref)


def test_stratified_split_keeps_every_class_on_both_sides():
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1, 0, 3])
    tr, te = spectral.stratified_split(y, 0.5)
    assert sorted(np.concatenate([tr, te]).tolist()) == list(range(len(y)))
    for c in (0, 1, 2):
        assert c in y[tr] and c in y[te]
    assert 3 in y[tr] and 3 not in y[te]  # a single sample goes to train
    # the first ⌊m/2 + ½⌋ of each class, in order: class 0 → 0, 3; 1 → 1, 4; 2 → 2; 3 → 9
    assert tr.tolist() == [0, 1, 2, 3, 4, 9]


def test_kernel_regression_matches_sklearn_kernel_ridge():
    from sklearn.kernel_ridge import KernelRidge

    rng = np.random.default_rng(3)
    feats = rng.standard_normal((30, 12))
    k = feats @ feats.T
    y = rng.integers(0, 3, size=30)
    targets = spectral.one_hot_centered(y, 3)
    tr, te = np.arange(20), np.arange(20, 30)
    lam = 0.05
    got = spectral.kernel_regression(k[np.ix_(tr, tr)], k[np.ix_(te, tr)], targets[tr], ridge=lam)
    alpha = lam * np.mean(np.diag(k)[tr])  # sklearn solves (K + alpha I) c = y
    ref = KernelRidge(kernel="precomputed", alpha=alpha).fit(k[np.ix_(tr, tr)], targets[tr])
    np.testing.assert_allclose(got, ref.predict(k[np.ix_(te, tr)]), rtol=1e-8, atol=1e-10)
    # scale invariance of the relative ridge
    got2 = spectral.kernel_regression(
        7.0 * k[np.ix_(tr, tr)], 7.0 * k[np.ix_(te, tr)], targets[tr], ridge=lam
    )
    np.testing.assert_allclose(got2, got, rtol=1e-8)


def test_kernel_regression_scores_accuracy_and_mse_by_hand():
    from sklearn.kernel_ridge import KernelRidge

    rng = np.random.default_rng(4)
    y = np.repeat(np.arange(3), 6)
    feats = rng.standard_normal((18, 5)) + 4.0 * np.eye(5)[y]
    k = feats @ feats.T
    got = spectral.kernel_regression_scores(k, y, 3, train_frac=0.5, ridge=1e-2)
    tr, te = spectral.stratified_split(y, 0.5)
    t = np.eye(3)[y] - 1.0 / 3.0
    alpha = 1e-2 * np.mean(np.diag(k)[tr])
    pred = KernelRidge(kernel="precomputed", alpha=alpha).fit(k[np.ix_(tr, tr)], t[tr])
    pred = pred.predict(k[np.ix_(te, tr)])
    assert got["accuracy"] == pytest.approx(np.mean(pred.argmax(1) == y[te]))
    assert got["mse"] == pytest.approx(np.mean((pred - t[te]) ** 2))
    assert got["accuracy"] > 0.8  # separable clusters: the regression works


def test_regression_with_kronecker_kernel_equals_per_class_regression():
    """Paper identity: regression with pNTK ⊗ I_O on flattened targets = per-class with pNTK."""
    rng = np.random.default_rng(5)
    o = 4
    feats = rng.standard_normal((14, 6))
    k = feats @ feats.T
    targets = spectral.one_hot_centered(rng.integers(0, o, size=14), o)
    tr, te = np.arange(9), np.arange(9, 14)
    per_class = spectral.kernel_regression(
        k[np.ix_(tr, tr)], k[np.ix_(te, tr)], targets[tr], ridge=0.1
    )
    big = np.kron(k, np.eye(o))  # row n·O + j
    rtr = (tr[:, None] * o + np.arange(o)).ravel()
    rte = (te[:, None] * o + np.arange(o)).ravel()
    flat = spectral.kernel_regression(
        big[np.ix_(rtr, rtr)], big[np.ix_(rte, rtr)], targets[tr].reshape(-1, 1), ridge=0.1
    )
    np.testing.assert_allclose(flat.reshape(len(te), o), per_class, rtol=1e-10, atol=1e-12)


def test_regression_with_entk_is_close_to_pntk_regression_for_a_wide_net():
    kernels = pytest.importorskip("nasntk.kernels")
    torch.manual_seed(0)
    o, n = 3, 24
    y = np.arange(n) % o
    x = torch.randn(n, 8, dtype=torch.float64) + 1.5 * torch.eye(8, dtype=torch.float64)[y]
    tr, te = spectral.stratified_split(y, 0.5)
    targets = spectral.one_hot_centered(y, o)
    rtr = (tr[:, None] * o + np.arange(o)).ravel()
    rte = (te[:, None] * o + np.arange(o)).ravel()
    errors = []
    for width in (32, 1024):
        torch.manual_seed(1)
        net = nn.Sequential(
            nn.Linear(8, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, o)
        ).double()
        k = kernels.pntk(net, x, device="cpu").numpy()
        e = kernels.entk(net, x, device="cpu").numpy()
        p = spectral.kernel_regression(
            k[np.ix_(tr, tr)], k[np.ix_(te, tr)], targets[tr], ridge=1e-3
        )
        pe = spectral.kernel_regression(
            e[np.ix_(rtr, rtr)], e[np.ix_(rte, rtr)], targets[tr].reshape(-1, 1), ridge=1e-3
        ).reshape(len(te), o)
        errors.append(np.linalg.norm(p - pe) / np.linalg.norm(p))
    assert errors[1] < 0.15  # predictions close for the wide net ...
    assert errors[1] < errors[0]  # ... and closer than for a narrow one (O(width^-1/2))
    assert np.mean(p.argmax(1) == y[te]) == np.mean(pe.argmax(1) == y[te])


# ------------------------------------------------------------------------------------------------
# registry and compute
# ------------------------------------------------------------------------------------------------
def test_registry_lists_scores_with_directions():
    expected = {
        "pntk_cond": "minimize",
        "pntk_cond_centered": "minimize",
        "pntk_krr": "maximize",
        "pntk_krr_mse": "minimize",
        "pntk_trace": "maximize",
        "pntk_eff_rank": "maximize",
        "params": "maximize",
        "flops": "maximize",
        "naswot": "maximize",
        "synflow": "maximize",
        "snip": "maximize",
        "grad_norm": "maximize",
        "jacob_cov": "maximize",
        proxies.DEFAULT: "maximize",
    }
    assert set(expected) <= set(proxies.names())
    for name, direction in expected.items():
        p = proxies.get(name)
        assert p.direction == direction and p.help and p.needs
    with pytest.raises(NasntkError, match="unknown score"):
        proxies.get("nope")


def test_compute_pntk_scores_match_naive_kernel_and_share_one_kernel(monkeypatch):
    pytest.importorskip("nasntk.kernels")
    torch.manual_seed(0)
    model = small_cnn()
    batch = toy_batch()
    ref_k = naive_pntk(model, batch.x).numpy()
    calls = []
    real = scoring._pntk

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(scoring, "_pntk", counting)
    names = ["pntk_cond", "pntk_cond_centered", "pntk_krr", "pntk_krr_mse", "pntk_trace"]
    names += ["pntk_eff_rank", "pntk_flatness", "default"]
    got = proxies.compute(model, batch, names, bn="eval", ridge=1e-2)
    assert len(calls) == 1
    eig = np.linalg.eigvalsh(ref_k)
    # float32 model: the engine and the naive loop sum per-sample gradients in different orders,
    # and κ ≈ 1e4 amplifies that float32 rounding in λmin, hence 1e-4 on the log-condition numbers.
    assert got["pntk_cond"] == pytest.approx(math.log10(eig[-1] / eig[0]), rel=1e-4)
    assert got["pntk_trace"] == pytest.approx(np.trace(ref_k), rel=1e-6)  # float32 model
    assert got["pntk_cond_centered"] == pytest.approx(
        spectral.condition_number(spectral.centered_eigenvalues(ref_k)), rel=1e-4
    )
    # default = log10 #params + log10(λmin / GM) of the frozen-BN pNTK without its top
    # eigenvalue (no BatchNorm here: the same kernel as the context's eval-mode one)
    assert got["default"] == pytest.approx(naive_default(model, ref_k), rel=1e-4)
    assert got["pntk_flatness"] == pytest.approx(naive_flatness(ref_k), rel=1e-4)
    krr = spectral.kernel_regression_scores(ref_k, batch.y, 4, ridge=1e-2)
    assert got["pntk_krr"] == pytest.approx(krr["accuracy"])
    assert got["pntk_krr_mse"] == pytest.approx(krr["mse"], rel=1e-4)
    assert got["reasons"] == {}


def naive_default(model: nn.Module, k_frozen: np.ndarray) -> float:
    """The default score from its definition, with plain numpy: log10 #params + log10(λmin / GM)
    of the frozen-BN pNTK without its top eigenvalue."""
    ev = np.linalg.eigvalsh(k_frozen)[:-1]  # ascending; the top eigenvalue set aside
    slow = math.log10(ev[0]) - np.log10(ev).mean()  # log10(λmin / geometric mean)
    n_params = sum(p.numel() for p in model.parameters())
    return math.log10(n_params) + slow


def naive_flatness(k: np.ndarray) -> float:
    """log10 GM/AM of the eigenvalues of H C H without its zero, C the correlation of k."""
    corr = k / np.sqrt(np.outer(np.diag(k), np.diag(k)))
    h = np.eye(len(corr)) - 1.0 / len(corr)
    lam = np.linalg.eigvalsh(h @ corr @ h)[1:]  # drop the structural zero (eigenvector 1)
    return float(np.mean(np.log10(lam / lam.mean())))


def naive_pntk_bn(model: nn.Module, x: torch.Tensor, bn: str) -> torch.Tensor:
    """naive_pntk with BN in eval mode, or ("frozen") normalising with x's mean/biased variance."""
    model = copy.deepcopy(model).eval()
    if bn == "frozen":

        def use_batch_stats(m: nn.Module, inputs: tuple) -> None:
            m.running_mean.copy_(inputs[0].mean((0, 2, 3)))
            m.running_var.copy_(inputs[0].var((0, 2, 3), unbiased=False))

        bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        hooks = [m.register_forward_pre_hook(use_batch_stats) for m in bns]
        with torch.no_grad():
            model(x)
        for h in hooks:
            h.remove()
    return naive_pntk(model, x)


def test_default_uses_the_frozen_kernel_whatever_the_context_mode(monkeypatch):
    pytest.importorskip("nasntk.kernels")
    modes = []
    real = scoring._pntk

    def recording(model, x, **kwargs):
        modes.append(kwargs["bn"])
        return real(model, x, **kwargs)

    monkeypatch.setattr(scoring, "_pntk", recording)
    torch.manual_seed(0)
    # float64 throughout: log10 λmin of a float32 kernel with κ ~ 1e4 is only good to ~1e-4
    model = small_cnn(bn=True).double()
    with torch.no_grad():
        model[1].weight.uniform_(0.5, 2.0)  # BN affine away from identity
    b = toy_batch()
    batch = Batch(x=b.x.double(), y=b.y, num_classes=b.num_classes, source=b.source)
    got = proxies.compute(model, batch, ["default", "pntk_cond"], bn="frozen")
    assert modes == ["frozen"]  # one kernel, shared with pntk_cond
    k_frozen = naive_pntk_bn(model, batch.x, "frozen").numpy()
    k_eval = naive_pntk_bn(model, batch.x, "eval").numpy()
    assert not np.allclose(k_frozen, k_eval, rtol=1e-2)
    assert got["default"] == pytest.approx(naive_default(model, k_frozen), rel=1e-9)
    modes.clear()  # with the context in eval mode the default still uses the frozen kernel
    got_eval = proxies.compute(model, batch, ["default"], bn="eval")
    assert modes == ["frozen"] and got_eval["default"] == pytest.approx(got["default"], rel=1e-9)
    modes.clear()  # without BatchNorm every mode gives the same kernel: it is computed once
    proxies.compute(small_cnn(bn=False), batch, ["default", "pntk_cond"], bn="eval")
    assert modes == ["eval"]


def test_compute_is_deterministic_under_a_seed_and_averages_seeds(monkeypatch):
    monkeypatch.setattr(scoring, "_pntk", naive_kernel_fn)
    batch = toy_batch()
    names = ["pntk_cond", "naswot", "params"]
    a = proxies.compute(lambda s: small_cnn(), batch, names, seeds=3, bn="eval")
    b = proxies.compute(lambda s: small_cnn(), batch, names, seeds=3, bn="eval")
    assert a == b
    singles = []
    for s in range(3):
        torch.manual_seed(s)
        singles.append(proxies.compute(small_cnn(), batch, names, bn="eval"))
    for name in names:
        vals = [r[name] for r in singles]
        assert a[name] == pytest.approx(np.mean(vals), rel=1e-10)
        assert a[f"{name}_std"] == pytest.approx(np.std(vals, ddof=1), rel=1e-8, abs=1e-12)
    assert a["pntk_cond_std"] > 0 and a["params_std"] == 0.0
    c = proxies.compute(lambda s: small_cnn(), batch, names, seeds=3, bn="eval", seed=10)
    assert c["pntk_cond"] != a["pntk_cond"]


def test_compute_reports_undefined_scores_instead_of_crashing(monkeypatch):
    monkeypatch.setattr(scoring, "_pntk", naive_kernel_fn)
    batch = Batch(x=torch.randn(8, 3), y=torch.arange(8) % 2, num_classes=2, source="toy")
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()  # only the last bias has a gradient: K = (all ones), rank 1
    got = proxies.compute(net, batch, ["pntk_cond", "pntk_cond_centered", "default", "naswot"])
    assert got["pntk_cond"] == math.inf and "singular" in got["reasons"]["pntk_cond"]
    assert got["pntk_cond_centered"] == math.inf
    assert got["default"] == -math.inf  # maximised score: the worst value
    assert got["naswot"] == -math.inf and "activation pattern" in got["reasons"]["naswot"]

    with torch.no_grad():
        net[0].weight.fill_(float("nan"))
    got = proxies.compute(net, batch, ["pntk_cond", "pntk_krr"])
    assert got["pntk_cond"] == math.inf and "non-finite" in got["reasons"]["pntk_cond"]
    assert got["pntk_krr"] == -math.inf and "non-finite" in got["reasons"]["pntk_krr"]


def test_compute_rejects_bad_arguments():
    batch = toy_batch()
    with pytest.raises(NasntkError, match="unknown score"):
        proxies.compute(small_cnn(), batch, ["pntk_cond", "bogus"])
    with pytest.raises(NasntkError, match="unknown score option"):
        proxies.compute(small_cnn(), batch, ["params"], ridg=1.0)
    with pytest.raises(NasntkError, match="builder"):
        proxies.compute(small_cnn(), batch, ["params"], seeds=2)
    with pytest.raises(NasntkError, match="bn"):
        proxies.compute(small_cnn(), batch, ["params"], bn="train")


class _TinySpace(SearchSpace):
    name = "tiny"

    def suggest(self, trial):  # pragma: no cover - not used
        return {"width": 4}

    def build(self, spec, *, num_classes, in_chans=3, img_size=32):
        self.built = (num_classes, in_chans, img_size)
        return nn.Sequential(
            nn.Conv2d(in_chans, spec["width"], 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(spec["width"], num_classes),
        )

    def validate(self, spec):
        if not isinstance(spec, dict) or not isinstance(spec.get("width"), int):
            raise NasntkError("tiny: width must be an int")
        return {"width": spec["width"]}

    def parse(self, text):
        return self.validate({"width": int(text)})

    def format(self, spec):
        return str(spec["width"])


def test_score_builds_a_spec_for_the_data_and_averages_seeds(monkeypatch):
    from nasntk import data

    monkeypatch.setattr(scoring, "_pntk", naive_kernel_fn)
    space = _TinySpace()
    got = proxies.score(
        "5",
        space=space,
        data="digits",
        scores=["pntk_cond", "params"],
        n=12,
        seeds=2,
        bn="eval",
        img_size=8,
    )
    assert space.built == (10, 1, 8)
    assert got["params"] == 1 * 5 * 9 + 5 + 5 * 10 + 10
    batch = data.load("digits", 12, img_size=8)
    ref = proxies.compute(
        lambda s: space.build({"width": 5}, num_classes=10, in_chans=1, img_size=8),
        batch,
        ["pntk_cond"],
        seeds=2,
        bn="eval",
    )
    assert got["pntk_cond"] == ref["pntk_cond"] and got["pntk_cond_std"] == ref["pntk_cond_std"]
    with pytest.raises(NasntkError, match="space"):
        proxies.score({"width": 5}, scores=["params"])


def test_score_of_a_module_uses_its_input_channels():
    model = small_cnn(in_chans=3, classes=10)
    got = proxies.score(model, data="digits", scores=["flops"], n=10, img_size=8)
    # conv 3→6, 3×3 on 8×8: 2·3·9·6·64; linear 24→10: 2·24·10
    assert got["flops"] == 2 * 3 * 9 * 6 * 64 + 2 * 24 * 10


# ------------------------------------------------------------------------------------------------
# baselines on hand-computable networks
# ------------------------------------------------------------------------------------------------
def test_params_and_flops_by_hand():
    net = nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1, bias=True), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 5 * 5, 4)
    )
    assert baselines.params(net) == (2 * 3 * 9 + 3) + (75 * 4 + 4)
    x = torch.randn(7, 2, 5, 5)
    assert baselines.flops(net, x) == 2 * 2 * 9 * 3 * 25 + 2 * 75 * 4  # per image


class _FunctionalRelu(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 2, bias=False)

    def forward(self, x):
        return torch.relu(self.lin(x))


class _DeadParts(nn.Module):
    """A branch multiplied by zero, a layer fed only zeros, a layer never used."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(1, 4, 3, padding=1)  # live: 40
        self.b = nn.Conv2d(1, 4, 3, padding=1)  # output × 0: dead
        self.c = nn.Conv2d(4, 4, 1, bias=False)  # input is all zeros: dead weight
        self.unused = nn.Linear(4, 4)  # never called: dead
        self.head = nn.Linear(4, 3)  # live: 15

    def forward(self, x):
        h = torch.relu(self.a(x)) + self.b(x) * 0.0
        return self.head(h.mean((2, 3)) + self.c(torch.zeros_like(h)).mean((2, 3)))


def naive_live_params(model: nn.Module, x: torch.Tensor) -> int:
    """Σ numel(θ_l) over tensors with per-sample pNTK trace Σ_n ‖∂f̄(x_n)/∂θ_l‖² > 0 (a loop)."""
    model = copy.deepcopy(model).eval()
    params = [p for p in model.parameters() if p.requires_grad]
    trace = [0.0] * len(params)
    for xn in x:
        out = model(xn[None])
        grads = torch.autograd.grad(out.sum() / out.shape[1] ** 0.5, params, allow_unused=True)
        trace = [
            t + (0.0 if g is None else float((g**2).sum()))
            for t, g in zip(trace, grads, strict=True)
        ]
    return sum(p.numel() for p, t in zip(params, trace, strict=True) if t > 0)


def test_live_params_counts_the_parameters_the_output_depends_on():
    x = toy_batch().x
    torch.manual_seed(0)
    net = _DeadParts()
    assert baselines.live_params(net, x) == 40 + 15 == naive_live_params(net, x)
    assert baselines.params(net) == 40 + 40 + 16 + 20 + 15
    from nasntk.search_spaces.nb201 import NB201Network

    # node 1 gets nothing (none), so the convs fed by it see only zeros; its 3x3 conv is dead
    # while the BatchNorm bias after it still shifts the output: counted per tensor
    ops = ["none", "nor_conv_3x3", "nor_conv_3x3", "nor_conv_1x1", "skip_connect", "avg_pool_3x3"]
    cell = NB201Network(ops, num_classes=4, in_chans=1, C=4, N=1).double()
    xs = x[:6].double()
    live = baselines.live_params(cell, xs)
    assert live == naive_live_params(cell, xs)
    assert 0 < live < baselines.params(cell)
    full = NB201Network(["nor_conv_3x3"] * 6, num_classes=4, in_chans=1, C=4, N=1)
    assert baselines.live_params(full, x) == baselines.params(full)
    batch = Batch(x=x, y=toy_batch().y, num_classes=4, source="toy")
    assert proxies.compute(net, batch, ["live_params"])["live_params"] == 55


class _GatedBranch(nn.Module):
    """x + BN_γ=0(conv(x)) — a residual branch whose last BatchNorm scale starts at zero — next
    to a branch behind a constant zero, and a zero-initialised bias that is not a gate."""

    def __init__(self):
        super().__init__()
        self.branch = nn.Conv2d(1, 1, 3, padding=1, bias=False)  # 9: gated, trains
        self.bn = nn.BatchNorm2d(1)  # γ, β: 2
        self.dead = nn.Conv2d(1, 1, 3, padding=1, bias=False)  # 9: × 0, never trains
        self.head = nn.Linear(1, 3)  # 6, its bias starts at zero
        with torch.no_grad():
            self.bn.weight.zero_()
            self.head.bias.zero_()

    def forward(self, x):
        h = x + self.bn(self.branch(x)) + self.dead(x) * 0.0
        return self.head(h.mean((2, 3)))


def test_live_params_opens_gates_initialised_shut():
    x = toy_batch().x
    torch.manual_seed(0)
    net = _GatedBranch()
    # at init the branch conv has a zero gradient (γ = 0), but γ gets one and opens: live
    assert naive_live_params(net, x) == 2 + 6  # the naive loop at init sees only γ, β, head
    assert baselines.live_params(net, x) == 9 + 2 + 6
    opened = copy.deepcopy(net)
    with torch.no_grad():
        opened.bn.weight.fill_(0.7)
    assert naive_live_params(opened, x) == 9 + 2 + 6  # the same count as the reference, opened
    assert net.bn.weight.abs().sum() == 0  # the caller's model is untouched


def test_naswot_by_hand_for_module_and_functional_relu():
    x = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0]])
    # identity layer: codes 11, 10, 01; K_H = N_A − Hamming = [[2,1,1],[1,2,0],[1,0,2]], det 4
    mod = nn.Sequential(nn.Linear(2, 2, bias=False), nn.ReLU())
    fun = _FunctionalRelu()
    for net, lin in ((mod, mod[0]), (fun, fun.lin)):
        with torch.no_grad():
            lin.weight.copy_(torch.eye(2))
        assert baselines.naswot(net, x) == pytest.approx(math.log(4.0))
    # two ReLU layers: the second sees relu(x) ≥ 0 → codes 11, 10, 01 again: K_H doubles, det·8
    two = nn.Sequential(
        nn.Linear(2, 2, bias=False), nn.ReLU(), nn.Linear(2, 2, bias=False), nn.ReLU6()
    )
    with torch.no_grad():
        two[0].weight.copy_(torch.eye(2))
        two[2].weight.copy_(torch.eye(2))
    assert baselines.naswot(two, x) == pytest.approx(math.log(32.0))
    with pytest.raises(ScoreUndefined, match="no ReLU"):
        baselines.naswot(nn.Linear(2, 2), x)
    # the kernel itself: the same codes twice over 4 units (2 layers × 2), diagonal N_A = 4
    k_h, units = baselines.activation_codes(two, x)
    assert units == 4 and k_h.dtype == torch.float64
    torch.testing.assert_close(k_h, 2 * torch.tensor([[2.0, 1, 1], [1, 2, 0], [1, 0, 2]]).double())


def test_synflow_by_hand_on_a_linear_net_and_model_untouched():
    w1 = torch.tensor([[1.0, -2.0], [0.5, 1.0], [-1.0, 3.0]])
    w2 = torch.tensor([[2.0, -1.0, 0.5]])
    net = nn.Sequential(nn.Linear(2, 3, bias=False), nn.ReLU(), nn.Linear(3, 1, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(w1)
        net[2].weight.copy_(w2)
    # R = 1ᵀ|W2||W1|1; each layer's Σ θ ∂R/∂θ equals R (R is linear in each |W_l|), total 2R
    r = (w2.abs() @ w1.abs() @ torch.ones(2)).item()
    x = torch.randn(5, 2)
    assert baselines.synflow(net, x) == pytest.approx(2 * r)
    assert torch.equal(net[0].weight, w1) and net[0].weight.dtype == torch.float32
    # BatchNorm is made the identity (as in the zero-cost-proxies code)
    with_bn = nn.Sequential(net[0], nn.BatchNorm1d(3), nn.ReLU(), net[2])
    with torch.no_grad():
        with_bn[1].weight.fill_(-5.0)
        with_bn[1].running_var.fill_(9.0)
    assert baselines.synflow(with_bn, x) == pytest.approx(2 * r)


def test_snip_and_grad_norm_analytic_for_a_linear_softmax_model():
    torch.manual_seed(0)
    net = nn.Linear(5, 3, bias=False)
    x, y = torch.randn(8, 5), torch.arange(8) % 3
    w = net.weight.detach().double()
    p = torch.softmax(x.double() @ w.T, dim=1)
    g = (p - F.one_hot(y, 3).double()).T @ x.double() / 8  # ∂ mean CE / ∂W
    assert baselines.grad_norm(net, x, y) == pytest.approx(g.norm().item(), rel=1e-5)
    assert baselines.snip(net, x, y) == pytest.approx((w * g).abs().sum().item(), rel=1e-5)
    assert net.weight.grad is None  # gradients were not left on the model


def test_jacob_cov_analytic_for_a_linear_model():
    torch.manual_seed(0)
    net = nn.Linear(6, 3)
    x = torch.randn(5, 6)
    # J_i = Wᵀ1 for every input: correlation matrix of ones, eigenvalues (N, 0, …, 0)
    k, n = 1e-5, 5
    ref = -((math.log(n + k) + 1 / (n + k)) + (n - 1) * (math.log(k) + 1 / k))
    assert baselines.jacob_cov(net, x) == pytest.approx(ref, rel=1e-6)


def test_forward_mode_uses_batch_statistics_without_touching_running_stats():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    net.train()
    x = torch.randn(10, 4) * 3 + 2
    before = net[1].running_mean.clone()
    with baselines.forward_mode(net, "batch"):
        out = net(x)
    assert torch.allclose(out.mean(0), torch.zeros(4), atol=1e-5)  # batch-normalised
    assert torch.equal(net[1].running_mean, before) and net.training and net[1].training
    with baselines.forward_mode(net, "eval"):
        out = net(x)
    assert torch.allclose(out, net[0](x) / math.sqrt(1 + 1e-5), atol=1e-5)  # running stats (0, 1)


def test_naswot_sees_timm_and_functional_activations():
    from timm.layers import BatchNormAct2d

    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        BatchNormAct2d(4, act_layer=nn.ReLU),
        nn.Conv2d(4, 2, 1),
        nn.GELU(),
    )
    x = torch.randn(6, 1, 5, 5)
    k, units = baselines.activation_codes(net, x, "batch")
    assert units == 4 * 25 + 2 * 25
    with baselines.forward_mode(net, "batch"), torch.no_grad():
        out = net(x)
    c = (out.reshape(6, -1) > 0).double()  # GELU keeps the sign: check the last site's share
    k_last = c @ c.T + (1 - c) @ (1 - c).T
    assert torch.all(k - k_last >= 0) and k.diagonal().eq(150).all()


def test_compute_leaves_the_model_unchanged(monkeypatch):
    monkeypatch.setattr(scoring, "_pntk", naive_kernel_fn)
    torch.manual_seed(0)
    net = small_cnn(bn=True)
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    got = proxies.compute(net, toy_batch(), "all", bn="batch")
    aggregates = {n for n in proxies.names() if proxies.get(n).is_aggregate and n != "default"}
    assert all(
        math.isfinite(v) for k, v in got.items() if k not in ("reasons", "tenas_lr", *aggregates)
    ), got["reasons"]
    assert all(math.isnan(got[n]) for n in aggregates)  # no population: nan, with the reason
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert net.training and all(p.grad is None for p in net.parameters())


def test_compute_takes_a_kernel_function_and_calls_it_once_per_bn_mode():
    pytest.importorskip("nasntk.kernels")
    calls = []

    def keeping(model, x, **kwargs):
        k = naive_pntk_bn(model, x, kwargs["bn"])
        calls.append((kwargs["bn"], k))
        return k

    torch.manual_seed(0)
    model = small_cnn(bn=True)
    batch = toy_batch()
    got = proxies.compute(model, batch, ["default", "pntk_cond"], bn="eval", kernel_fn=keeping)
    assert [bn for bn, _ in calls] == ["frozen", "eval"]  # the default's, then the context's
    k_frozen, k_eval = (k.numpy() for _, k in calls)
    assert got["default"] == pytest.approx(naive_default(model, k_frozen), rel=1e-6)
    lam = np.linalg.eigvalsh(k_eval)
    assert got["pntk_cond"] == pytest.approx(math.log10(lam[-1] / lam[0]), rel=1e-6)


@pytest.mark.parametrize("name", ["efficientnet_b0", "lcnet_050", "tinynet_e"])
def test_default_is_finite_on_mobile_timm_families(name):
    # These nets rely on BatchNorm to keep the signal alive: with BN in eval mode at init
    # (running statistics 0 / 1) their features vanish (std ~1e-6 after the last stage) and the
    # eval-mode pNTK is numerically rank one. The default must not depend on that kernel.
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=10)
    g = torch.Generator().manual_seed(0)
    batch = Batch(
        x=torch.rand(16, 3, 32, 32, generator=g), y=torch.arange(16) % 10, num_classes=10,
        source="toy",
    )  # fmt: skip
    got = proxies.compute(model, batch, ["default"])
    assert math.isfinite(got["default"]), got["reasons"]
    assert got["reasons"] == {}
