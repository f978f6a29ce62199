"""Is the project's training loop as fast as a plain PyTorch loop? Images per second, side by side.

One NB201 cell (the nb201 space's own network, C=16, N=5) trained on the embedded digits (the
1,438 training images of validate's stratified split)
at ``--img-size`` (32: the size of a study searched on CIFAR-10, which ``validate --data digits``
keeps; 8: a study searched on digits) with SGD, batch 64, for ``--epochs`` epochs: by ``nasntk.training.train`` (the loop behind
``nasntk validate`` and ``nasntk search --refine``) and by a plain loop written here (shuffle,
forward, cross-entropy, backward, step; no schedule, no bookkeeping), alternating the two
``--repeat`` times in one process so that a busy machine slows both alike. Also at the thread
count torch chooses by default and at 1 thread, since oversubscription on a shared machine is the
usual cause of a slow loop.

    python experiments/training_speed.py [--epochs 2] [--repeat 3] [--img-size 32]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from nasntk import data as data_mod
from nasntk.networks import seeded_build
from nasntk.search_spaces import get as get_space
from nasntk.tables import markdown_table
from nasntk.training import TrainConfig, split, train

CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"


def plain_loop(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int) -> float:
    """Seconds of a minimal SGD loop over ``epochs`` epochs of (x, y), batch 64."""
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    model.train()
    gen = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(x.shape[0], generator=gen)
        for i in range(0, x.shape[0], 64):
            idx = order[i : i + 64]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--img-size", type=int, default=32)
    args = ap.parse_args()
    batch = data_mod.load("digits", 1797, seed=0, img_size=args.img_size)
    (x_tr, y_tr), val = split(batch.x, batch.y, seed=0)
    space = get_space("nb201")
    spec = space.parse(CELL)
    shape = {
        "num_classes": 10,
        "in_chans": int(batch.x.shape[1]),
        "img_size": int(batch.x.shape[-1]),
    }

    def model() -> torch.nn.Module:
        return seeded_build(space, spec, shape, 0)

    images = args.epochs * x_tr.shape[0]
    default_threads = torch.get_num_threads()
    rows = []
    for threads in dict.fromkeys([default_threads, 1]):
        torch.set_num_threads(threads)
        times: dict[str, list[float]] = {"nasntk.training.train": [], "plain loop": []}
        for _ in range(args.repeat):
            cfg = TrainConfig(epochs=args.epochs, batch_size=64)
            times["nasntk.training.train"].append(train(model(), (x_tr, y_tr), val, cfg).seconds)
            times["plain loop"].append(plain_loop(model(), x_tr, y_tr, args.epochs))
        plain = min(times["plain loop"])
        for name, ts in times.items():
            rows.append([str(threads), name, f"{min(ts):.2f}", f"{statistics.median(ts):.2f}",
                         f"{images / min(ts):.0f}", f"{min(ts) / plain:.2f}×"])  # fmt: skip
    torch.set_num_threads(default_threads)
    print(f"{x_tr.shape[0]} training images at {tuple(x_tr.shape[1:])}, {args.epochs} epochs")
    cols = ["threads", "loop", "best s", "median s", "images / s", "time / plain loop"]
    print("\n".join(markdown_table(cols, rows)))


if __name__ == "__main__":
    main()
