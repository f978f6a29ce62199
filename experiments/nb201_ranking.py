"""NAS-Bench-201 dev split: how well every training-free score ranks the cells, side by side.

Two parts, both resumable (per-cell results are cached in CSVs under experiments/out/):

1. ``benchmark`` (default): every registered score of every cell of the dev split (1,500 cells,
   CIFAR-10 images) via ``nasntk.benchmark`` — Kendall τ with a 95 % bootstrap CI, Spearman ρ and
   the top-10 hit rate against CIFAR-10 / CIFAR-100 / ImageNet16-120 accuracy — plus the seconds
   per cell of the ``default`` score alone (timed on ``--time-cells`` cells with 2 threads) and
   scatter plots of the default score against each accuracy column
   (experiments/out/nb201_default_scatter.png).
2. ``configs``: the configuration sweep behind the default — pNTK spectra under the eval and
   frozen BatchNorm modes ("batch" is too slow to sweep), N, initialisation seed; centring;
   kernel regression (split, ridge, leave-one-out); per-candidate aggregations with fixed weights
   — on all scored cells (``--full``, from the kernels ``score`` kept) or on a fixed-seed subset
   (``--subset``), each configuration reported with bootstrap 95 % CIs of τ.

    python experiments/nb201_ranking.py score --shard 0/2 &   # the 1,500 cells, 2 processes,
    python experiments/nb201_ranking.py score --shard 1/2 &   # resumable; also keeps each K
    python experiments/nb201_ranking.py score --shard 0/2 --scores default &  # after changing
    python experiments/nb201_ranking.py score --shard 1/2 --scores default &  # one score
    python experiments/nb201_ranking.py benchmark [--limit K]
    python experiments/nb201_ranking.py configs [--subset 200]

Data: ``$NASNTK_SHARED`` (default ../shared beside the checkout): data/cifar10_test.npz and
data/nb201/nb201_dev.csv. Run with ``OMP_NUM_THREADS=1`` on a shared machine.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

import nasntk
from nasntk import groundtruth, proxies, rankstats, scorecache, spectral
from nasntk.proxies import classic as baselines
from nasntk.search_spaces import get as get_space
from nasntk.tables import markdown_table

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NASNTK_SHARED", ROOT.parent / "shared"))
TRUTH = SHARED / "data" / "nb201" / "nb201_dev.csv"
CIFAR = SHARED / "data" / "cifar10_test.npz"
OUT = ROOT / "experiments" / "out"
COLUMNS = ("cifar10_test_acc", "cifar100_test_acc", "imagenet16_test_acc")
SHORT = {"cifar10_test_acc": "C10", "cifar100_test_acc": "C100", "imagenet16_test_acc": "IN16"}
N_BOOT = 1000


def _ci(score: np.ndarray, acc: np.ndarray) -> str:
    point, lo, hi = rankstats.bootstrap_ci(score, acc, n_boot=N_BOOT, seed=0)
    return f"{point:.3f} [{lo:.3f}, {hi:.3f}]"


# ================================================================================================
# Part 1: the benchmark of every registered score on the whole dev split
# ================================================================================================
def run_benchmark(args: argparse.Namespace) -> None:
    data = f"cifar10:{CIFAR}"
    OUT.mkdir(parents=True, exist_ok=True)
    cache = OUT / "nb201_dev_scores.csv"
    merge_shards(cache)
    start = time.time()

    def progress(done: int, total: int) -> None:
        if done % 25 == 0 or done == total:
            print(
                f"  {done}/{total} cells, {time.time() - start:.0f} s", file=sys.stderr, flush=True
            )

    result = nasntk.benchmark(
        "nb201", truth=TRUTH, data=data, limit=args.limit, n=args.n, cache=cache, progress=progress
    )
    truth = result.truth
    print(f"\n## NAS-Bench-201 dev split: {result.n} cells, CIFAR-10 images, N = {args.n}\n")
    print("Kendall τ [95 % bootstrap CI] / Spearman ρ / top-10 hit rate; scores oriented so that")
    print("higher = predicted better.\n")
    head = "| score | " + " | ".join(f"τ {SHORT[c]}" for c in COLUMNS)
    head += " | " + " | ".join(f"ρ {SHORT[c]}" for c in COLUMNS) + " | top-10 C10 |"
    print(head)
    print("|" + "---|" * (2 + 2 * len(COLUMNS)))
    order = sorted(
        result.scores, key=lambda s: -np.nan_to_num(result.scores[s][COLUMNS[0]]["kendall"], nan=-9)
    )
    for name in order:
        oriented = rankstats.orient(result.values[name], result.directions.get(name, "maximize"))
        taus = [_ci(oriented, truth.columns[c]) for c in COLUMNS]
        rhos = [f"{result.scores[name][c]['spearman']:.3f}" for c in COLUMNS]
        label = f"**{name}**" if name == result.default else name
        hit = result.top10[name][COLUMNS[0]]
        print(f"| {label} | " + " | ".join(taus + rhos) + f" | {hit:.1f} |")
    print(
        f"\nseconds per cell (all {len(result.scores)} scores, as run): {result.seconds_per_cell:.3f}"
    )
    print("\nPaired bootstrap (same resampled cells) of τ(default) − τ(baseline), 95 % CI:\n")
    for base in ("naswot", "params"):
        if base not in result.values:
            continue
        diffs = [paired_difference(result, result.default, base, c) for c in COLUMNS]
        print(
            f"- vs {base}: "
            + "; ".join(f"{SHORT[c]} {d}" for c, d in zip(COLUMNS, diffs, strict=True))
        )
    (OUT / "nb201_benchmark.json").write_text(json.dumps(result.to_json(), indent=2) + "\n")

    scatter(result, OUT / "nb201_default_scatter.png")
    if args.time_cells <= 0:
        return
    archs = truth.archs[: args.time_cells]
    secs = time_default(archs, n=args.n)
    print(
        f"seconds per cell of `default` alone ({len(secs)} cells, one process, 2 torch threads, "
        f"wall): mean {np.mean(secs):.3f}, median {np.median(secs):.3f}, max {np.max(secs):.3f}"
    )
    per_cell = time_default_workers(archs, n=args.n)
    print(
        f"seconds per cell of `default` alone ({len(archs)} cells, 2 processes × 1 thread as "
        f"`nasntk search --workers 2`, wall / cells): {per_cell:.3f}"
    )


def paired_difference(result, a: str, b: str, column: str) -> str:
    """τ(a) − τ(b) against ``column`` with a percentile CI from resampling cells (both scores on
    the same resample, so the CI is of the difference itself)."""
    from scipy import stats

    va = rankstats.orient(result.values[a], result.directions.get(a, "maximize"))
    vb = rankstats.orient(result.values[b], result.directions.get(b, "maximize"))
    acc = result.truth.columns[column]
    rng = np.random.default_rng(0)
    diffs = []
    for _ in range(N_BOOT):
        i = rng.integers(0, len(acc), len(acc))
        diffs.append(
            stats.kendalltau(va[i], acc[i]).statistic - stats.kendalltau(vb[i], acc[i]).statistic
        )
    point = stats.kendalltau(va, acc).statistic - stats.kendalltau(vb, acc).statistic
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return f"{point:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def time_default(archs: tuple[str, ...], *, n: int, threads: int = 2) -> list[float]:
    """Wall seconds of building a cell and computing ``default`` alone, per cell."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        space = get_space("nb201")
        batch = nasntk.load_data(f"cifar10:{CIFAR}", n)
        secs = []
        for arch in archs:
            t = time.perf_counter()
            torch.manual_seed(0)
            model = space.build(space.parse(arch), num_classes=10)
            proxies.compute(model, batch, [proxies.DEFAULT])
            secs.append(time.perf_counter() - t)
        return secs
    finally:
        torch.set_num_threads(before)


