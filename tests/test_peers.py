"""Tests of the training-free peers (ZiCo, MeCo, SWAP, AZ-NAS, VKDNW, TE-NAS) and of rank
aggregation: each against a hand-computable case or a small naive re-implementation."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nasntk import proxies
from nasntk.data import Batch
from nasntk.proxies import aggregate, aznas, blocks, meco, swap, tenas, vkdnw, zico
from nasntk.proxies.context import Context
from nasntk.proxies.reinit import kaiming_params, normal_params
from nasntk.spectral import ScoreUndefined

PEERS = [
    "zico",
    "meco",
    "swap",
    "swap_reg",
    "az_expressivity",
    "az_progressivity",
    "az_trainability",
    "az_nas",
    "vkdnw",
    "vkdnw_single",
    "vkdnw_agg",
    "tenas_ntk",
    "tenas_lr",
    "tenas",
]


def cnn(bn: bool = True, classes: int = 4) -> nn.Module:
    def block(c_in: int, c_out: int) -> list[nn.Module]:
        return [nn.Conv2d(c_in, c_out, 3, padding=1), *([nn.BatchNorm2d(c_out)] if bn else [])]

    return nn.Sequential(
        *block(1, 6),
        nn.ReLU(),
        *block(6, 6),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(24, classes),
    )


def batch(n: int = 16, classes: int = 4, size: int = 8, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    x = torch.randn(n, 1, size, size, generator=g) + y.view(-1, 1, 1, 1).float()
    return Batch(x=x, y=y, num_classes=classes, source="toy")


# ------------------------------------------------------------------------------------------------
# registry
# ------------------------------------------------------------------------------------------------
def test_every_peer_is_registered_with_family_needs_and_reference():
    rows = {r["name"]: r for r in proxies.describe()}
    for name in PEERS:
        assert name in rows, name
        assert rows[name]["reference"], name
        assert rows[name]["family"] not in ("", "other"), name
        assert set(rows[name]["needs"]) <= set(proxies.registry.NEEDS)
    for name in ("az_nas", "vkdnw_agg", "tenas"):
        assert "population" in rows[name]["needs"]
        assert rows[name]["terms"]
    assert rows["az_nas"]["terms"] == [
        "az_expressivity",
        "az_progressivity",
        "az_trainability",
        "flops",
    ]


def test_every_score_on_awkward_models_gives_values_or_reasons_never_raises():
    """No ReLU, no convolution, one block: every score is a number or a reason."""
    x = torch.randn(8, 1, 4, 4)
    b = Batch(x=x, y=torch.arange(8) % 2, num_classes=2, source="toy")
    models = [
        nn.Sequential(nn.Flatten(), nn.Linear(16, 2)),
        nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(32, 2)),
        cnn(classes=2),
    ]
    for model in models:
        torch.manual_seed(0)
        res = proxies.compute(model, b, "all")
        for name in proxies.names():
            v = res[name]
            assert isinstance(v, float)
            if not math.isfinite(v):
                assert name in res["reasons"], (name, model)
        assert "population" in res["reasons"]["az_nas"] or "reference" in res["reasons"]["az_nas"]


# ------------------------------------------------------------------------------------------------
# ZiCo
# ------------------------------------------------------------------------------------------------
def naive_zico(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """ZiCo as the authors' loop does it: .grad of each half, numpy statistics per layer."""
    model = copy.deepcopy(model).train()
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    grads = {i: [] for i in range(len(layers))}
    half = x.shape[0] // 2
    for part in (slice(0, half), slice(half, 2 * half)):
        model.zero_grad()
        F.cross_entropy(model(x[part]), y[part]).backward()
        for i, m in enumerate(layers):
            grads[i].append(m.weight.grad.reshape(-1).double().numpy().copy())
    total = 0.0
    for g in grads.values():
        g = np.stack(g)
        std, mean = g.std(axis=0), np.abs(g).mean(axis=0)
        nz = np.nonzero(std)
        s = np.sum(mean[nz] / std[nz])
        if s != 0:
            total += np.log(s)
    return float(total)


def test_zico_matches_a_naive_loop_over_two_batches():
    torch.manual_seed(0)
    model, b = cnn(), batch()
    got = zico.zico(model, b.x, b.y, "batch")
    assert got == pytest.approx(naive_zico(model, b.x, b.y), rel=1e-5)


