"""Run-to-run spread of the measured ``latency_ms``, and the repeat count that keeps a ranking.

The machine is shared (2 cores; other people's tests run beside this): that is the point. The
models are networks of the ``mobilenet`` space at 32×32 (CIFAR-10's size, 10 classes): a tiny
one and a large one written by hand and ``--sample`` candidates drawn by a seeded random
sampler, as a search draws them. For each torch thread count (``--threads``) and each repeat
count R (``--repeats``, the timed blocks of one measurement, the score option
``latency_repeats``), every model is measured ``--runs`` times, the runs going through all the
models in turn (as a search measures successive candidates). Printed side by side:

* three estimators computed from the same timed blocks: the median of the blocks' wall times
  (what ``latency_ms`` reports), their minimum, and the median of the calling thread's CPU time
  (one thread only: ``time.thread_time`` leaves out the time spent waiting for a core);
* the spread of each model over the runs: max/min, and the coefficient of variation (sd/mean);
* Kendall τ between the rankings of every two runs (mean and worst);
* the "clear" pairs: two models whose median latencies differ by at least ``--clear`` (1.5×),
  and how many of them some run ranked the wrong way round;
* the cost of one measurement, seconds (what a search pays per candidate for latency_ms);
* then ``latency_batch_ms`` (batch 32) and ``train_memory_mb`` (batch 64) of the same models,
  their spread and cost, at the chosen R and one thread.

    NASNTK_SHARED=../shared python experiments/latency_spread.py [--runs 5] [--repeats 3,5,10,20]
        [--threads 1,2] [--burn 2]

``--burn K`` starts K busy-looping processes for the run (a controlled neighbour, stopped at
the end), so that the loaded case can be reproduced on an idle machine.
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing as mp
import statistics
import time

import numpy as np
import optuna
import torch
from scipy.stats import kendalltau

import nasntk
from nasntk import proxies
from nasntk.proxies.hardware import time_blocks
from nasntk.tables import markdown_table

#: A tiny and a large network of the mobilenet space (its text form), besides the random draws.
TINY = "ds_r1_k3_s1_c16,ds_r1_k3_s2_c16,ds_r1_k3_s2_c32,ds_r1_k3_s2_c32,ds_r1_k3_s1_c48,act=relu,width=0.5,stem=8,head=0"
LARGE = (
    "ir_r2_k5_s1_e6_c24_se0.25,ir_r2_k5_s2_e6_c40_se0.25,ir_r2_k5_s2_e6_c80_se0.25,"
    "ir_r2_k5_s2_e6_c112_se0.25,ir_r2_k5_s1_e6_c160_se0.25,act=swish,width=1.5,stem=32,head=1280"
)


def models(sample: int, seed: int) -> dict[str, torch.nn.Module]:
    """The tiny, the drawn and the large network, each with its params in the name."""
    space = nasntk.get_space("mobilenet")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    probe = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    specs = {"tiny": space.parse_any(TINY)}
    for i in range(sample):
        specs[f"draw{i}"] = space.validate(space.suggest(probe.ask()))
    specs["large"] = space.parse_any(LARGE)
    out = {}
    for name, spec in specs.items():
        torch.manual_seed(0)
        net = space.build(spec, num_classes=10, in_chans=3, img_size=32)
        out[f"{name} ({sum(p.numel() for p in net.parameters()) / 1e3:,.0f}k)"] = net
    return out


ESTIMATORS = ("median wall", "min wall", "median cpu")


def measure(nets: dict, x: torch.Tensor, r: int, runs: int) -> tuple[dict[str, np.ndarray], float]:
    """runs × models latencies (ms) of each estimator over the same ``r`` timed blocks, and the
    mean seconds of one measurement (warm-up included)."""
    values = {e: np.zeros((runs, len(nets))) for e in ESTIMATORS}
    spent = []
    for run in range(runs):
        for j, net in enumerate(nets.values()):
            t0 = time.perf_counter()
            blocks = np.array(time_blocks(net, x, repeats=r)) * 1e3
            spent.append(time.perf_counter() - t0)
            values["median wall"][run, j] = np.median(blocks[:, 0])
            values["min wall"][run, j] = blocks[:, 0].min()
            values["median cpu"][run, j] = np.median(blocks[:, 1])
    return values, statistics.mean(spent)


def measure_score(nets: dict, batch, score: str, runs: int, **opts) -> tuple[np.ndarray, float]:
    """runs × models values of a registered score, and the mean seconds of one measurement."""
    values = np.zeros((runs, len(nets)))
    spent = []
    for run in range(runs):
        for j, net in enumerate(nets.values()):
            t0 = time.perf_counter()
            values[run, j] = proxies.compute(net, batch, [score], **opts)[score]
            spent.append(time.perf_counter() - t0)
    return values, statistics.mean(spent)


def stability(values: np.ndarray, clear: float) -> dict[str, float]:
    """τ between every two runs (mean, worst), and the clear pairs some run ordered wrongly."""
    taus = [kendalltau(a, b)[0] for a, b in itertools.combinations(values, 2)]
    med = np.median(values, axis=0)
    pairs = [
        (i, j)
        for i, j in itertools.combinations(range(values.shape[1]), 2)
        if max(med[i], med[j]) >= clear * min(med[i], med[j])
    ]
    wrong = sum(any((run[i] - run[j]) * (med[i] - med[j]) <= 0 for run in values) for i, j in pairs)
    return {"tau_mean": float(np.mean(taus)), "tau_min": float(np.min(taus)),
            "clear": len(pairs), "wrong": wrong}  # fmt: skip


def spreads(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per model: max/min over the runs, and sd/mean."""
    return values.max(0) / values.min(0), values.std(0, ddof=1) / values.mean(0)