def _time_share(archs: tuple[str, ...], n: int) -> list[float]:
    return time_default(archs, n=n, threads=1)


def time_default_workers(archs: tuple[str, ...], *, n: int, workers: int = 2) -> float:
    """Wall seconds per cell when ``workers`` processes (1 thread each, as ``nasntk search
    --workers``) share the cells: the throughput of the whole machine."""
    import multiprocessing as mp

    parts = [archs[i::workers] for i in range(workers)]
    with mp.get_context("spawn").Pool(workers) as pool:
        pool.starmap(_time_share, [(p[:1], n) for p in parts])  # imports, data: not timed
        start = time.perf_counter()
        pool.starmap(_time_share, [(p, n) for p in parts])
        return (time.perf_counter() - start) / len(archs)


def scatter(result, path: Path) -> None:
    """Default score vs each accuracy column, one panel each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    name = result.default or proxies.DEFAULT
    v = np.asarray(result.values[name], dtype=float)
    ok = np.isfinite(v)
    fig, axes = plt.subplots(1, len(COLUMNS), figsize=(5 * len(COLUMNS), 4.2))
    for ax, col in zip(axes, COLUMNS, strict=True):
        acc = result.truth.columns[col]
        tau = result.scores[name][col]["kendall"]
        ax.scatter(v[ok], acc[ok], s=4, alpha=0.5)
        ax.set_xlabel(f"{name} score")
        ax.set_ylabel(f"{col} (%)")
        ax.set_title(f"{SHORT[col]}: Kendall τ = {tau:.3f} ({ok.sum()} cells)")
        ax.set_ylim(max(0.0, float(np.percentile(acc, 2)) - 5), float(acc.max()) + 1)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"scatter plots: {path.relative_to(ROOT)}")


def run_score(args: argparse.Namespace) -> None:
    """Score shard i of k of the dev split (rows r with r % k == i) with every registered score.

    Rows go to ``out/nb201_dev_scores.shard<i>.csv`` (the ``nasntk score`` CSV format, resumable);
    ``benchmark`` merges the shards into its cache, so running the shards in parallel processes
    is the same as one ``nasntk benchmark`` run. Every pNTK the scores compute (frozen and eval
    BatchNorm, seed 0) is kept in ``out/nb201_kernels/<row>.npz`` for the configuration sweep.
    """
    i, k = (int(v) for v in args.shard.split("/"))
    truth = groundtruth.read_truth(TRUTH)
    batch = nasntk.load_data(f"cifar10:{CIFAR}", args.n)
    folder = OUT / "nb201_kernels"
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "labels.npy", batch.y.numpy())
    names = args.scores or proxies.names()
    tag = "" if args.scores is None else "." + "+".join(names)  # a rescore: rows of its own
    out = OUT / f"nb201_dev_scores.shard{i}{tag}.csv"
    start, rows = time.time(), [r for r in range(len(truth)) if r % k == i]
    for count, r in enumerate(rows, 1):
        kernels: dict[str, np.ndarray] = {}

        def recording(model, x, _kernels=kernels, **opts):
            kern = nasntk.pntk(model, x, **opts)
            _kernels[f"K_{opts['bn']}"] = kern.detach().cpu().numpy()
            return kern

        keep = functools.partial(proxies.compute, kernel_fn=recording)
        for _ in scorecache.score_specs("nb201", [truth.archs[r]], data=batch, out=out, n=args.n,
                                compute=keep, scores=names):  # fmt: skip
            pass
        if kernels:
            tmp = folder / f"{r}.tmp.npz"
            np.savez(tmp, **kernels)
            os.replace(tmp, folder / f"{r}.npz")
        if count % 25 == 0:
            print(f"  shard {i}/{k}: {count}/{len(rows)}, {time.time() - start:.0f} s", flush=True)


def merge_shards(cache: Path) -> None:
    """Append the shard CSVs' rows that the cache lacks to the benchmark cache, full runs
    (``shard<i>.csv``) before rescores (``shard<i>.<scores>.csv``): the cache reader merges a
    spec's rows with later values winning, so a rescored score replaces the earlier one (and
    its seconds add to the cell's)."""
    import csv

    def key(r: dict[str, str]) -> tuple:
        scores = frozenset(c for c, v in r.items() if v and c not in scorecache.META_COLUMNS)
        return r["spec"], r["data"], r["n"], scores

    shards = sorted(OUT.glob("nb201_dev_scores.shard*.csv"), key=lambda p: (p.name.count("."), p))
    rows = scorecache.read_rows(cache) if cache.exists() else []
    have = {key(r) for r in rows}
    added = []
    for shard in shards:
        for r in scorecache.read_rows(shard):
            if key(r) not in have:
                have.add(key(r))
                added.append(r)
    if not added:
        return
    rows += added
    fields = list(dict.fromkeys(c for r in rows for c in r))  # a rescore may add columns
    with cache.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, restval="")
        writer.writeheader()
        writer.writerows(rows)