def test_zico_two_identical_batches_have_no_variation():
    torch.manual_seed(0)
    b = batch(n=8)
    x = torch.cat([b.x[:4], b.x[:4]])
    y = torch.cat([b.y[:4], b.y[:4]])
    with pytest.raises(ScoreUndefined):
        zico.zico(cnn(bn=False), x, y, "batch")


# ------------------------------------------------------------------------------------------------
# MeCo
# ------------------------------------------------------------------------------------------------
def test_meco_correlation_eigenvalue_hand_cases():
    base = torch.tensor([1.0, -1.0, 1.0, -1.0])
    other = torch.tensor([1.0, 1.0, -1.0, -1.0])
    # uncorrelated channels: R = I, λmin = 1; a copy of a channel: λmin = 0
    assert meco.min_correlation_eigenvalue(torch.stack([base, other]).view(2, 2, 2)) == (
        pytest.approx(1.0)
    )
    assert meco.min_correlation_eigenvalue(torch.stack([base, 2 * base]).view(2, 2, 2)) == (
        pytest.approx(0.0, abs=1e-12)
    )
    # a constant channel: its nan row and column are zeroed, λmin = 0
    assert meco.min_correlation_eigenvalue(
        torch.stack([base, torch.ones(4)]).view(2, 2, 2)
    ) == pytest.approx(0.0, abs=1e-12)


def test_meco_sums_every_module_output_of_one_image():
    torch.manual_seed(0)
    model, b = cnn(), batch()
    outs = []
    handles = [
        m.register_forward_hook(lambda _m, _i, o: outs.append(o.detach())) for m in model.modules()
    ]
    with proxies.classic.forward_mode(model, "batch"), torch.no_grad():
        model(b.x[:1])
    for h in handles:
        h.remove()
    want = 0.0
    for o in outs:
        if o.dim() == 4:
            r = np.nan_to_num(np.corrcoef(o[0].reshape(o.shape[1], -1).double().numpy()))
            want += np.linalg.eigvalsh(r)[0]
    assert meco.meco(model, b.x, "batch") == pytest.approx(want, rel=1e-9, abs=1e-9)


# ------------------------------------------------------------------------------------------------
# SWAP
# ------------------------------------------------------------------------------------------------
def test_swap_distinct_patterns_by_hand():
    codes = [torch.tensor([[1, 0, 1], [0, 0, 0]], dtype=torch.bool)]  # B = 2, 3 units
    assert swap.distinct_patterns(codes) == 2  # columns (1,0), (0,0), (1,0)
    codes.append(torch.tensor([[0], [1]], dtype=torch.bool))
    assert swap.distinct_patterns(codes) == 3


def test_swap_counts_distinct_unit_patterns_like_numpy():
    """A network of one ReLU: each unit's pattern is the sign of its input pixel over samples."""
    x = torch.randn(10, 2, 3, 3, generator=torch.Generator().manual_seed(1))
    x[:, 0] = x[:, 1]  # channel 0 copies channel 1: 9 duplicate patterns
    got = swap.swap(nn.Sequential(nn.ReLU()), x, samples=16)
    want = np.unique((x.reshape(10, -1) > 0).numpy().T, axis=0).shape[0]
    assert got == want == 9


def test_swap_reg_is_swap_times_the_size_prior():
    torch.manual_seed(0)
    model, b = cnn(), batch()
    res = proxies.compute(model, b, ["swap", "swap_reg", "params"])
    theta = res["params"] / 1e6
    prior = math.exp(-((theta - swap.SWAP_MU_M) ** 2) / swap.SWAP_SIGMA_M)
    assert res["swap_reg"] == pytest.approx(res["swap"] * prior, rel=1e-12)


# ------------------------------------------------------------------------------------------------
# AZ-NAS
# ------------------------------------------------------------------------------------------------
def test_expressivity_of_isotropic_features_is_log_channels():
    # 4 channels × 8 positions: orthogonal ±1 columns with zero mean → covariance = I
    h = torch.tensor(
        [[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]], dtype=torch.float64
    )
    cols = torch.cat([h, -h])[:, 1:]  # 8 × 3, each column zero-mean, orthogonal
    f = cols.T.reshape(1, 3, 2, 4)  # [B=1, C=3, H=2, W=4]
    assert aznas.feature_entropy(f) == pytest.approx(math.log(3), abs=1e-6)
    # a rank-one feature map: all channels equal, entropy 0
    assert aznas.feature_entropy(torch.cat([f[:, :1]] * 3, 1)) == pytest.approx(0.0, abs=1e-6)


