"""Tests of the measured scores (nasntk.proxies.hardware): latency_ms, latency_batch_ms,
train_memory_mb — as scores, as objectives and as budgets of a search.

Timings are never compared with a number: only orderings with a wide margin (4x the layers,
8x the batch), which hold on a loaded, shared machine. The CPU memory count is deterministic,
so it is compared exactly with a count made by hand.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from optuna.trial import TrialState
from search_toy_space import IMG, TINY, ToySpace, n_params
from torch import nn

from nasntk import proxies
from nasntk.data import Batch
from nasntk.errors import NasntkError
from nasntk.leaderboard import export_row, pruned_rows, rows
from nasntk.proxies.hardware import (
    MEASURED,
    MIB,
    clock,
    facts,
    forward_latency_ms,
    time_blocks,
    train_memory_bytes,
)
from nasntk.study import SearchConfig, search
from nasntk.study.reference import reference_scores

TESTS = Path(__file__).resolve().parent

FLOAT = 4  # bytes


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One torch thread, as a search's workers time it: with two threads on a loaded two-core
    machine a thread that loses its core stalls the other (experiments/README.md §8), and a 4x
    deeper network can time as fast as the shallow one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def conv_stack(layers: int, width: int = 32) -> nn.Sequential:
    """``layers`` 3x3 convolutions with ReLU at full resolution (the first from RGB), a head."""
    body: list[nn.Module] = [nn.Conv2d(3, width, 3, padding=1), nn.ReLU()]
    for _ in range(layers - 1):
        body += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU()]
    body += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10)]
    return nn.Sequential(*body)


def batch(n: int, size: int = 32, chans: int = 3) -> Batch:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, chans, size, size, generator=g)
    return Batch(x=x, y=torch.arange(n) % 10, num_classes=10, source="test")


# ---------------------------------------------------------------------------------------------
# latency
# ---------------------------------------------------------------------------------------------
def test_four_times_the_layers_measures_slower(one_thread: None) -> None:
    torch.manual_seed(0)
    shallow, deep = conv_stack(2), conv_stack(8)
    b = batch(4)
    got = {
        name: proxies.compute(m, b, ["latency_ms"], latency_repeats=5)["latency_ms"]
        for name, m in (("shallow", shallow), ("deep", deep))
    }
    assert got["deep"] > got["shallow"] > 0, got


def test_a_batch_of_eight_measures_slower_than_one_image(one_thread: None) -> None:
    torch.manual_seed(0)
    got = proxies.compute(
        conv_stack(2), batch(4), ["latency_ms", "latency_batch_ms"], latency_batch=8,
        latency_repeats=5,
    )  # fmt: skip
    assert got["latency_batch_ms"] > got["latency_ms"] > 0, got


def test_measuring_leaves_the_model_unchanged() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Dropout(0.5),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10),
    )  # fmt: skip
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    got = proxies.compute(net, batch(4, size=8), list(MEASURED))
    assert all(got[n] > 0 for n in MEASURED) and not got["reasons"]
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(m.training for m in net.modules())
    assert all(p.grad is None for p in net.parameters())


def test_forward_latency_uses_the_inputs_device_and_eval_mode() -> None:
    seen = []

    class Probe(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append((self.training, torch.is_grad_enabled(), x.shape[0]))
            return x

    assert forward_latency_ms(Probe(), torch.zeros(3, 2), repeats=2) >= 0
    assert seen and all(s == (False, False, 3) for s in seen)


def test_one_thread_reads_the_threads_cpu_clock(one_thread: None) -> None:
    assert clock("cpu") == "thread cpu" and facts("cpu", {})["latency_clock"] == "thread cpu"
    blocks = time_blocks(conv_stack(2, width=8), batch(1, size=16).x, repeats=3)
    assert len(blocks) == 3
    assert all(0 < cpu <= 1.05 * wall + 1e-4 for wall, cpu in blocks), blocks
    torch.set_num_threads(2)
    assert clock("cpu") == "wall" and clock(torch.device("cuda")) == "wall"


# ---------------------------------------------------------------------------------------------
# training memory
# ---------------------------------------------------------------------------------------------
def test_memory_of_a_tiny_mlp_against_a_count_by_hand() -> None:
    d, h, o, b = 20, 7, 3, 5
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(d, h), nn.ReLU(), nn.Linear(h, o))
    x, y = torch.randn(b, d), torch.arange(b) % o
    p = d * h + h + h * o + o
    # params + grads + momentum, the input, and the one activation autograd keeps: the ReLU's
    # output (saved by the ReLU and by the second Linear: one storage); the first Linear's
    # saved input is the batch and its weights are parameters, both counted already
    by_hand = 3 * p * FLOAT + b * d * FLOAT + b * h * FLOAT
    assert train_memory_bytes(mlp, x, y) == by_hand


def test_memory_of_a_small_cnn_against_a_count_by_hand() -> None:
    c, s, b = 6, 10, 4
    torch.manual_seed(0)
    cnn = nn.Sequential(
        nn.Conv2d(3, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 10),
    )  # fmt: skip
    x, y = torch.randn(b, 3, s, s), torch.arange(b)
    weights = (3 * c * 9 + c) + 2 * c + (c * 10 + 10)  # conv, BN γ β, linear
    buffers = 2 * c * FLOAT + 8  # BN running mean / var (float), num_batches_tracked (int64)
    # saved activations: the conv output (BN's input), the ReLU output (also the pool's input),
    # the pooled features (the Linear's input); BN's per-channel batch mean and 1/std
    acts = (2 * b * c * s * s + b * c + 2 * c) * FLOAT
    by_hand = 3 * weights * FLOAT + buffers + b * 3 * s * s * FLOAT + acts
    assert train_memory_bytes(cnn, x, y) == pytest.approx(by_hand, rel=0.01)


def test_memory_of_twice_the_batch_is_about_twice() -> None:
    torch.manual_seed(0)
    net = conv_stack(2, width=8)  # ~1.4k parameters, 8 full-resolution activation maps
    one = proxies.compute(net, batch(4), ["train_memory_mb"], memory_batch=16)
    two = proxies.compute(net, batch(4), ["train_memory_mb"], memory_batch=32)
    ratio = two["train_memory_mb"] / one["train_memory_mb"]
    assert 1.9 < ratio < 2.0, ratio  # the weights are the part that does not double


# ---------------------------------------------------------------------------------------------
# in a search: objective, budgets, the record
# ---------------------------------------------------------------------------------------------
def toy_memory_mib(spec: dict, memory_batch: int) -> float:
    """train_memory_mb of a toy MLP by hand: params, grads and momentum; the flattened 8x8
    digits batch; one saved activation per hidden layer (its output, B × width)."""
    model = ToySpace().build(spec, num_classes=10, in_chans=1, img_size=IMG)
    b = memory_batch
    total = 3 * n_params(model) + b * IMG * IMG + b * spec["depth"] * spec["width"]
    return total * FLOAT / MIB


def test_memory_budget_prunes_with_the_measured_value(db: str) -> None:
    budget = 0.035  # MiB: depth 1 fits at every width, depth 2 only up to width 8 (by hand)
    study = search(
        ToySpace(), trials=12, sampler="grid", storage=db, seed=0, objective="pntk_live_g",
        scores=[], max_train_memory_mb=budget, **TINY,
    )  # fmt: skip
    pruned = 0
    for t in study.trials:
        spec = json.loads(t.user_attrs["spec"])
        want = toy_memory_mib(spec, 64)
        assert t.user_attrs["train_memory_mb"] == pytest.approx(want, rel=1e-12)
        hw = t.user_attrs["hardware"]
        assert hw["memory_batch"] == 64 and hw["threads"] == torch.get_num_threads()
        if want > budget:
            pruned += 1
            assert t.state == TrialState.PRUNED
            reason = t.user_attrs["prune_reason"]
            assert reason.startswith("over budget: train_memory_mb ")
            assert f"{t.user_attrs['train_memory_mb']:.4g} > max-train-memory-mb 0.035" in reason
            assert "pntk_live_g" not in t.user_attrs and "time_score" not in t.user_attrs
        else:
            assert t.state == TrialState.COMPLETE
    assert pruned == 2  # depth 2 at width 16, both activations
    # the leaderboard's pruned rows (`nasntk leaderboard --pruned`) carry the measured value
    listed = pruned_rows(study)
    assert [r["trial"] for r in listed] == [
        t.number for t in study.trials if t.state == TrialState.PRUNED
    ]
    for r in listed:
        want = toy_memory_mib(r["spec"], 64)
        assert r["train_memory_mb"] == pytest.approx(want, rel=1e-12) and want > budget
        assert r["pruned"].startswith("over budget: train_memory_mb ") and r["params"] > 0
    res = subprocess.run(
        [sys.executable, "-m", "nasntk", "leaderboard", "--storage", db, "--pruned", "-f", "json"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(TESTS)},
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert [r["train_memory_mb"] for r in json.loads(res.stdout)] == [
        r["train_memory_mb"] for r in listed
    ]


def test_latency_budget_prunes_before_any_kernel_with_the_value(db: str) -> None:
    study = search(
        ToySpace(), trials=3, storage=db, seed=0, objective="pntk_live_g", scores=[],
        max_latency_ms=1e-9, latency_repeats=2, **TINY,
    )  # fmt: skip
    assert len(study.trials) == 3
    for t in study.trials:
        assert t.state == TrialState.PRUNED
        value = t.user_attrs["latency_ms"]
        assert value > 1e-9
        assert t.user_attrs["prune_reason"] == (
            f"over budget: latency_ms {value:.4g} > max-latency-ms 1e-09"
        )
        assert "pntk_live_g" not in t.user_attrs and t.user_attrs["time_measure"] > 0


def test_latency_objective_parses_records_and_resumes(db: str) -> None:
    config = SearchConfig(space=ToySpace(), objective="default,latency_ms:min")
    assert config.directions == ("maximize", "minimize")
    assert SearchConfig(space=ToySpace(), objective="latency_ms").directions == ("minimize",)
    assert "latency_ms" in SearchConfig(space=ToySpace(), max_latency_ms=5.0).score_names
    options = {"objective": "pntk_live_g,latency_ms:min", "scores": ["train_memory_mb"]}
    first = search(ToySpace(), trials=3, storage=db, seed=0, latency_repeats=2, **options, **TINY)
    assert [d.name for d in first.directions] == ["MAXIMIZE", "MINIMIZE"]
    kept = {t.number: t.user_attrs["latency_ms"] for t in first.trials}
    study = search(ToySpace(), trials=5, storage=db, seed=0, latency_repeats=2, **options, **TINY)
    assert len(study.trials) == 5
    assert {n: study.trials[n].user_attrs["latency_ms"] for n in kept} == kept
    ranked = rows(study)
    assert all(r["latency_ms"] > 0 and r["train_memory_mb"] > 0 for r in ranked)
    row = export_row(study, 1)
    assert row["latency_ms"] == pytest.approx(ranked[0]["latency_ms"])
    assert row["hardware"]["threads"] >= 1 and row["hardware"]["latency_repeats"] == 2


def test_measured_scores_are_not_in_the_reference_sample() -> None:
    assert reference_scores(["default", "latency_ms", "train_memory_mb", "params"]) == [
        "params",
        *proxies.get("default").terms,
    ]


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_bad_measure_options_are_refused_before_the_search(bad: object) -> None:
    with pytest.raises(NasntkError, match="latency_batch must be a positive integer"):
        SearchConfig(space=ToySpace(), proxy_options={"latency_batch": bad})
    with pytest.raises(NasntkError, match="max-latency-ms must be positive"):
        SearchConfig(space=ToySpace(), max_latency_ms=0.0)


def test_the_family_is_listed_with_its_directions() -> None:
    listed = {d["name"]: d for d in proxies.describe()}
    for name in MEASURED:
        assert listed[name]["direction"] == "minimize"
        assert listed[name]["family"] == "hardware" and "measure" in listed[name]["needs"]


# ---------------------------------------------------------------------------------------------
# CUDA (run where a GPU is present; skipped cleanly otherwise)
# ---------------------------------------------------------------------------------------------
gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


@gpu
def test_cuda_peak_memory_doubles_with_the_batch_and_agrees_with_the_count() -> None:
    torch.manual_seed(0)
    net = conv_stack(2, width=8)
    one = proxies.compute(net, batch(4), ["train_memory_mb"], memory_batch=64, device="cuda")
    two = proxies.compute(net, batch(4), ["train_memory_mb"], memory_batch=128, device="cuda")
    ratio = two["train_memory_mb"] / one["train_memory_mb"]
    assert 1.7 < ratio < 2.2, ratio
    b = batch(64)
    counted = train_memory_bytes(net, b.x, b.y) / MIB  # the CPU count of the same step
    assert 0.8 * counted < one["train_memory_mb"] < 3.0 * counted, (counted, one)


@gpu
def test_cuda_latency_of_four_times_the_layers_is_slower() -> None:
    torch.manual_seed(0)
    b = batch(4)
    got = [
        proxies.compute(m, b, ["latency_batch_ms"], latency_batch=64, device="cuda")[
            "latency_batch_ms"
        ]
        for m in (conv_stack(2, width=64), conv_stack(8, width=64))
    ]
    assert got[1] > got[0] > 0, got