# ================================================================================================
# Part 2: the configuration sweep (raw per-cell quantities, then configurations from them)
# ================================================================================================
#: Kernel settings: (bn, N, init seed). Every quantity of a setting comes from one pNTK.
SETTINGS: tuple[tuple[str, int, int], ...] = (
    ("frozen", 64, 0),
    ("eval", 64, 0),
    ("frozen", 64, 1),
    ("eval", 64, 1),
    ("frozen", 64, 2),
    ("eval", 64, 2),
    ("frozen", 128, 0),
    ("eval", 128, 0),
    ("frozen", 32, 0),
    ("eval", 32, 0),
)
# bn="batch" is not in the sweep: its kernel needs the Jacobian of the whole batch's output
# (generic vmap path), measured at ~21 s per cell at N = 32 here, 20× the frozen kernel.


def _safe(fn: Callable[[], float]) -> float:
    try:
        return float(fn())
    except spectral.ScoreUndefined as exc:
        return exc.value if exc.value is not None else math.nan


def _loo_mse(k: np.ndarray, targets: np.ndarray, ridge: float) -> float:
    """Leave-one-out MSE of kernel ridge regression, in closed form: e = [A⁻¹Y]_i / [A⁻¹]_ii."""
    a = k + ridge * float(np.mean(np.diag(k))) * np.eye(len(k))
    try:
        inv = np.linalg.inv(a)
    except np.linalg.LinAlgError:
        return math.inf
    err = (inv @ targets) / np.diag(inv)[:, None]
    return float(np.mean(err**2))