def test_progressivity_is_the_smallest_step():
    assert aznas.progressivity([1.0, 3.0, 3.5, 5.0]) == pytest.approx(0.5)


class Scale(nn.Module):
    def __init__(self, a: float) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor(a))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a * x


def test_trainability_of_a_scaling_block_is_analytic():
    """One channel, f1 = a·f0: G_in = a·G_out, M = a·mean(g²) = a, t = −a − 1/(a + 1e-6) + 2."""
    f0 = torch.randn(4, 1, 3, 3, requires_grad=True)
    for a in (0.5, 3.0):
        (t,) = aznas.trainability_terms([f0, a * f0 + 0.0 * f0.detach()])
        assert t == pytest.approx(-a - 1.0 / (a + 1e-6) + 2.0, rel=1e-6)
    (t,) = aznas.trainability_terms([f0, f0 * 1.0])
    assert t == -math.inf  # an identity block


def test_trainability_of_a_downsampling_block_uses_pixel_unshuffle():
    """f1 = 2·pixel_unshuffle(f0) sums nothing: σ = 2 exactly."""
    f0 = torch.randn(2, 1, 4, 4, requires_grad=True)
    f1 = F.pixel_unshuffle(f0, 2)[:, :1] * 2.0  # one of the four phases, doubled
    (t,) = aznas.trainability_terms([f0, f1])
    assert t == pytest.approx(-2.0 - 1.0 / (2.0 + 1e-6) + 2.0, rel=1e-6)


def test_blocks_generic_rule_and_the_cell_spaces():
    from nasntk.search_spaces import get

    model = cnn()
    x = torch.randn(2, 1, 8, 8)
    assert blocks.find_blocks(model, x) == ["0", "1", "3", "4", "8"]
    space = get("nb201", C=4, N=1)
    net = space.build(space.parse_any("|nor_conv_3x3~0|+|none~0|skip_connect~1|+"
                                      "|nor_conv_1x1~0|none~1|avg_pool_3x3~2|"),
                      num_classes=3, in_chans=1, img_size=8)  # fmt: skip
    assert blocks.find_blocks(net, x) == [
        "stem",
        "cells.0",
        "cells.1",
        "cells.2",
        "cells.3",
        "cells.4",
    ]


def test_az_terms_of_a_model_follow_the_definitions():
    torch.manual_seed(0)
    model, b = cnn(), batch()
    ctx = Context(model, b.x, b.y, 4)
    expr, _ = proxies.value_of(proxies.get("az_expressivity"), ctx)
    prog, _ = proxies.value_of(proxies.get("az_progressivity"), ctx)
    # independent: the block outputs with the re-initialised weights, by hand
    params = kaiming_params(model)
    net = copy.deepcopy(model)
    net.load_state_dict({**net.state_dict(), **params})
    feats, x = [], aznas.gaussian_batch(b.x)
    hs = [net[i].register_forward_hook(lambda _m, _i, o: feats.append(o)) for i in (0, 1, 3, 4)]
    with proxies.classic.forward_mode(net, "batch"), torch.no_grad():
        net(x)
    for h in hs:
        h.remove()
    ent = []
    for f in feats:
        z = f.permute(0, 2, 3, 1).reshape(-1, f.shape[1]).double().numpy()
        z = z - z.mean(0)
        s = np.clip(np.linalg.eigvalsh(z.T @ z / z.shape[0]), 0, None)
        p = s / s.sum()
        ent.append(-np.sum(p * np.log(p + 1e-8)))
    assert expr == pytest.approx(sum(ent), rel=1e-6)
    assert prog == pytest.approx(min(np.diff(ent)), rel=1e-5, abs=1e-7)


def test_reinit_kaiming_and_normal_statistics():
    model = nn.Sequential(nn.Conv2d(64, 64, 3), nn.BatchNorm2d(64), nn.Linear(256, 128))
    k = kaiming_params(model, seed=0)
    assert k["0.weight"].std().item() == pytest.approx(math.sqrt(2 / (64 * 9)), rel=0.02)
    assert k["2.weight"].std().item() == pytest.approx(math.sqrt(2 / 256), rel=0.02)
    assert torch.all(k["1.weight"] == 1) and torch.all(k["1.bias"] == 0)
    assert torch.all(k["0.bias"] == 0)
    assert normal_params(model)["0.weight"].std().item() == pytest.approx(1.0, rel=0.02)
    assert torch.equal(kaiming_params(model, seed=0)["0.weight"], k["0.weight"])


