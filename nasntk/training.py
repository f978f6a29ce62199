"""A short, plain supervised training run: the ground truth ``nasntk validate`` ranks against.

The model minimises the mean cross-entropy L(θ) = −(1/B) Σ_b log softmax(f_θ(x_b))_{y_b} over
shuffled mini-batches of size B, with

- SGD with momentum μ (heavy ball, PyTorch's form v ← μv + g + λθ, θ ← θ − η_t v), or AdamW
  (decoupled weight decay λ);
- a cosine schedule over all T = epochs × batches-per-epoch steps,
  η_t = η₀ · ½ (1 + cos(π t / T)), so the last step uses a rate close to 0;
- optional augmentation per batch: a random crop after zero-padding by ``img_size // 8`` pixels
  and a random horizontal flip (the CIFAR recipe; do not use it for digits, whose flips are
  different digits).

The train/validation split is class-stratified and seeded (:func:`split`). Everything random —
shuffling, augmentation — draws from one ``torch.Generator`` seeded with ``config.seed``, so a
run is reproducible on the CPU. The reported accuracy is on the validation part after the last
epoch (no early stopping: picking the best epoch on the validation set would bias the number).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nasntk.errors import NasntkError
from nasntk.kernels.prepare import resolve_device

OPTIMIZERS = ("sgd", "adamw")
#: Defaults that depend on the optimizer: (learning rate, weight decay).
_DEFAULTS = {"sgd": (0.05, 5e-4), "adamw": (2e-3, 0.05)}

StepCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class TrainConfig:
    """The training budget and recipe. ``None`` means the optimizer's default (see ``_DEFAULTS``)."""

    epochs: int = 3
    optimizer: str = "sgd"
    lr: Optional[float] = None
    weight_decay: Optional[float] = None
    momentum: float = 0.9
    batch_size: int = 64
    augment: bool = False
    seed: int = 0
    device: str = "cpu"

    def resolved(self) -> TrainConfig:
        """Check the fields and fill in the optimizer-dependent defaults."""
        if self.optimizer not in OPTIMIZERS:
            raise NasntkError(
                f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}"
            )
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
            raise NasntkError(f"epochs must be a positive integer, got {self.epochs!r}")
        if (
            isinstance(self.batch_size, bool)
            or not isinstance(self.batch_size, int)
            or self.batch_size < 2
        ):
            raise NasntkError(
                f"batch size must be an integer of at least 2, got {self.batch_size!r}"
            )
        lr, wd = _DEFAULTS[self.optimizer]
        lr = lr if self.lr is None else float(self.lr)
        wd = wd if self.weight_decay is None else float(self.weight_decay)
        if not (lr > 0 and math.isfinite(lr)):
            raise NasntkError(f"learning rate must be a positive number, got {self.lr!r}")
        if not (wd >= 0 and math.isfinite(wd)):
            raise NasntkError(
                f"weight decay must be a non-negative number, got {self.weight_decay!r}"
            )
        return replace(self, lr=lr, weight_decay=wd)

    def key(self) -> str:
        """A stable text of everything that changes the result (not the device)."""
        c = self.resolved()
        parts = [f"e{c.epochs}", f"s{c.seed}", c.optimizer, f"lr{c.lr:g}", f"wd{c.weight_decay:g}"]
        if c.optimizer == "sgd":
            parts.append(f"m{c.momentum:g}")
        parts += [f"bs{c.batch_size}", "aug" if c.augment else "noaug"]
        return "|".join(parts)


@dataclass(frozen=True)
class TrainResult:
    """What one run reached. ``val_acc`` is after the last epoch; ``history`` has one per epoch."""

    val_acc: float
    train_loss: float
    train_acc: float
    steps: int
    seconds: float
    history: tuple[float, ...] = field(default=())
    diverged: bool = False

    def to_dict(self) -> dict:
        return {
            "val_acc": self.val_acc,
            "train_loss": self.train_loss,
            "train_acc": self.train_acc,
            "steps": self.steps,
            "seconds": self.seconds,
            "history": list(self.history),
            "diverged": self.diverged,
        }


def split(
    x: Tensor, y: Tensor, *, val_fraction: float = 0.2, seed: int = 0
) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """Class-stratified, seeded split into ``(x_train, y_train), (x_val, y_val)``.

    Each class c with n_c images sends round(val_fraction · n_c) of them (at least one) to the
    validation part; the rest train. The permutation inside each class comes from ``seed``.
    """
    if not 0.0 < val_fraction < 1.0:
        raise NasntkError(
            f"validation fraction must be strictly between 0 and 1, got {val_fraction!r}"
        )
    if x.shape[0] != y.shape[0]:
        raise NasntkError(f"{x.shape[0]} images but {y.shape[0]} labels")
    gen = torch.Generator().manual_seed(int(seed))
    train_idx, val_idx = [], []
    for c in torch.unique(y).tolist():
        idx = torch.nonzero(y == c).flatten()
        idx = idx[torch.randperm(idx.numel(), generator=gen)]
        if idx.numel() < 2:
            raise NasntkError(
                f"class {c} has {idx.numel()} image(s); a train/val split needs 2 per class"
            )
        k = min(max(1, round(val_fraction * idx.numel())), idx.numel() - 1)
        val_idx.append(idx[:k])
        train_idx.append(idx[k:])
    tr = torch.cat(train_idx)
    va = torch.cat(val_idx)
    tr = tr[torch.randperm(tr.numel(), generator=gen)]
    return (x[tr], y[tr]), (x[va], y[va])