def kernel_quantities(k: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Every raw quantity of one pNTK K (N×N) that a configuration may use."""
    q: dict[str, float] = {}
    if not np.all(np.diag(k) > 0):  # a sample without gradient: every quantity is undefined
        return q
    eigs = spectral.eigenvalues(k)
    ceigs = spectral.centered_eigenvalues(k)
    q["cond"] = _safe(lambda: spectral.condition_number(eigs))
    q["cond_c"] = _safe(lambda: spectral.condition_number(ceigs))
    q["log_trace"] = math.log10(max(float(np.trace(k)), 1e-300))
    q["log_lmin"] = math.log10(max(float(eigs[0]), 1e-300))
    q["log_lmin_c"] = math.log10(max(float(ceigs[0]), 1e-300))
    q["eff_rank"] = _safe(lambda: spectral.effective_rank(eigs))
    q["eff_rank_c"] = _safe(lambda: spectral.effective_rank(ceigs))
    targets = spectral.one_hot_centered(labels, 10)
    h = np.eye(len(k)) - 1.0 / len(k)
    kc = h @ k @ h
    for ridge in (1e-3, 1e-1):
        for frac in (0.5, 0.75):
            r = _safe_krr(k, labels, frac, ridge)
            q[f"krr_acc_f{frac:g}_r{ridge:g}"] = r["accuracy"]
            q[f"krr_mse_f{frac:g}_r{ridge:g}"] = r["mse"]
        q[f"loo_mse_r{ridge:g}"] = _loo_mse(k, targets, ridge)
        q[f"loo_mse_c_r{ridge:g}"] = _loo_mse(kc, targets, ridge)
    q["flat"] = _safe(lambda: spectral.log10_flatness(eigs))
    q["flat_c"] = _safe(lambda: spectral.log10_flatness(ceigs))
    d = np.sqrt(np.clip(np.diag(k), 1e-300, None))
    corr = k / d[:, None] / d[None, :]
    q["flat_corr"] = _safe(lambda: spectral.log10_flatness(spectral.eigenvalues(corr)))
    q["flat_corr_c"] = _safe(
        lambda: spectral.log10_flatness(spectral.correlation_centered_eigenvalues(k))
    )
    q["cond_no_top"] = math.log10(eigs[-2] / eigs[0]) if eigs[0] > 0 else math.inf
    rest = eigs[:-1]  # the top eigenvalue set aside
    ok = eigs[0] > len(eigs) * np.finfo(float).eps * eigs[-1]
    q["min_am_no_top"] = math.log10(rest[0] / rest.mean()) if ok else -math.inf
    q["min_gm_no_top"] = _safe(lambda: spectral.log10_min_over_gm(eigs))
    yy = targets @ targets.T
    q["kta_c"] = float(np.sum(kc * yy) / (np.linalg.norm(kc) * np.linalg.norm(yy) + 1e-300))
    return q


def _safe_krr(k: np.ndarray, labels: np.ndarray, frac: float, ridge: float) -> dict[str, float]:
    try:
        return spectral.kernel_regression_scores(k, labels, 10, train_frac=frac, ridge=ridge)
    except spectral.ScoreUndefined:
        return {"accuracy": math.nan, "mse": math.inf}


def subset_cells(size: int, offset: int = 0) -> list[int]:
    """Dev-split rows ``offset .. offset+size`` of a fixed permutation (numpy default_rng(0))."""
    truth = groundtruth.read_truth(TRUTH)
    perm = np.random.default_rng(0).permutation(len(truth))
    return sorted(perm[offset : offset + size].tolist())


def _setting_dir(bn: str, n: int, seed: int) -> Path:
    return OUT / "nb201_configs" / f"{bn}_n{n}_s{seed}"


def sweep_setting(bn: str, n: int, seed: int, rows: list[int]) -> None:
    """Cache the pNTK of one kernel setting for each subset cell: ``<dir>/<row>.npz`` (resumable).

    Each file holds K (float64), the cell's params, the seconds the kernel took and (frozen BN,
    seed 0) NASWOT, so any quantity of K can be tried later without recomputing it.
    """
    folder = _setting_dir(bn, n, seed)
    folder.mkdir(parents=True, exist_ok=True)
    truth = groundtruth.read_truth(TRUTH)
    if (n, seed) == (64, 0) and bn in ("frozen", "eval"):
        _reuse_scored(bn, rows, folder)
    todo = [i for i in rows if not (folder / f"{i}.npz").exists()]
    if not todo:
        return
    space = get_space("nb201")
    batch = nasntk.load_data(f"cifar10:{CIFAR}", n)
    np.save(folder / "labels.npy", batch.y.numpy())
    for count, i in enumerate(todo, 1):
        spec = space.parse(truth.archs[i])
        torch.manual_seed(seed)
        model = space.build(spec, num_classes=10)
        t = time.perf_counter()
        k = nasntk.pntk(model, batch.x, bn=bn, device="cpu").numpy()
        item = {"K": k, "seconds": time.perf_counter() - t, "params": space.params(spec)}
        if bn == "frozen" and seed == 0:
            item["naswot"] = proxies.compute(model, batch, ["naswot"], bn="frozen")["naswot"]
        tmp = folder / f"{i}.tmp.npz"
        np.savez(tmp, **item)
        os.replace(tmp, folder / f"{i}.npz")
        if count % 10 == 0:
            print(f"  {folder.name}: {count}/{len(todo)}", file=sys.stderr, flush=True)


def _reuse_scored(bn: str, rows: list[int], folder: Path) -> None:
    """Fill a (bn, N = 64, seed 0) setting from the kernels ``score`` kept: the same computation
    (same images, same initialisation), so it is not repeated; its seconds are not known (nan)."""
    kept = OUT / "nb201_kernels"
    scores = OUT / "nb201_dev_scores.csv"
    if not (kept / "labels.npy").exists() or not scores.exists():
        return
    truth = groundtruth.read_truth(TRUTH)
    by_spec = {r["spec"]: r for r in scorecache.read_rows(scores)}
    np.save(folder / "labels.npy", np.load(kept / "labels.npy"))
    for i in rows:
        src, row = kept / f"{i}.npz", by_spec.get(truth.archs[i])
        if (folder / f"{i}.npz").exists() or row is None or not src.exists():
            continue
        z = np.load(src)
        if f"K_{bn}" not in z:
            continue
        item = {"K": z[f"K_{bn}"], "seconds": math.nan, "params": float(row["params"])}
        if bn == "frozen":
            item["naswot"] = float(row["naswot"])
        np.savez(folder / f"{i}.npz", **item)


@functools.cache
def _weight_layers(arch: str) -> int:
    """Number of weight tensors with ndim ≥ 2 (conv / linear layers) of a cell's network."""
    space = get_space("nb201")
    with torch.device("meta"):
        model = space.build(space.parse(arch), num_classes=10)
    return sum(p.ndim >= 2 for p in model.parameters())