# ------------------------------------------------------------------------------------------------
# VKDNW
# ------------------------------------------------------------------------------------------------
def naive_fisher(model: nn.Module, x: torch.Tensor, tensors: int, alpha: float) -> np.ndarray:
    """The Fisher information by a per-sample, per-logit autograd loop."""
    names = [n for n, _ in model.named_parameters()][:tensors]
    params = dict(model.named_parameters())
    k = None
    total = None
    for xi in x:
        out = model(xi.unsqueeze(0))[0]
        k = out.shape[0]
        rows = []
        for j in range(k):
            g = torch.autograd.grad(out[j], [params[n] for n in names], retain_graph=True)
            rows.append(torch.stack([t.reshape(-1)[0] for t in g]))
        jac = torch.stack(rows).double()  # K × P
        p = (1 - alpha) * torch.softmax(out.detach().double(), 0) + alpha / k
        cov = torch.diag(p) - torch.outer(p, p)
        term = jac.T @ cov @ jac
        total = term if total is None else total + term
    return (total / x.shape[0]).numpy()


def test_fisher_information_matches_a_naive_per_sample_loop():
    torch.manual_seed(0)
    model, b = cnn(), batch(n=6)
    model.eval()  # BatchNorm in eval mode: samples independent
    got = vkdnw.fisher_information(model, b.x, tensors=7)
    want = naive_fisher(model, b.x, tensors=7, alpha=vkdnw.ALPHA)
    assert got.shape == (7, 7)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-9)


def test_decile_entropy_hand_cases():
    assert vkdnw.decile_entropy(np.ones(20)) == pytest.approx(math.log(9), rel=1e-6)
    lam = np.array([0.0] * 95 + [1.0] * 5)  # all deciles zero but none
    assert vkdnw.decile_entropy(lam) == pytest.approx(0.0, abs=1e-6)


def test_vkdnw_single_counts_tensors_first():
    torch.manual_seed(0)
    b = batch()
    small = proxies.compute(cnn(bn=False), b, ["vkdnw", "vkdnw_single"])
    large = proxies.compute(cnn(bn=True), b, ["vkdnw", "vkdnw_single"])
    assert int(small["vkdnw_single"]) == 6 and int(large["vkdnw_single"]) == 10
    frac = small["vkdnw_single"] - 6
    assert frac == pytest.approx(small["vkdnw"] / (2 * math.log(9)))


# ------------------------------------------------------------------------------------------------
# TE-NAS
# ------------------------------------------------------------------------------------------------
def test_random_crops_are_crops_of_the_images():
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).reshape(2, 3, 5, 5)
    crops = tenas.random_crops(x, count=20, size=3, seed=0)
    assert crops.shape == (20, 3, 3, 3)
    for c in crops:
        found = any(
            torch.equal(c, x[n, :, i : i + 3, j : j + 3])
            for n in range(2)
            for i in range(3)
            for j in range(3)
        )
        assert found


def test_linear_regions_count_distinct_codes_like_numpy():
    model = nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2, 2))
    x = torch.randn(8, 3, 6, 6, generator=torch.Generator().manual_seed(0))
    got = tenas.linear_regions(model, x)
    crops = tenas.random_crops(x)
    with torch.no_grad():
        codes = (model[0](crops) > 0).reshape(crops.shape[0], -1).numpy()
    assert got == np.unique(codes, axis=0).shape[0] <= 4


def test_tenas_ntk_is_the_pntk_condition_number():
    torch.manual_seed(0)
    res = proxies.compute(cnn(), batch(), ["tenas_ntk", "pntk_cond"])
    assert res["tenas_ntk"] == res["pntk_cond"]


