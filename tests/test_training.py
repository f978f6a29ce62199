"""nasntk.training: a loop that learns, reproducibly, with a seeded stratified split."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nasntk import training
from nasntk.errors import NasntkError


# ---------------------------------------------------------------------------------------------
# The training loop
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits_8x8():
    from nasntk import data

    batch = data.load("digits", data.info("digits")["size"], seed=0, in_chans=1, img_size=8)
    return training.split(batch.x, batch.y, val_fraction=0.2, seed=0)


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


def _cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 10),
    )


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_training_learns_digits(digits_8x8, optimizer):
    (x_tr, y_tr), (x_va, y_va) = digits_8x8
    model = _mlp()
    before = training.evaluate(model, x_va, y_va)
    steps = []
    res = training.train(
        model,
        (x_tr, y_tr),
        (x_va, y_va),
        training.TrainConfig(epochs=4, optimizer=optimizer, seed=0),
        on_step=lambda done, total: steps.append((done, total)),
    )
    # Ten balanced classes: chance is 0.1. Four epochs of a 64-32-10 MLP reach far above it.
    assert before < 0.3
    assert res.val_acc > 0.8
    assert res.val_acc == training.evaluate(model, x_va, y_va)  # the number is the model's
    assert len(res.history) == 4 and not res.diverged
    assert steps[-1] == (res.steps, res.steps) and len(steps) == res.steps


def test_training_cnn_with_batchnorm_and_augmentation_learns(digits_8x8):
    (x_tr, y_tr), (x_va, y_va) = digits_8x8
    res = training.train(
        _cnn(),
        (x_tr, y_tr),
        (x_va, y_va),
        training.TrainConfig(epochs=3, augment=True, seed=1),
    )
    assert res.val_acc > 0.7  # chance 0.1; crops + flips make digits harder, so a lower bar


def test_training_is_reproducible(digits_8x8):
    (x_tr, y_tr), (x_va, y_va) = digits_8x8
    sub = (x_tr[:300], y_tr[:300]), (x_va[:100], y_va[:100])
    cfg = training.TrainConfig(epochs=1, seed=3, augment=True)
    a = training.train(_mlp(), *sub, cfg)
    b = training.train(_mlp(), *sub, cfg)
    assert a.val_acc == b.val_acc and a.train_loss == b.train_loss


def test_cosine_schedule_ends_near_zero():
    x = torch.randn(40, 1, 4, 4)
    y = torch.arange(40) % 4
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 4))
    seen = []
    orig = torch.optim.SGD.step

    def spy(self, *a, **k):
        seen.append(self.param_groups[0]["lr"])
        return orig(self, *a, **k)

    torch.optim.SGD.step = spy
    try:
        training.train(model, (x, y), (x, y), training.TrainConfig(epochs=2, batch_size=10, lr=0.4))
    finally:
        torch.optim.SGD.step = orig
    total = len(seen)
    expected = [0.4 * 0.5 * (1 + math.cos(math.pi * t / total)) for t in range(total)]
    assert seen == pytest.approx(expected)


def test_split_is_stratified_disjoint_and_seeded():
    y = torch.tensor([0] * 10 + [1] * 20 + [2] * 5)
    x = torch.arange(len(y)).float()[:, None, None, None]
    (x_tr, y_tr), (x_va, y_va) = training.split(x, y, val_fraction=0.2, seed=0)
    assert torch.bincount(y_va).tolist() == [2, 4, 1]
    ids_tr, ids_va = set(x_tr.flatten().tolist()), set(x_va.flatten().tolist())
    assert not ids_tr & ids_va and len(ids_tr | ids_va) == len(y)
    assert all(
        y[int(i)] == lab for i, lab in zip(x_va.flatten().tolist(), y_va.tolist(), strict=True)
    )
    (_, _), (x_va2, _) = training.split(x, y, val_fraction=0.2, seed=0)
    (_, _), (x_va3, _) = training.split(x, y, val_fraction=0.2, seed=1)
    assert torch.equal(x_va, x_va2) and not torch.equal(x_va, x_va3)
    with pytest.raises(NasntkError):
        training.split(x, y, val_fraction=1.0)


def test_augment_crops_a_shifted_window_or_its_mirror():
    x = torch.arange(2 * 3 * 16 * 16, dtype=torch.float32).reshape(2, 3, 16, 16) + 1
    out = training.augment(x, torch.Generator().manual_seed(0))
    pad = 2
    padded = torch.nn.functional.pad(x, (pad,) * 4)
    for i in range(2):
        windows = [
            padded[i, :, dy : dy + 16, dx : dx + 16]
            for dy in range(2 * pad + 1)
            for dx in range(2 * pad + 1)
        ]
        assert any(torch.equal(out[i], w) or torch.equal(out[i], w.flip(-1)) for w in windows)


def test_train_config_rejects_bad_values():
    for bad in (
        dict(optimizer="lbfgs"),
        dict(epochs=0),
        dict(lr=-1.0),
        dict(batch_size=1),
    ):
        with pytest.raises(NasntkError):
            training.TrainConfig(**bad).resolved()
    assert training.TrainConfig(optimizer="adamw").resolved().lr == pytest.approx(2e-3)
    assert training.TrainConfig(epochs=2).key() != training.TrainConfig(epochs=3).key()