@functools.lru_cache(maxsize=1)
def _images(n: int = 4) -> torch.Tensor:
    return nasntk.load_data(f"cifar10:{CIFAR}", 64).x[:n]


@functools.cache
def _live_weight_layers(arch: str) -> int:
    """Weight tensors (ndim ≥ 2) of a cell's network the output depends on (4 images, as
    ``nasntk.baselines.live_params``)."""
    space = get_space("nb201")
    torch.manual_seed(0)
    model = space.build(space.parse(arch), num_classes=10)
    return sum(live for p, live in baselines.live_tensors(model, _images()) if p.ndim >= 2)


def _quantities(k: np.ndarray, labels: np.ndarray, arch: str) -> dict[str, float]:
    try:
        q = kernel_quantities(spectral.as_matrix(k), labels)
    except spectral.ScoreUndefined:  # non-finite kernel: every quantity is missing
        q = {}
    q["weight_layers"] = float(_weight_layers(arch))
    q["live_weight_layers"] = float(_live_weight_layers(arch))
    return q


def _stack(per_cell: list[dict[str, float]]) -> dict[str, np.ndarray]:
    keys = sorted(set().union(*per_cell))
    return {k: np.array([q.get(k, math.nan) for q in per_cell]) for k in keys}


def _csv_by_spec() -> dict[str, dict[str, str]]:
    """The benchmark cache's rows per spec, merged (later non-empty values win: rescores)."""
    return scorecache.read_cache(OUT / "nb201_dev_scores.csv")


