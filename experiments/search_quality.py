"""How many trials does the search need to find a NAS-Bench-201 cell in the top 1% / top 5%?

Simulated searches over a lookup table, so that hundreds of searches cost seconds:

- the space is restricted to the cells of the dev CSV (``$NASNTK_SHARED/data/nb201/nb201_dev.csv``,
  1,500 cells with their 200-epoch CIFAR-10 test accuracy), or its first ``--limit`` cells;
- each cell's scores come from a per-cell score table: ``--scores-csv`` (the output of
  ``nasntk score`` / ``nasntk benchmark --cache``: a ``spec`` column with the cell string and one
  column per score), else computed here (resumably) with ``nasntk.scorecache.score_specs`` on
  ``--n`` CIFAR-10 images into ``experiments/out/search_quality/scores_<data>_n<N>_default-<tag>.csv``
  (``tag``: a hash of the default score's description, so a redefined default is rescored);
- the default is a rank aggregate over a population (issue 21): cells scored here one by one get
  its lone-model value (``pntk_live_g``); for the aggregate itself, pass ``--scores-csv`` from
  ``python experiments/peers.py table --score default`` (exact ranks over the scored cells);
- "top x%" is the best ⌈x% · M⌉ of the M cells by CIFAR-10 accuracy.

Methods (each run ``--seeds`` times for ``--budget`` trials; a trial is one distinct cell scored):

- ``tpe``, ``evolution``, ``local``: the search's samplers (``nasntk search --sampler``:
                  Optuna TPE, regularized evolution, local search) maximising the default score;
- ``tpe+params``  Optuna TPE maximising the parameter count (the strongest simple baseline);
- ``random+default``  uniform random cells, the incumbent picked by the default score;
- ``random``      uniform random cells, the incumbent picked by the true accuracy: classic random
                  search, where every trial is a full training run (an oracle for its own picks).

A sampler proposes cells of the full 15,625-cell space through the nb201 space's own ``suggest``;
a proposal outside the table (or already scored) is mapped to the nearest unscored table cell
(Hamming distance over the six edges, ties broken at random), which is what the trial scores and
what the sampler learns from. The table holds ~10 % of the space, so a mutation's "one edge
changed" often lands a few edges away: the mutation samplers are handicapped here, not helped.
The incumbent after t trials is the cell with the best objective so far; "trials needed" is the
first t at which it lies in the top x% (mean over seeds; seeds that never get there within the
budget are counted at the budget and reported). Also printed: where the score's best cell of the
whole table ranks — the incumbent every long enough search with that score converges to.

    OMP_NUM_THREADS=1 python experiments/search_quality.py --limit 300 --seeds 10
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import math
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import optuna

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NASNTK_SHARED", ROOT.parent / "shared"))
OUT = ROOT / "experiments" / "out" / "search_quality"
TOPS = (0.01, 0.05)
METHODS = ("tpe", "evolution", "local", "random+default", "tpe+params", "random")


# ------------------------------------------------------------------------------------------------
# The lookup table
# ------------------------------------------------------------------------------------------------
def read_truth(path: Path, limit: int | None) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    return rows[:limit] if limit else rows


def read_scores(path: Path) -> dict[str, dict[str, str]]:
    """Per spec, its rows merged, later non-empty values winning (a rescored score replaces the
    earlier value, as the benchmark cache reads)."""
    from nasntk.scorecache import read_cache

    return read_cache(path)


def compute_scores(archs: list[str], data: str, n: int, cache: Path) -> dict[str, dict[str, str]]:
    """Score every cell (default, params) with the public API; resumable through ``cache``."""
    from nasntk.scorecache import score_specs

    cache.parent.mkdir(parents=True, exist_ok=True)
    start, done = time.perf_counter(), 0
    rows = score_specs("nb201", archs, data=data, out=cache, scores=["default"], n=n)
    for done, _ in enumerate(rows, start=1):
        if done % 50 == 0:
            rate = (time.perf_counter() - start) / done
            print(f"  {done}/{len(archs)} cells ({rate:.2f} s/cell incl. cached)", file=sys.stderr)
    return read_scores(cache)


def _float(v: object) -> float:
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return f


def build_table(truth: list[dict[str, str]], scores: dict[str, dict[str, str]], space) -> dict:
    """Arrays over the M cells: ops (M×6 op indices), accuracy, default score, params."""
    from nasntk.search_spaces.nb201 import OPS

    keys, ops, acc, default, params = [], [], [], [], []
    missing = 0
    for r in truth:
        spec = space.parse(r["arch"])
        text = space.format(spec)
        s = scores.get(text)
        if s is None:
            missing += 1
            continue
        keys.append(text)
        ops.append([OPS.index(o) for o in spec["ops"]])
        acc.append(float(r["cifar10_test_acc"]))
        default.append(_float(s.get("default")))
        p = _float(s.get("params"))
        params.append(p if math.isfinite(p) else float(r["params_m"]) * 1e6)
    if missing:
        print(
            f"note: {missing} cells of the truth CSV have no score row; left out", file=sys.stderr
        )
    default_arr = np.array(default)
    finite = np.isfinite(default_arr)
    if not finite.all():  # a failed kernel ranks last, as in the search
        default_arr[~finite] = np.nanmin(default_arr[finite]) - 1.0 if finite.any() else 0.0
    return {
        "keys": keys,
        "ops": np.array(ops, dtype=np.int64),
        "acc": np.array(acc),
        "default": default_arr,
        "params": np.array(params),
    }


# ------------------------------------------------------------------------------------------------
# Simulated searches: each returns the sequence of cells (indices into the table) it scored
# ------------------------------------------------------------------------------------------------
def sampler_search(
    table: dict, objective: np.ndarray, budget: int, seed: int, space, sampler: str = "tpe"
) -> list[int]:
    """A search sampler over the nb201 space, proposals projected onto the nearest unscored
    table cell."""
    from nasntk.search_spaces.nb201 import EDGE_NAMES, OPS
    from nasntk.study.samplers import make_sampler

    rng = np.random.default_rng(seed + 10_000)
    sampler = make_sampler(sampler, seed, space=space)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    dists = {n: optuna.distributions.CategoricalDistribution(list(OPS)) for n in EDGE_NAMES}
    scored = np.zeros(len(table["keys"]), dtype=bool)
    order: list[int] = []
    while len(order) < budget:
        trial = study.ask()
        spec = space.suggest(trial)
        proposal = np.array([OPS.index(o) for o in spec["ops"]])
        dist = (table["ops"] != proposal).sum(1).astype(float) + rng.random(len(scored)) * 0.5
        dist[scored] = np.inf
        i = int(np.argmin(dist))
        scored[i] = True
        order.append(i)
        value = float(objective[i])
        if (table["ops"][i] == proposal).all():
            study.tell(trial, value)
        else:  # TPE learns from the cell that was actually scored
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            params = {n: OPS[k] for n, k in zip(EDGE_NAMES, table["ops"][i], strict=True)}
            study.add_trial(
                optuna.trial.create_trial(params=params, distributions=dists, value=value)
            )
    return order


def random_search(m: int, budget: int, seed: int) -> list[int]:
    return np.random.default_rng(seed).permutation(m)[:budget].tolist()


def incumbent_curve(order: list[int], objective: np.ndarray) -> np.ndarray:
    """Index of the best-by-objective cell after each trial (ties: the earlier one)."""
    best, out = -1, []
    for i in order:
        if best < 0 or objective[i] > objective[best]:
            best = i
        out.append(best)
    return np.array(out)


def first_hit(incumbents: np.ndarray, top: np.ndarray) -> int | None:
    hits = np.flatnonzero(top[incumbents])
    return int(hits[0]) + 1 if hits.size else None


# ------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--truth", type=Path, default=SHARED / "data" / "nb201" / "nb201_dev.csv")
    ap.add_argument(
        "--scores-csv", type=Path, default=None, help="per-cell scores (spec, default, params)"
    )
    ap.add_argument("--limit", type=int, default=None, help="use only the first K dev cells")
    ap.add_argument("--data", default="cifar10", help="images for computing scores")
    ap.add_argument("--n", type=int, default=64, help="images per kernel when computing scores")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument(
        "--budget", type=int, default=None, help="trials per search (default: min(200, M))"
    )
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)

    if not args.truth.is_file():
        print(f"truth CSV not found: {args.truth} (set NASNTK_SHARED)", file=sys.stderr)
        return 2
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    from nasntk import proxies
    from nasntk.search_spaces import get as get_space

    space = get_space("nb201")

    truth = read_truth(args.truth, args.limit)
    if args.scores_csv is not None:
        scores = read_scores(args.scores_csv)
        source = str(args.scores_csv)
    else:
        # The cache is keyed by the default score's description, so redefining it rescored.
        about = proxies.get("default").help
        tag = hashlib.sha1(about.encode()).hexdigest()[:8]
        cache = args.out / f"scores_{args.data.split(':')[0]}_n{args.n}_default-{tag}.csv"
        t0 = time.perf_counter()
        scores = compute_scores([r["arch"] for r in truth], args.data, args.n, cache)
        source = f"{cache} (computed/resumed in {time.perf_counter() - t0:.0f} s)"
    table = build_table(truth, scores, space)
    m = len(table["keys"])
    budget = min(args.budget or 200, m)
    acc = table["acc"]
    order_acc = np.argsort(-acc, kind="stable")
    tops = {}
    for frac in TOPS:
        k = max(1, math.ceil(frac * m))
        mask = np.zeros(m, dtype=bool)
        mask[order_acc[:k]] = True
        tops[frac] = mask
    print(
        f"{m} cells ({args.truth.name}), scores from {source}; budget {budget} trials, {args.seeds} seeds"
    )

    from scipy import stats

    print("\nwhole-table check (what a long search with each objective converges to):")
    for name in ("default", "params"):
        v = table[name]
        best = int(np.argmax(v))
        pct = 100.0 * (1 + int((acc > acc[best]).sum())) / m
        tau = stats.kendalltau(v, acc).statistic
        print(
            f"  {name:8s} Kendall τ vs CIFAR-10 {tau:+.3f}; its best cell is at top {pct:.1f}% "
            f"({acc[best]:.2f}% acc; best of table {acc.max():.2f}%)"
        )

    curves: dict[str, dict[float, np.ndarray]] = {}
    hits: dict[str, dict[float, list[int | None]]] = {}
    regret: dict[str, np.ndarray] = {}
    t0 = time.perf_counter()
    for method in METHODS:
        inc_all = []
        for seed in range(args.seeds):
            if method in ("tpe", "evolution", "local", "tpe+params"):
                objective = table["params" if method == "tpe+params" else "default"]
                sampler = method.split("+")[0]
                order = sampler_search(table, objective, budget, seed, space, sampler)
            else:
                order = random_search(m, budget, seed)
            picker = {"tpe+params": table["params"], "random": acc}.get(method, table["default"])
            inc_all.append(incumbent_curve(order, picker))
        inc = np.stack(inc_all)  # seeds × budget
        curves[method] = {f: tops[f][inc].mean(0) for f in TOPS}
        hits[method] = {f: [first_hit(row, tops[f]) for row in inc] for f in TOPS}
        regret[method] = (acc.max() - acc[inc]).mean(0)
    sim_seconds = time.perf_counter() - t0

    print(
        f"\ntrials until the incumbent is in the top x% (mean over {args.seeds} seeds; "
        f"'>' = some seeds never within {budget}):"
    )
    header = f"  {'method':16s}" + "".join(
        f" | top {int(f * 100)}%: mean trials  reached  P(final)" for f in TOPS
    )
    print(header)
    for method in METHODS:
        cells = []
        for f in TOPS:
            h = hits[method][f]
            reached = [x for x in h if x is not None]
            mean = np.mean([x if x is not None else budget for x in h])
            flag = ">" if len(reached) < len(h) else " "
            cells.append(
                f" | {flag}{mean:6.1f}            {len(reached):2d}/{len(h):<2d}   "
                f"{curves[method][f][-1]:.2f}  "
            )
        print(f"  {method:16s}" + "".join(cells))
    print("\nmean regret (best accuracy of the table − incumbent's accuracy), percentage points:")
    for t in (10, 25, 50, 100, budget):
        if t <= budget:
            print(
                f"  after {t:3d} trials: "
                + "  ".join(f"{mth} {regret[mth][t - 1]:.2f}" for mth in METHODS)
            )
    print(f"(simulations took {sim_seconds:.1f} s)")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    args.out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4), dpi=110)
    x = np.arange(1, budget + 1)
    for ax, f in zip(axes[:2], TOPS, strict=True):
        for method in METHODS:
            ax.plot(x, curves[method][f], label=method)
        ax.set_title(f"P(incumbent in top {int(f * 100)}%)")
        ax.set_xlabel("trials (cells scored)")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    for method in METHODS:
        axes[2].plot(x, regret[method], label=method)
    axes[2].set_title("mean regret (CIFAR-10 accuracy points)")
    axes[2].set_xlabel("trials (cells scored)")
    axes[2].grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"nb201 dev: {m} cells, {args.seeds} seeds per method", fontsize=10)
    fig.tight_layout()
    png = args.out / "search_quality.png"
    fig.savefig(png)
    print(f"plot: {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
