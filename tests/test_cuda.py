"""The CUDA path: the same results on a GPU as on the CPU (run where a GPU is present; skipped
cleanly otherwise), and a clear one-line error where ``cuda`` is asked for but absent."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nasntk import data as data_mod
from nasntk import proxies
from nasntk.errors import NasntkError
from nasntk.kernels import entk, pntk

HAS_CUDA = torch.cuda.is_available()
gpu = pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device on this machine")


def _cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
        nn.Conv2d(6, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4),
    )  # fmt: skip


@pytest.mark.skipif(HAS_CUDA, reason="checks the error where CUDA is absent")
def test_cuda_requested_without_a_gpu_is_one_clear_error() -> None:
    x = torch.randn(4, 3, 8, 8)
    with pytest.raises(NasntkError, match="CUDA is not available"):
        pntk(_cnn(), x, device="cuda")
    batch = data_mod.load("digits", 8, seed=0, in_chans=3, img_size=8)
    with pytest.raises(NasntkError, match="CUDA is not available"):
        proxies.compute(_cnn(), batch, ["pntk_cond"], device="cuda")


@gpu
@pytest.mark.parametrize("bn", ["eval", "frozen", "batch"])
def test_kernels_on_cuda_equal_cpu(bn: str) -> None:
    x1, x2 = torch.randn(5, 3, 8, 8), torch.randn(4, 3, 8, 8)
    for fn in (pntk, entk):
        cpu = fn(_cnn(), x1, x2, bn=bn, device="cpu")
        cuda = fn(_cnn(), x1, x2, bn=bn, device="cuda")
        assert cuda.device.type == "cuda"
        assert torch.allclose(cuda.cpu(), cpu, rtol=1e-5, atol=1e-8)


@gpu
def test_scores_search_and_training_on_cuda(tmp_path) -> None:
    batch = data_mod.load("digits", 16, seed=0, in_chans=3, img_size=8)
    names = ["default", "pntk_cond", "naswot"]
    cpu = proxies.compute(_cnn(), batch, names, device="cpu")
    cuda = proxies.compute(_cnn(), batch, names, device="cuda")
    for n in names:
        assert cuda[n] == pytest.approx(cpu[n], rel=1e-4, abs=1e-6)
    from nasntk.study import search
    from nasntk.training import TrainConfig, split, train

    study = search("nb201", data="digits", trials=3, n_kernel=8, img_size=8, device="cuda",
                   space_options={"C": 2, "N": 1}, storage=f"sqlite:///{tmp_path / 's.db'}")  # fmt: skip
    assert len(study.trials) == 3 and study.best_trial is not None
    (xt, yt), val = split(batch.x, batch.y, seed=0)
    res = train(_cnn(), (xt, yt), val, TrainConfig(epochs=1, batch_size=4, device="cuda"))
    assert res.steps > 0 and 0.0 <= res.val_acc <= 1.0