def _load_setting(bn: str, n: int, seed: int, rows: list[int]) -> dict[str, np.ndarray] | None:
    """Per-cell quantities of a setting (None unless every subset cell is cached)."""
    folder = _setting_dir(bn, n, seed)
    files = [folder / f"{i}.npz" for i in rows]
    if not all(f.exists() for f in files):
        return None
    labels = np.load(folder / "labels.npy")
    truth = groundtruth.read_truth(TRUTH)
    scored = _csv_by_spec()
    per_cell = []
    for i, f in zip(rows, files, strict=True):
        z = np.load(f)
        q = _quantities(z["K"], labels, truth.archs[i])
        q.update(seconds=float(z["seconds"]), params=float(z["params"]))
        q["live_params"] = float(scored.get(truth.archs[i], {}).get("live_params", "nan"))
        if "naswot" in z:
            q["naswot"] = float(z["naswot"])
        per_cell.append(q)
    return _stack(per_cell)


def _load_scored(rows: list[int]) -> dict[tuple[str, int, int], dict[str, np.ndarray]]:
    """The two N=64, seed-0 settings (frozen, eval) of every scored cell, from the kernels that
    ``score`` kept (``out/nb201_kernels``) and the scores CSV (params, NASWOT, seconds)."""
    folder = OUT / "nb201_kernels"
    truth = groundtruth.read_truth(TRUTH)
    csv_rows = _csv_by_spec()
    labels = np.load(folder / "labels.npy")
    per_bn: dict[str, list[dict[str, float]]] = {"frozen": [], "eval": []}
    for i in rows:
        z, arch = np.load(folder / f"{i}.npz"), truth.archs[i]
        row = csv_rows[arch]
        for bn, per_cell in per_bn.items():
            key = f"K_{bn}"  # absent when the default failed before it needed that kernel
            q = _quantities(z[key], labels, arch) if key in z else {}
            q.update(seconds=math.nan, params=float(row["params"]))  # row seconds: all scores
            q["naswot"] = float(row["naswot"])
            q["live_params"] = float(row.get("live_params", "nan"))
            per_cell.append(q)
    return {(bn, 64, 0): _stack(per_cell) for bn, per_cell in per_bn.items()}


