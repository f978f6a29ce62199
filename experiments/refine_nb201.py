"""What does a little training buy at the top? The refine stage on the NB201 dev table.

Take the default score's top-K of the 1,500 dev cells (scores from the benchmark cache
``experiments/out/bench/nb201.csv``), train each for E epochs with the loop ``nasntk refine``
uses (:func:`nasntk.training.train`: SGD, cosine schedule, batch 64, seed 0) on a class-stratified
split of ``--n`` CIFAR-10 test images at 32×32 (80 % train / 20 % validation), re-rank the K by
validation accuracy, and report the true (benchmark, 200-epoch) CIFAR-10 accuracy of the new
rank 1 beside the zero-cost rank 1, for every K ≤ ``--k`` (prefixes of the same top list) and
every budget in ``--epochs``. Results are kept per cell and budget in
``experiments/out/refine_nb201.json`` (resumable).

    NASNTK_SHARED=../shared python experiments/refine_nb201.py --k 10 --epochs 1,3 --n 2000
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from pathlib import Path

import numpy as np

from nasntk import data as data_mod
from nasntk import training
from nasntk.networks import seeded_build
from nasntk.search_spaces import get as get_space
from nasntk.tables import markdown_table

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NASNTK_SHARED", ROOT.parent / "shared"))
OUT = ROOT / "experiments" / "out" / "refine_nb201.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--epochs", default="1,3")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--scores", type=Path, default=ROOT / "experiments/out/bench/nb201.csv")
    args = ap.parse_args()
    truth = {r["arch"]: r for r in csv.DictReader(open(SHARED / "data/nb201/nb201_dev.csv"))}
    scored = [r for r in csv.DictReader(open(args.scores)) if r["spec"] in truth]
    scored.sort(key=lambda r: -float(r["default"]))
    top = [r["spec"] for r in scored[: args.k]]
    acc = {a: float(truth[a]["cifar10_test_acc"]) for a in truth}
    best = max(acc.values())
    share = {a: float(np.mean([v > acc[a] for v in acc.values()])) for a in truth}
    done = json.loads(OUT.read_text()) if OUT.exists() else {}
    batch = data_mod.load("cifar10", args.n, seed=0, img_size=32)
    split = training.split(batch.x, batch.y, val_fraction=0.2, seed=0)
    space = get_space("nb201")
    shape = {"num_classes": 10, "in_chans": 3, "img_size": 32}
    budgets = [int(e) for e in args.epochs.split(",")]
    for e in budgets:
        for arch in top:
            key = f"{arch}|e{e}|n{args.n}"
            if key in done:
                continue
            start = time.perf_counter()
            model = seeded_build(space, space.parse(arch), shape, 0)
            res = training.train(model, *split, training.TrainConfig(epochs=e, seed=0))
            done[key] = {"val_acc": res.val_acc, "seconds": time.perf_counter() - start}
            OUT.parent.mkdir(parents=True, exist_ok=True)
            OUT.write_text(json.dumps(done, indent=1))
            print(f"e{e} {res.val_acc:.3f} {done[key]['seconds']:.0f}s {arch}", flush=True)
    rows = []
    zero = top[0]
    for e in budgets:
        for k in range(2, args.k + 1):
            cand = top[:k]
            vals = [done[f"{a}|e{e}|n{args.n}"]["val_acc"] for a in cand]
            new = cand[int(np.argmax(vals))]  # ties: the earlier (zero-cost) rank
            secs = sum(done[f"{a}|e{e}|n{args.n}"]["seconds"] for a in cand)
            rows.append([str(e), str(k), f"{acc[new]:.2f} ({100 * share[new]:.1f}%)",
                         f"{acc[zero]:.2f} ({100 * share[zero]:.1f}%)",
                         f"{acc[new] - acc[zero]:+.2f}", f"{secs:.0f}"])  # fmt: skip
    print(f"best cell of the table: {best:.2f}; top-{args.k} of the default: "
          f"{', '.join(f'{acc[a]:.2f}' for a in top)}")  # fmt: skip
    cols = ["epochs", "K", "new rank 1: true acc (share better)", "zero-cost rank 1",
            "gain (pts)", "training s (K cells)"]  # fmt: skip
    print("\n".join(markdown_table(cols, rows)))


if __name__ == "__main__":
    main()