def _burn() -> None:
    while True:
        pass


def neighbours(n: int) -> list[mp.Process]:
    """``n`` busy processes: a controlled neighbour on the shared cores (stopped at the end)."""
    procs = [mp.Process(target=_burn, daemon=True) for _ in range(n)]
    for p in procs:
        p.start()
    return procs


def latency_table(nets: dict, x: torch.Tensor, args: argparse.Namespace) -> None:
    summary, per_model = [], {}
    for threads in (int(t) for t in args.threads.split(",")):
        torch.set_num_threads(threads)
        for r in (int(v) for v in args.repeats.split(",")):
            values, cost = measure(nets, x, r, args.runs)
            for est, v in values.items():
                if est == "median cpu" and threads > 1:
                    continue  # the calling thread's CPU time is not the latency then
                st = stability(v, args.clear)
                ratio, cv = spreads(v)
                per_model[(threads, r, est)] = (np.median(v, 0), ratio)
                summary.append([threads, r, est, f"{cost:.3f}", f"{np.median(ratio):.2f}",
                                f"{ratio.max():.2f}", f"{np.median(cv):.3f}",
                                f"{st['tau_mean']:.3f}", f"{st['tau_min']:.3f}",
                                f"{st['wrong']}/{st['clear']}"])  # fmt: skip
    print("latency_ms (batch 1) over the runs, per setting:\n")
    print("\n".join(markdown_table(
        ["threads", "R", "estimator", "s / measurement", "median max/min", "worst max/min",
         "median CV", "τ mean", "τ worst", "clear pairs misordered"], summary)))  # fmt: skip
    print("\nper model, median wall (median ms over the runs; max/min), one column per setting:\n")
    keys = [k for k in per_model if k[2] == "median wall"]
    head = ["model", *(f"t{t} R{r}" for t, r, _ in keys)]
    body = [
        [name, *(f"{per_model[k][0][j]:.3g} ({per_model[k][1][j]:.2f})" for k in keys)]
        for j, name in enumerate(nets)
    ]
    print("\n".join(markdown_table(head, body)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--repeats", default="3,5,10,20")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--sample", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--clear", type=float, default=1.5)
    ap.add_argument("--burn", type=int, default=0, help="busy neighbour processes to start")
    ap.add_argument("--chosen", type=int, default=5, help="R of the batch / memory table")
    args = ap.parse_args()
    nets = models(args.sample, args.seed)
    batch = nasntk.load_data("cifar10", 64)
    procs = neighbours(args.burn)
    try:
        print(f"models: {', '.join(nets)}; runs {args.runs}; clear pairs differ >= "
              f"{args.clear}x; {args.burn} busy neighbour process(es)\n")  # fmt: skip
        latency_table(nets, batch.x[:1], args)
        torch.set_num_threads(1)
        rows = []
        for score in ("latency_batch_ms", "train_memory_mb"):
            values, cost = measure_score(nets, batch, score, args.runs, latency_repeats=args.chosen)
            ratio, _ = spreads(values)
            st = stability(values, args.clear)
            med = np.median(values, 0)
            rows.append([score, f"{cost:.3f}", f"{np.median(ratio):.3f}", f"{ratio.max():.3f}",
                         f"{st['tau_min']:.3f}", ", ".join(f"{v:.3g}" for v in med)])  # fmt: skip
        print(f"\nbatch 32 latency and batch 64 training memory, 1 thread, R = {args.chosen}:\n")
        print("\n".join(markdown_table(
            ["score", "s / measurement", "median max/min", "worst max/min", "τ worst",
             "median per model (tiny … large)"], rows)))  # fmt: skip
    finally:
        for p in procs:
            p.terminate()
            p.join()


if __name__ == "__main__":
    main()