def configurations(s: dict[tuple[str, int, int], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Every configuration tried, as a per-cell score (higher = predicted better)."""
    cfg: dict[str, np.ndarray] = {}
    f0 = s.get(("frozen", 64, 0))
    if f0 is None:
        return cfg
    logp = np.log10(f0["params"])
    live = np.log10(f0["live_params"])
    cfg["log10 params"] = logp
    cfg["log10 live params (the parameters the output depends on)"] = live
    cfg["naswot (frozen BN, N=64)"] = f0["naswot"]
    for (bn, n, seed), q in s.items():
        tag = f"bn={bn}, N={n}, seed {seed}"
        cfg[f"−log κ ({tag})"] = -q["cond"]
        cfg[f"−log κ centred ({tag})"] = -q["cond_c"]
        cfg[f"log flatness, centred correlation ({tag})"] = q["flat_corr_c"]
        cfg[f"log10 params + log flatness, centred correlation ({tag})"] = logp + q["flat_corr_c"]
        if seed != 0:
            continue
        cfg[f"−log λ2/λmin, top eigenvalue dropped ({tag})"] = -q["cond_no_top"]
        cfg[f"log λmin/AM, top eigenvalue dropped ({tag})"] = q["min_am_no_top"]
        cfg[f"log λmin/GM, top eigenvalue dropped ({tag})"] = q["min_gm_no_top"]
        cfg[f"log λmin ({tag})"] = q["log_lmin"]
        cfg[f"log tr K ({tag})"] = q["log_trace"]
        cfg[f"eff. rank centred ({tag})"] = q["eff_rank_c"]
        cfg[f"log flatness GM/AM ({tag})"] = q["flat"]
        cfg[f"log flatness, centred ({tag})"] = q["flat_c"]
        cfg[f"log flatness, correlation ({tag})"] = q["flat_corr"]
        cfg[f"centred kernel-target alignment ({tag})"] = q["kta_c"]
        for frac in (0.5, 0.75):
            for ridge in (1e-3, 1e-1):
                sfx = f"train {frac:g}, ridge {ridge:g}, {tag}"
                cfg[f"KRR acc ({sfx})"] = q[f"krr_acc_f{frac:g}_r{ridge:g}"]
                cfg[f"−KRR MSE ({sfx})"] = -q[f"krr_mse_f{frac:g}_r{ridge:g}"]
        for ridge in (1e-3, 1e-1):
            cfg[f"−LOO MSE (ridge {ridge:g}, {tag})"] = -q[f"loo_mse_r{ridge:g}"]
            cfg[f"−LOO MSE centred (ridge {ridge:g}, {tag})"] = -q[f"loo_mse_c_r{ridge:g}"]
        cfg[f"log10 params − log κ ({tag})"] = logp - q["cond"]
        cfg[f"log10 params − log κ centred ({tag})"] = logp - q["cond_c"]
        cfg[f"log10 params − log λ2/λmin ({tag})"] = logp - q["cond_no_top"]
        cfg[f"log10 params + log flatness, centred ({tag})"] = logp + q["flat_c"]
    for bn in ("frozen", "eval"):
        seeds = [s[(bn, 64, k)] for k in range(3) if (bn, 64, k) in s]
        if len(seeds) == 3:
            mean = {
                k: np.mean([q[k] for q in seeds], axis=0) for k in ("cond", "cond_c", "flat_corr_c")
            }
            tag = f"bn={bn}, N=64, mean of 3 seeds"
            cfg[f"−log κ ({tag})"] = -mean["cond"]
            cfg[f"−log κ centred ({tag})"] = -mean["cond_c"]
            cfg[f"log10 params − log κ ({tag})"] = logp - mean["cond"]
            cfg[f"log10 params − log κ centred ({tag})"] = logp - mean["cond_c"]
            cfg[f"log flatness, centred correlation ({tag})"] = mean["flat_corr_c"]
            cfg[f"log10 params + log flatness, centred correlation ({tag})"] = (
                logp + mean["flat_corr_c"]
            )
    e0 = s.get(("eval", 64, 0))
    if e0 is not None:
        two = "(frozen + eval kernels, N=64, seed 0)"
        flat, cond2 = f0["flat_corr_c"], e0["cond_no_top"]
        cfg[f"log10 params − log κ(frozen) − log κ centred(eval) {two}"] = (
            logp - f0["cond"] - e0["cond_c"]
        )
        cfg[f"log10 params + log flatness(frozen) − log κ centred(eval) {two}"] = (
            logp + flat - e0["cond_c"]
        )
        cfg[f"log10 params + log flatness(frozen) + log flatness centred(eval) {two}"] = (
            logp + flat + e0["flat_c"]
        )
        slow = e0["min_gm_no_top"]
        cfg[f"previous default: log10 params + log flatness(frozen) − log λ2/λmin(eval) {two}"] = (
            logp + flat - cond2
        )
        cfg[f"log10 params + log flatness(frozen) + log λmin/AM(eval), top dropped {two}"] = (
            logp + flat + e0["min_am_no_top"]
        )
        cfg[f"log10 params + log flatness(frozen) + log λmin/GM(eval) {two}"] = logp + flat + slow
        cfg[f"log10 live params + log flatness(frozen) − log λ2/λmin(eval) {two}"] = (
            live + flat - cond2
        )
        cfg[f"**default**: log10 live params + log flatness(frozen) + log λmin/GM(eval) {two}"] = (
            live + flat + slow
        )
        layers = np.log10(f0["weight_layers"])
        live_layers = np.log10(f0["live_weight_layers"])
        cfg["log10 #weight layers (not a pNTK score; explored only)"] = layers
        cfg["log10 #live weight layers (explored only)"] = live_layers
        cfg[f"log10 params + log10 #weight layers + log flatness(frozen) {two}"] = (
            logp + layers + flat
        )
        cfg[f"previous default + log10 #weight layers {two}"] = logp + layers + flat - cond2
        cfg[f"default + log10 #weight layers {two}"] = live + layers + flat + slow
        cfg[f"default + log10 #live weight layers {two}"] = live + live_layers + flat + slow
        for n_, seed_ in ((32, 0), (128, 0), (64, 1), (64, 2)):
            fr, ev = s.get(("frozen", n_, seed_)), s.get(("eval", n_, seed_))
            if fr is not None and ev is not None:
                tag = f"N={n_}, seed {seed_} (frozen + eval kernels)"
                cfg[f"previous default at {tag}"] = logp + fr["flat_corr_c"] - ev["cond_no_top"]
                cfg[f"default at {tag}"] = live + fr["flat_corr_c"] + ev["min_gm_no_top"]
        runs = [(s.get(("frozen", 64, k)), s.get(("eval", 64, k))) for k in range(3)]
        if all(fr is not None and ev is not None for fr, ev in runs):
            cfg["default, mean of its value over seeds 0, 1, 2 (N=64)"] = live + np.mean(
                [fr["flat_corr_c"] + ev["min_gm_no_top"] for fr, ev in runs], axis=0
            )
        old_terms = (logp, flat, -cond2)
        cfg[f"rank mean of (log10 params, log flatness(frozen), −log λ2/λmin(eval)) {two}"] = (
            _rank_mean(*old_terms)
        )
        terms = (live, flat, slow)
        cfg[f"rank mean of (log10 live params, log flatness(frozen), log λmin/GM(eval)) {two}"] = (
            _rank_mean(*terms)
        )
        cfg[f"rank mean of (default, naswot) — naswot is not a pNTK score {two}"] = _rank_mean(
            sum(terms), f0["naswot"]
        )
    return cfg


def _rank_mean(*scores: np.ndarray) -> np.ndarray:
    """Mean of per-score ranks over the population (a non-finite score ranks last). Not a
    per-candidate score: a cell's value changes as other cells are added, unlike the default's."""
    from scipy import stats

    return np.mean([stats.rankdata(np.nan_to_num(v, nan=-np.inf)) for v in scores], axis=0)


def run_configs(args: argparse.Namespace) -> None:
    truth = groundtruth.read_truth(TRUTH)
    if args.full:  # every cell ``score`` kept the kernels of (N = 64, seed 0, frozen + eval)
        folder = OUT / "nb201_kernels"
        merge_shards(OUT / "nb201_dev_scores.csv")
        scored = {r["spec"] for r in scorecache.read_rows(OUT / "nb201_dev_scores.csv")}
        rows = [i for i in range(len(truth))
                if (folder / f"{i}.npz").exists() and truth.archs[i] in scored]  # fmt: skip
        loaded = _load_scored(rows)
        where = "the cells scored by `score`, N = 64, seed 0"
    else:
        rows = subset_cells(args.subset, args.offset)
        wanted = args.settings
        for bn, n, seed in SETTINGS:
            if wanted is None or f"{bn}_n{n}_s{seed}" in wanted:
                sweep_setting(bn, n, seed, rows)
        loaded = {st: _load_setting(*st, rows) for st in SETTINGS}
        loaded = {st: v for st, v in loaded.items() if v is not None}
        where = f"permutation rows {args.offset}..{args.offset + len(rows) - 1}"
    cfg = configurations(loaded)
    acc = {c: truth.columns[c][rows] for c in COLUMNS}
    print(f"\n## Configurations on {len(rows)} dev cells ({where}), CIFAR-10 images\n")
    print(
        "Kendall τ [95 % bootstrap CI, 1000 resamples of cells]; higher score = predicted better;"
    )
    print("s/cell: mean seconds of one pNTK of that setting on this machine, as cached.\n")
    table = []
    for name, v in cfg.items():
        cells = [_ci(rankstats.orient(v), acc[c]) for c in COLUMNS]
        secs = [np.nanmean(q["seconds"]) for (bn, n, sd), q in loaded.items()
                if f"bn={bn}, N={n}, seed {sd}" in name and np.isfinite(q["seconds"]).any()]  # fmt: skip
        sec = f"{secs[0]:.2f}" if secs and np.isfinite(secs[0]) else ""
        table.append([name, *cells, sec])
    columns = ["configuration", *(f"τ {SHORT[c]}" for c in COLUMNS), "s/cell"]
    print("\n".join(markdown_table(columns, table)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = parser.add_subparsers(dest="part", required=True)
    b = sub.add_parser("benchmark", help="every score on the dev split")
    b.add_argument("--limit", type=int, default=None, help="first K dev cells only")
    b.add_argument("--n", type=int, default=64, help="images per kernel")
    b.add_argument(
        "--time-cells", type=int, default=50, help="cells to time `default` alone on (0: skip)"
    )
    sc = sub.add_parser("score", help="score one shard of the dev split (run shards in parallel)")
    sc.add_argument("--shard", default="0/1", help="i/k: rows r with r %% k == i")
    sc.add_argument("--n", type=int, default=64, help="images per kernel")
    sc.add_argument(
        "--scores", nargs="+", default=None, help="rescore only these (rows of their own)"
    )
    c = sub.add_parser("configs", help="the configuration sweep on a subset")
    c.add_argument("--subset", type=int, default=200, help="number of dev cells (fixed seed)")
    c.add_argument("--offset", type=int, default=0, help="start row in the fixed permutation")
    c.add_argument("--settings", nargs="*", default=None, help="only these kernel settings")
    c.add_argument("--full", action="store_true", help="every cell `score` kept kernels of")
    args = parser.parse_args()
    if not TRUTH.is_file() or not CIFAR.is_file():
        sys.exit(f"shared data not found under {SHARED} (set NASNTK_SHARED)")
    if args.part == "benchmark":
        run_benchmark(args)
    elif args.part == "score":
        run_score(args)
    else:
        run_configs(args)


if __name__ == "__main__":
    main()