def augment(x: Tensor, generator: torch.Generator) -> Tensor:
    """Random crop after zero-padding by ``H // 8`` pixels, then a random horizontal flip."""
    n, _, h, w = x.shape
    pad = max(1, h // 8)
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h)[None, :])[:, None, :, None]  # [n,1,h,1]
    cols = (dx[:, None] + torch.arange(w)[None, :])[:, None, None, :]  # [n,1,1,w]
    batch = torch.arange(n)[:, None, None, None]
    chans = torch.arange(x.shape[1])[None, :, None, None]
    out = padded[batch, chans, rows, cols]
    flip = torch.rand(n, generator=generator) < 0.5
    out[flip] = out[flip].flip(-1)
    return out


@torch.no_grad()
def evaluate(
    model: nn.Module, x: Tensor, y: Tensor, *, batch_size: int = 256, device: str = "cpu"
) -> float:
    """Top-1 accuracy of ``model`` in eval mode on ``(x, y)``."""
    was_training = model.training
    model.eval()
    correct = 0
    for i in range(0, x.shape[0], batch_size):
        logits = model(x[i : i + batch_size].to(device))
        correct += int((logits.argmax(-1).cpu() == y[i : i + batch_size]).sum())
    model.train(was_training)
    return correct / max(1, x.shape[0])


def _optimizer(model: nn.Module, c: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise NasntkError("the model has no trainable parameters")
    if c.optimizer == "sgd":
        return torch.optim.SGD(params, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay)
    return torch.optim.AdamW(params, lr=c.lr, weight_decay=c.weight_decay)


def train(
    model: nn.Module,
    train_data: tuple[Tensor, Tensor],
    val_data: tuple[Tensor, Tensor],
    config: TrainConfig = TrainConfig(),
    *,
    on_step: Optional[StepCallback] = None,
) -> TrainResult:
    """Train ``model`` in place on ``train_data`` and return its accuracy on ``val_data``.

    ``on_step(done, total)`` is called after every optimisation step (for progress bars). A
    non-finite loss stops the run early with ``diverged=True``; the accuracy is then measured as
    usual (usually chance), so a diverging architecture ranks low instead of crashing the run.
    """
    c = config.resolved()
    device = str(resolve_device(c.device))
    x_tr, y_tr = train_data
    x_va, y_va = val_data
    n = x_tr.shape[0]
    if n < 2:
        raise NasntkError(f"need at least 2 training images, got {n}")
    gen = torch.Generator().manual_seed(c.seed)
    torch.manual_seed(c.seed)  # dropout / stochastic depth inside the model
    batches = [(i, min(i + c.batch_size, n)) for i in range(0, n, c.batch_size)]
    if len(batches) > 1 and batches[-1][1] - batches[-1][0] < 2:
        batches.pop()  # a batch of one breaks BatchNorm in train mode
    total = c.epochs * len(batches)
    model.to(device).train()
    opt = _optimizer(model, c)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda t: 0.5 * (1.0 + math.cos(math.pi * t / total))
    )
    start = time.perf_counter()
    history: list[float] = []
    step, loss_sum, correct, seen, diverged = 0, 0.0, 0, 0, False
    for _ in range(c.epochs):
        order = torch.randperm(n, generator=gen)
        loss_sum, correct, seen = 0.0, 0, 0
        for lo, hi in batches:
            idx = order[lo:hi]
            xb, yb = x_tr[idx], y_tr[idx]
            if c.augment:
                xb = augment(xb, gen)
            xb, yb = xb.to(device), yb.to(device)
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            if not torch.isfinite(loss):
                diverged = True
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            loss_sum += loss.item() * (hi - lo)
            correct += int((logits.argmax(-1) == yb).sum())
            seen += hi - lo
            if on_step is not None:
                on_step(step, total)
        history.append(evaluate(model, x_va, y_va, device=device))
        if diverged:
            break
    return TrainResult(
        val_acc=history[-1],
        train_loss=loss_sum / seen if seen else math.nan,
        train_acc=correct / seen if seen else math.nan,
        steps=step,
        seconds=time.perf_counter() - start,
        history=tuple(history),
        diverged=diverged,
    )