# ------------------------------------------------------------------------------------------------
# aggregation
# ------------------------------------------------------------------------------------------------
def test_rank_aggregate_by_hand():
    a = [3.0, 1.0, 2.0]  # maximise: ranks 3, 1, 2
    b = [1.0, 2.0, 3.0]  # minimise: ranks 3, 2, 1
    got = aggregate.rank_aggregate({"a": a, "b": b}, {"a": "maximize", "b": "minimize"})
    want = np.log([3 / 3, 1 / 3, 2 / 3]) + np.log([3 / 3, 2 / 3, 1 / 3])
    np.testing.assert_allclose(got, want)
    ranked = aggregate.rank_aggregate({"a": a}, {"a": "maximize"}, rule="rank")
    np.testing.assert_allclose(ranked, [1.0, 1 / 3, 2 / 3])
    # ties share the average rank; nan ranks last
    got = aggregate.rank_aggregate({"a": [1.0, 1.0, float("nan")]}, {"a": "maximize"})
    np.testing.assert_allclose(got, np.log([2.5 / 3, 2.5 / 3, 1 / 3]))


def test_percentile_against_the_rest_is_the_population_rank():
    rng = np.random.default_rng(0)
    values = {"a": rng.normal(size=30), "b": rng.normal(size=30)}
    values["a"][3] = values["a"][5]  # a tie
    dirs = {"a": "maximize", "b": "minimize"}
    exact = aggregate.rank_aggregate(values, dirs)
    for i in range(30):
        rest = {t: np.delete(v, i) for t, v in values.items()}
        mine = {t: float(v[i]) for t, v in values.items()}
        step = aggregate.percentile_aggregate(mine, rest, dirs, smooth=False)
        assert step == pytest.approx(exact[i])


def test_smoothed_percentile_orders_beyond_the_reference():
    ref = np.array([0.0, 1.0, 2.0, 3.0])
    step = [aggregate.percentile(v, ref, "maximize") for v in (4.0, 5.0, 6.0)]
    assert step[0] == step[1] == step[2] == 1.0  # ties beyond the reference
    smooth = [aggregate.percentile(v, ref, "maximize", smooth=True) for v in (-1.0, 1.5, 4.0, 5.0)]
    assert np.all(np.diff(smooth) > 0) and 0 < smooth[0] and smooth[-1] < 1
    # the kernel counts: Φ((v − r)/h), h = 1.06·sd·4^(−1/5)
    h = 1.06 * np.std(ref) * 4**-0.2
    want = (1 + sum(0.5 * math.erfc(-(1.5 - r) / h / math.sqrt(2)) for r in ref)) / 5
    assert smooth[1] == pytest.approx(want)
    # a constant reference has no bandwidth: the step count
    assert aggregate.percentile(1.0, [1.0, 1.0], "maximize", smooth=True) == pytest.approx(2 / 3)


def test_aggregate_with_a_reference_in_compute():
    torch.manual_seed(0)
    b = batch()
    ref = {
        "az_expressivity": np.array([0.0, 1e9]),
        "az_progressivity": np.array([-1e9, 1e9]),
        "az_trainability": np.array([-1e9, 1e9]),
        "flops": np.array([0.0, 1e12]),
    }
    terms = list(ref)
    res = proxies.compute(cnn(), b, ["az_nas", *terms], reference=ref)
    dirs = {t: proxies.get(t).direction for t in terms}
    want = aggregate.percentile_aggregate({t: res[t] for t in terms}, ref, dirs)
    assert res["az_nas"] == pytest.approx(want)
    step = aggregate.percentile_aggregate({t: res[t] for t in terms}, ref, dirs, smooth=False)
    assert step == pytest.approx(4 * math.log(2 / 3))  # between the two members of each term
    alone = proxies.compute(cnn(), b, ["az_nas"])
    assert math.isnan(alone["az_nas"]) and "reference" in alone["reasons"]["az_nas"]


def test_meco_runs_the_batch_where_one_image_cannot_pass_batchnorm():
    """BatchNorm on a 1×1 map in training mode cannot take one image: the batch runs, and the
    first image's maps are read."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.BatchNorm2d(4),
        nn.Flatten(), nn.Linear(4, 2),
    )  # fmt: skip
    x = torch.randn(6, 1, 5, 5, generator=torch.Generator().manual_seed(0))
    outs = []
    hs = [
        m.register_forward_hook(lambda _m, _i, o: outs.append(o.detach())) for m in model.modules()
    ]
    with proxies.classic.forward_mode(model, "batch"), torch.no_grad():
        model(x)
    for h in hs:
        h.remove()
    want = sum(
        np.linalg.eigvalsh(
            np.nan_to_num(np.corrcoef(o[0].reshape(o.shape[1], -1).double().numpy()))
        )[0]
        for o in outs
        if o.dim() == 4
    )
    assert meco.meco(model, x, "batch") == pytest.approx(want, abs=1e-9)
