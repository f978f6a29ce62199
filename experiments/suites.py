"""One default for every benchmark: score the dev cells of NB201, NB101 and NB301 side by side.

Parts, all resumable (one ``.npz`` per cell under ``experiments/out/suites/<suite>/``):

1. ``score``: for every dev cell of a suite, build the network at init (seed 0), compute the
   library's scores (``default``, ``live_params``, ``params``, ``naswot``, ``synflow``) on N = 64
   CIFAR-10 images through :func:`nasntk.proxies.compute`, and keep both pNTKs the default uses
   (BatchNorm frozen at the batch's statistics, and in eval mode) through its ``kernel_fn`` hook,
   so that every kernel formula below is computed from the very kernels the library made, and
   NASWOT's activation-code kernel K_H with its number of units (``baselines.activation_codes``).
2. ``sweep``: every configuration (terms alone, each candidate default) on every suite, Kendall τ
   with a 95 % bootstrap CI per accuracy column, the anchors of the truth CSV (NASLib's zero-cost
   scores of the same cells, the benchmark's params / FLOPs) beside them, and the paired
   bootstrap CI of (candidate − best anchor) and of (each of :data:`CHALLENGERS` − the default);
   written to ``experiments/out/suites_sweep.md``.
3. ``sizes``: the NB301 cells scored on two proxy sizes (C=8, 5 cells and C=16, 8 cells; the
   wider one on a third of the rows: ``score --suite nb301-wide --shard 0/3``), side by side.
4. ``krr``: kernel-regression accuracy at large N, the ridge chosen by leave-one-out on the
   train part, on a fixed random subset of cells per suite, with its cost.
5. ``timing``: seconds per cell of the default alone, as a search pays it.
6. ``top``: rank 1's true accuracy, regret@5/10 and precision@10 of the default and of each
   configuration set against it (:data:`CHALLENGERS`), from the kept cells.

    OMP_NUM_THREADS=1 python experiments/suites.py score --suite nb101 --shard 0/2 &
    OMP_NUM_THREADS=1 python experiments/suites.py score --suite nb101 --shard 1/2 &
    OMP_NUM_THREADS=1 python experiments/suites.py sweep
    OMP_NUM_THREADS=1 python experiments/suites.py krr --suite nb201 --cells 12 --n 500 --test 200
    python experiments/suites.py timing --cells 40 --threads 2      # seconds per cell

Data: ``$NASNTK_SHARED`` (default ../shared beside the checkout): data/cifar10_test.npz and the
three dev CSVs. Suites whose CSV is absent are skipped.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nasntk import data as data_mod
from nasntk import groundtruth, proxies, rankstats, spectral
from nasntk.kernels import pntk
from nasntk.kernels.prepare import batchnorms
from nasntk.proxies import classic as baselines
from nasntk.search_spaces import get as get_space
from nasntk.tables import markdown_table

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NASNTK_SHARED", ROOT.parent / "shared"))
OUT = ROOT / "experiments" / "out"
N_BOOT = int(os.environ.get("N_BOOT", 1000))
SCORES = ("default", "live_params", "params", "naswot", "synflow")


@dataclass(frozen=True)
class Suite:
    """A benchmark: its truth CSV, the space and options the kernels are computed on."""

    name: str
    truth: Path
    space: str
    options: dict[str, Any] = field(default_factory=dict)

    def folder(self) -> Path:
        tag = "-".join(f"{k}{v}" for k, v in sorted(self.options.items()))
        return OUT / "suites" / (self.name + (f"-{tag}" if tag else ""))


SUITES = {
    "nb201": Suite("nb201", SHARED / "data" / "nb201" / "nb201_dev.csv", "nb201"),
    "nb101": Suite(
        "nb101",
        SHARED / "data" / "nb101" / "nb101_dev.csv",
        "nb101",
        {"stem_channels": 16, "num_cells": 1},
    ),
    "nb301": Suite(
        "nb301", SHARED / "data" / "nb301" / "nb301_dev.csv", "darts", {"C": 8, "layers": 5}
    ),
    # the same cells on a wider, deeper proxy (a third of the dev rows: ``--shard 0/3``)
    "nb301-wide": Suite(
        "nb301", SHARED / "data" / "nb301" / "nb301_dev.csv", "darts", {"C": 16, "layers": 8}
    ),
}


def load_batch(n: int) -> Any:
    """N CIFAR-10 test images, class-balanced, seed 0 (the batch every experiment here uses)."""
    return data_mod.load("cifar10", n, seed=0)


# ------------------------------------------------------------------------------------------------
# 1. score
# ------------------------------------------------------------------------------------------------
def kept_scores(model: torch.nn.Module, batch: Any) -> dict[str, Any]:
    """The library's :data:`SCORES` of ``model`` plus both pNTKs the default computed (``Kf``:
    BatchNorm frozen at the batch statistics, ``Ke``: eval mode; equal without BatchNorm)."""
    kept: dict[str, np.ndarray] = {}

    def keep(model: torch.nn.Module, x: torch.Tensor, **kw: Any) -> torch.Tensor:
        k = pntk(model, x, **kw)
        kept[kw["bn"]] = k.detach().cpu().numpy()
        return k

    res = proxies.compute(model, batch, list(SCORES), kernel_fn=keep)
    if "eval" not in kept and batchnorms(model):  # for the eval-mode terms
        keep(model, batch.x, bn="eval", dtype=torch.float64)
    n = len(batch.y)
    missing = np.full((n, n), np.nan)
    kf = kept.get("frozen", missing)
    try:  # the activation-code kernel NASWOT uses, and its number of units
        k_h, units = baselines.activation_codes(model, batch.x, "frozen")
        codes = {"KH": k_h.numpy(), "units": units}
    except spectral.ScoreUndefined:
        codes = {"KH": missing, "units": 0}
    return {
        "Kf": kf,
        **codes,
        "Ke": kept.get("eval", kf),
        **{s: float(res[s]) for s in SCORES},
        "reasons": repr(res["reasons"]),
    }


def run_score(args: argparse.Namespace) -> None:
    suite = SUITES[args.suite]
    truth = groundtruth.read_truth(suite.truth)
    space = get_space(suite.space, **suite.options)
    batch = load_batch(args.n)
    folder = suite.folder()
    folder.mkdir(parents=True, exist_ok=True)
    shard, of = (int(v) for v in args.shard.split("/"))
    rows = [i for i in range(len(truth)) if i % of == shard][: args.limit]
    shape = {"num_classes": 10, "in_chans": 3, "img_size": 32}
    for i in rows:
        path = folder / f"{i}.npz"
        if path.exists():
            continue
        spec = space.parse_any(truth.archs[i])
        start = time.perf_counter()
        torch.manual_seed(0)
        kept = kept_scores(space.build(spec, **shape), batch)
        seconds = time.perf_counter() - start
        np.savez(
            path,
            y=batch.y.numpy(),
            seconds=seconds,
            params_full=float(get_space(suite.space).params(spec)),
            **kept,
        )
        print(f"{suite.name} {i} {seconds:.2f}s default={kept['default']:.3f}", flush=True)


# ------------------------------------------------------------------------------------------------
# 2. sweep
# ------------------------------------------------------------------------------------------------
def _safe(fn: Callable[[], float]) -> float:
    try:
        v = float(fn())
    except spectral.ScoreUndefined as exc:
        v = -math.inf if exc.value is None else exc.value
    return v if not math.isnan(v) else -math.inf


def alignment(k: np.ndarray, y: np.ndarray, num_classes: int = 10) -> float:
    """Centred kernel-target alignment A(HKH, YYᵀ) (Cortes et al. 2012), Y centred one-hot."""
    yc = spectral.one_hot_centered(y, num_classes)
    n = k.shape[0]
    h = np.eye(n) - 1.0 / n
    kc = h @ k @ h
    t = yc @ yc.T
    return float(np.sum(kc * t) / (np.linalg.norm(kc) * np.linalg.norm(t)))


def _min_over_gm_all(eigs: np.ndarray) -> float:
    """log10(λmin / GM(all λ)): λmin against the whole spectrum (no eigenvalue set aside)."""
    lam = np.asarray(eigs, dtype=np.float64)
    spectral.log10_flatness(lam)  # raises ScoreUndefined when singular
    return float(np.log10(lam.min()) - np.mean(np.log10(lam)))


def _slow_share_over_gm(eigs: np.ndarray, share: float) -> float:
    """log10(GM of the slowest ⌈share·(N−1)⌉ of λ₂…λ_N / GM(λ₂…λ_N)) ≤ 0: G with λmin replaced
    by the geometric mean of the slowest modes (share → 0: λmin, i.e. G; share = 1: 0)."""
    lam = np.sort(np.asarray(eigs, dtype=np.float64))[::-1][1:]
    spectral.log10_flatness(lam)  # raises ScoreUndefined when singular
    k = max(1, math.ceil(share * len(lam)))
    logs = np.log10(lam)
    return float(logs[-k:].mean() - logs.mean())


def quantities(z: Any) -> dict[str, float]:
    """Per-cell terms, all 'larger = predicted better', from one kept .npz."""
    kf, ke, y = z["Kf"], z["Ke"], z["y"]
    q: dict[str, float] = {s: float(z[s]) for s in SCORES}
    q["log_params"] = math.log10(max(float(z["params"]), 1.0))
    q["log_params_full"] = math.log10(max(float(z["params_full"]), 1.0))
    q["log_live"] = math.log10(max(float(z["live_params"]), 1.0))
    # live parameters of the benchmark's own network: its exact count × the live fraction of the
    # scored (proxy) network
    q["log_live_full"] = q["log_params_full"] + q["log_live"] - q["log_params"]
    q["flat_f"] = _safe(
        lambda: spectral.log10_flatness(spectral.correlation_centered_eigenvalues(kf))
    )
    q["flat_e"] = _safe(
        lambda: spectral.log10_flatness(spectral.correlation_centered_eigenvalues(ke))
    )
    q["g_e"] = _safe(lambda: spectral.log10_min_over_gm(spectral.eigenvalues(ke)))
    eig_f = spectral.eigenvalues(kf)  # once: every frozen-kernel term below reads it
    q["g_f"] = _safe(lambda: spectral.log10_min_over_gm(eig_f))
    for tag, share in (("8", 1 / 8), ("q", 1 / 4), ("h", 1 / 2)):
        q[f"g_f{tag}"] = _safe(lambda share=share: _slow_share_over_gm(eig_f, share))
    q["g_fc"] = _safe(lambda: _min_over_gm_all(spectral.correlation_centered_eigenvalues(kf)))
    q["align_f"] = _safe(lambda: alignment(kf, y))
    q["cond_f"] = _safe(lambda: -spectral.condition_number(eig_f))
    q["trace_f"] = _safe(lambda: math.log10(float(np.mean(np.diag(kf)))))
    q["trace_e"] = _safe(lambda: math.log10(float(np.mean(np.diag(ke)))))
    q["erank_f"] = _safe(lambda: math.log10(spectral.effective_rank(eig_f)))
    # the activation-code (Hamming) kernel of NASWOT: K_H = N_A · C_H, C_H the share of units
    # on which two inputs agree (unit diagonal), so naswot = N ln N_A + ln det C_H
    units = float(z["units"]) if "units" in z.files else 0.0
    q["log_units"] = math.log10(units) if units > 0 else -math.inf
    q["flat_h"] = q["g_h"] = -math.inf  # no code kernel kept (no ReLU-like unit, or an old file)
    if "KH" in z.files and np.isfinite(z["KH"]).all():
        eig_h = spectral.eigenvalues(z["KH"])
        q["flat_h"] = _safe(lambda: spectral.log10_flatness(eig_h))
        q["g_h"] = _safe(lambda: spectral.log10_min_over_gm(eig_h))
    return q


#: Candidate formulas over the per-cell terms (name → function of the terms dict).
CONFIGS: dict[str, Callable[[dict[str, float]], float]] = {
    "previous default: log live + flat(frozen) + G(eval)": lambda q: (
        q["log_live"] + q["flat_f"] + q["g_e"]
    ),
    "log live + flat(frozen) + G(frozen)": lambda q: q["log_live"] + q["flat_f"] + q["g_f"],
    "log live + flat(frozen)": lambda q: q["log_live"] + q["flat_f"],
    "log live + G(frozen)": lambda q: q["log_live"] + q["g_f"],
    "log live + flat(frozen) + G(frozen) + align(frozen)": lambda q: (
        q["log_live"] + q["flat_f"] + q["g_f"] + q["align_f"]
    ),
    "log live + flat(eval) + G(eval)": lambda q: q["log_live"] + q["flat_e"] + q["g_e"],
    "log live + flat(frozen) + G(frozen) + log mean diag K(frozen)": lambda q: (
        q["log_live"] + q["flat_f"] + q["g_f"] + q["trace_f"]
    ),
    "flat(frozen) + G(frozen) + log mean diag K(frozen)": lambda q: (
        q["flat_f"] + q["g_f"] + q["trace_f"]
    ),
    "log live + flat(frozen) + G(frozen) + log eff. rank(frozen)": lambda q: (
        q["log_live"] + q["flat_f"] + q["g_f"] + q["erank_f"]
    ),
    "log live + G(centred correlation, frozen)": lambda q: q["log_live"] + q["g_fc"],
    "log live + flat(frozen) + G(centred correlation, frozen)": lambda q: (
        q["log_live"] + q["flat_f"] + q["g_fc"]
    ),
    "log live + flat(eval) + G(frozen)": lambda q: q["log_live"] + q["flat_e"] + q["g_f"],
    "log live + G(frozen) + G(eval)": lambda q: q["log_live"] + q["g_f"] + q["g_e"],
    "log live(full) + flat(frozen) + G(frozen)": lambda q: (
        q["log_live_full"] + q["flat_f"] + q["g_f"]
    ),
    "log live(full) + G(frozen)": lambda q: q["log_live_full"] + q["g_f"],
    "log live(full) + flat(frozen)": lambda q: q["log_live_full"] + q["flat_f"],
    "log live(full)": lambda q: q["log_live_full"],
    "log live": lambda q: q["log_live"],
    "log mean diag K(frozen)": lambda q: q["trace_f"],
    "log mean diag K(eval)": lambda q: q["trace_e"],
    "log params (scored network)": lambda q: q["log_params"],
    "flat(frozen)": lambda q: q["flat_f"],
    "G(frozen)": lambda q: q["g_f"],
    "G(eval)": lambda q: q["g_e"],
    "align(frozen)": lambda q: q["align_f"],
    "−log κ(frozen)": lambda q: q["cond_f"],
    "log live + G(frozen, slowest 1/8 of modes)": lambda q: q["log_live"] + q["g_f8"],
    "log live + G(frozen, slowest 1/4 of modes)": lambda q: q["log_live"] + q["g_fq"],
    "log live + G(frozen, slowest 1/2 of modes)": lambda q: q["log_live"] + q["g_fh"],
    "G(frozen, slowest 1/8)": lambda q: q["g_f8"],
    "G(frozen, slowest 1/4)": lambda q: q["g_fq"],
    "G(frozen, slowest 1/2)": lambda q: q["g_fh"],
    "log live + G(frozen, slowest 1/8) + flat(codes)": lambda q: (
        q["log_live"] + q["g_f8"] + q["flat_h"]
    ),
    "log live + G(frozen, slowest 1/4) + flat(codes)": lambda q: (
        q["log_live"] + q["g_fq"] + q["flat_h"]
    ),
    "log live + G(frozen) + flat(codes)": lambda q: q["log_live"] + q["g_f"] + q["flat_h"],
    "log live + G(frozen) + G(codes)": lambda q: q["log_live"] + q["g_f"] + q["g_h"],
    "log live + G(frozen) + log units + flat(codes)": lambda q: (
        q["log_live"] + q["g_f"] + q["log_units"] + q["flat_h"]
    ),
    "log live + flat(codes)": lambda q: q["log_live"] + q["flat_h"],
    "log units + G(frozen)": lambda q: q["log_units"] + q["g_f"],
    "log units + G(frozen) + flat(codes)": lambda q: q["log_units"] + q["g_f"] + q["flat_h"],
    "log units": lambda q: q["log_units"],
    "flat(codes)": lambda q: q["flat_h"],
    "G(codes)": lambda q: q["g_h"],
    "naswot": lambda q: q["naswot"],
    "synflow": lambda q: q["synflow"],
}


#: Configurations set against the default, paired, on every suite (session 7).
CHALLENGERS = (
    "log live + G(frozen, slowest 1/8 of modes)",
    "log live + G(frozen, slowest 1/4 of modes)",
    "log live + G(frozen, slowest 1/2 of modes)",
    "log live + G(frozen) + flat(codes)",
    "log live + G(frozen) + log units + flat(codes)",
    "log live + G(frozen, slowest 1/8) + flat(codes)",
    "log live + G(frozen, slowest 1/4) + flat(codes)",
)


def load_suite(suite: Suite) -> tuple[list[int], dict[str, np.ndarray], list[float]] | None:
    folder = suite.folder()
    if not folder.is_dir():
        return None
    rows, per_cell, secs = [], [], []
    for path in sorted(folder.glob("*.npz"), key=lambda p: int(p.stem)):
        z = np.load(path)
        rows.append(int(path.stem))
        per_cell.append(quantities(z))
        secs.append(float(z["seconds"]))
    values = {name: np.array([f(q) for q in per_cell]) for name, f in CONFIGS.items()}
    return rows, values, secs


def _ci(score: np.ndarray, acc: np.ndarray) -> str:
    point, lo, hi = rankstats.bootstrap_ci(rankstats.orient(score), acc, n_boot=N_BOOT)
    return f"{point:.3f} [{lo:.3f}, {hi:.3f}]"


def sweep_suite(suite: Suite, only: list[str] | None = None) -> list[str]:
    loaded = load_suite(suite)
    if loaded is None or not suite.truth.exists():
        return [f"## {suite.name}: not scored\n"]
    rows, values, secs = loaded
    truth = groundtruth.read_truth(suite.truth)
    acc = {c: v[rows] for c, v in truth.columns.items()}
    anchors = {a: v[rows] for a, v in truth.anchors.items()}
    cols = list(acc)
    out = [
        f"## {suite.name}: {len(rows)} of {len(truth)} dev cells, space {suite.space} "
        f"{suite.options or '(benchmark network)'}, {np.mean(secs):.2f} s per cell "
        "(all five scores, 1 thread)\n",
    ]
    names = [n for n in CONFIGS if not only or n in only]
    table = [[name, *(_ci(values[name], acc[c]) for c in cols)] for name in names]
    table += [[f"anchor: {a}", *(_ci(v, acc[c]) for c in cols)] for a, v in anchors.items()]
    out += [*markdown_table(["configuration", *(f"τ {c}" for c in cols)], table), ""]
    for c in cols:
        taus = {
            a: rankstats.rank_correlations(rankstats.orient(v), acc[c])["kendall"]
            for a, v in anchors.items()
        }
        taus = {a: t for a, t in taus.items() if math.isfinite(t)}
        if not taus:
            continue
        best = max(taus, key=lambda a: taus[a])
        for name in names[:5]:
            d, lo, hi = rankstats.paired_difference_ci(
                rankstats.orient(values[name]),
                rankstats.orient(anchors[best]),
                acc[c],
                n_boot=N_BOOT,
            )
            out.append(f"- {c}: {name} − best anchor {best}: {d:+.3f} [{lo:+.3f}, {hi:+.3f}]")
    new, old = "log live + G(frozen)", "previous default: log live + flat(frozen) + G(eval)"
    for c in cols:
        d, lo, hi = rankstats.paired_difference_ci(
            rankstats.orient(values[new]), rankstats.orient(values[old]), acc[c], n_boot=N_BOOT
        )
        out.append(f"- {c}: default (= {new}) − previous default: {d:+.3f} [{lo:+.3f}, {hi:+.3f}]")
    for name in CHALLENGERS:
        for c in cols:
            d, lo, hi = rankstats.paired_difference_ci(
                rankstats.orient(values[name]), rankstats.orient(values[new]), acc[c], n_boot=N_BOOT
            )
            out.append(f"- {c}: {name} − default: {d:+.3f} [{lo:+.3f}, {hi:+.3f}]")
    out.append("")
    return out


def run_timing(args: argparse.Namespace) -> None:
    """Seconds per cell of the default alone (build + one pNTK + live params), the first
    ``--cells`` dev cells of each suite, in one process with ``--threads`` torch threads."""
    torch.set_num_threads(args.threads)
    batch = load_batch(64)
    for name in args.suites:
        suite = SUITES[name]
        if not suite.truth.exists():
            continue
        truth = groundtruth.read_truth(suite.truth)
        space = get_space(suite.space, **suite.options)
        secs = []
        for text in truth.archs[: args.cells]:
            start = time.perf_counter()
            torch.manual_seed(0)
            model = space.build(space.parse_any(text), num_classes=10)
            proxies.compute(model, batch, ["default"])
            secs.append(time.perf_counter() - start)
        print(f"{name} {suite.options or '(benchmark network)'}: default {np.mean(secs):.3f} s "
              f"per cell (median {np.median(secs):.3f}, {len(secs)} cells, "
              f"{args.threads} threads)", flush=True)  # fmt: skip


def run_sizes(args: argparse.Namespace) -> None:
    """The same NB301 cells scored on two proxy sizes: τ of the key configurations side by side."""
    small, wide = load_suite(SUITES["nb301"]), load_suite(SUITES["nb301-wide"])
    if small is None or wide is None:
        print("score both nb301 and nb301-wide first")
        return
    common = sorted(set(small[0]) & set(wide[0]))
    truth = groundtruth.read_truth(SUITES["nb301"].truth)
    acc = truth.columns["val_acc"][common]
    table = []
    for name in [*list(CONFIGS)[:6], "naswot", "log live"]:
        cells = [name]
        for rows, values, _ in (small, wide):
            cells.append(_ci(values[name][[rows.index(r) for r in common]], acc))
        table.append(cells)
    secs = [np.mean(np.array(x[2])[[x[0].index(r) for r in common]]) for x in (small, wide)]
    table.append(["seconds per cell (five scores + both kernels, 1 thread, loaded machine)",
                  f"{secs[0]:.1f}", f"{secs[1]:.1f}"])  # fmt: skip
    lines = [f"{len(common)} NB301 dev cells scored on both proxies (N = 64, seed 0)\n"]
    lines += markdown_table(["configuration", "τ C=8, 5 cells", "τ C=16, 8 cells"], table)
    text = "\n".join(lines) + "\n"
    print(text)
    (OUT / "suites_nb301_sizes.md").write_text(text)


def run_sweep(args: argparse.Namespace) -> None:
    lines = ["# Every configuration on every suite (Kendall τ, 95 % bootstrap CI)\n"]
    for name in args.suites:
        lines += sweep_suite(SUITES[name])
        print("\n".join(lines[-40:]), flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "suites_sweep.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT / 'suites_sweep.md'}")


def run_top(args: argparse.Namespace) -> None:
    """The top of the ranking (``rankstats.top_quality``) of the default and each of
    :data:`CHALLENGERS`, per suite and accuracy column, from the kept cells (no bootstrap)."""
    names = ["log live + G(frozen)", *CHALLENGERS]
    for suite_name in args.suites:
        suite = SUITES[suite_name]
        loaded = load_suite(suite)
        if loaded is None or not suite.truth.exists():
            continue
        rows, values, _ = loaded
        truth = groundtruth.read_truth(suite.truth)
        table = []
        for col, acc in truth.columns.items():
            for name in names:
                top = rankstats.top_quality(rankstats.orient(values[name]), acc[rows])
                table.append([
                    col, name, f"{top['rank1_acc']:.2f} ({100 * top['rank1_share_better']:.1f} %)",
                    f"{top['regret@5']:.2f} / {top['regret@10']:.2f}", f"{top['precision@10']:.1f}",
                ])  # fmt: skip
        print(f"## {suite_name}: {len(rows)} cells")
        head = ["column", "configuration", "rank 1 (share better)", "regret@5 / @10", "p@10"]
        print("\n".join(markdown_table(head, table)) + "\n")


# ------------------------------------------------------------------------------------------------
# 3. krr at large N
# ------------------------------------------------------------------------------------------------
def loo_ridge_accuracy(k: np.ndarray, y: np.ndarray, n_train: int, ridges: list[float]) -> float:
    """Held-out accuracy of kernel ridge regression, ridge chosen by leave-one-out on the train
    part (closed form: residual_i / (1 − H_ii), H = K(K + λI)⁻¹, on the normalised kernel)."""
    k = k / np.mean(np.diag(k))
    t = spectral.one_hot_centered(y, 10)
    tr, te = np.arange(n_train), np.arange(n_train, len(y))
    ktt = k[np.ix_(tr, tr)]
    w, v = np.linalg.eigh(ktt)
    best, best_err = ridges[0], math.inf
    for lam in ridges:
        h = (v * (w / (w + lam))) @ v.T
        resid = (t[tr] - h @ t[tr]) / (1.0 - np.diag(h))[:, None]
        err = float(np.mean(resid**2))
        if err < best_err:
            best, best_err = lam, err
    alpha = np.linalg.solve(ktt + best * np.eye(len(tr)), t[tr])
    pred = k[np.ix_(te, tr)] @ alpha
    return float(np.mean(pred.argmax(1) == y[te]))


def run_krr(args: argparse.Namespace) -> None:
    suite = SUITES[args.suite]
    truth = groundtruth.read_truth(suite.truth)
    space = get_space(suite.space, **suite.options)
    batch = load_batch(args.n)
    rng = np.random.default_rng(0)
    rows = sorted(rng.choice(len(truth), size=min(args.cells, len(truth)), replace=False))
    folder = OUT / "suites_krr" / f"{suite.name}-n{args.n}"
    folder.mkdir(parents=True, exist_ok=True)
    ridges = [10.0**e for e in range(-6, 1)]
    n_train = args.n - args.test
    for i in rows:
        path = folder / f"{i}.npz"
        if path.exists():
            continue
        start = time.perf_counter()
        torch.manual_seed(0)
        model = space.build(space.parse_any(truth.archs[i]), num_classes=10)
        k = pntk(model, batch.x, bn="frozen", dtype=torch.float64).numpy()
        seconds = time.perf_counter() - start
        acc = loo_ridge_accuracy(k, batch.y.numpy(), n_train, ridges)
        np.savez(path, acc=acc, seconds=seconds)
        print(f"{suite.name} {i} krr acc {acc:.3f} in {seconds:.1f}s", flush=True)
    got = sorted(folder.glob("*.npz"), key=lambda p: int(p.stem))
    idx = [int(p.stem) for p in got]
    accs = np.array([float(np.load(p)["acc"]) for p in got])
    secs = [float(np.load(p)["seconds"]) for p in got]
    for c, v in truth.columns.items():
        print(f"{suite.name} {c}: {len(idx)} cells, KRR acc τ {_ci(accs, v[idx])}, "
              f"mean acc {accs.mean():.3f}, {np.mean(secs):.1f} s per kernel (N={args.n})")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("score")
    s.add_argument("--suite", choices=list(SUITES), required=True)
    s.add_argument("--shard", default="0/1")
    s.add_argument("--limit", type=int, default=None)
    s.add_argument("--n", type=int, default=64)
    sub.add_parser("sizes")
    t = sub.add_parser("timing")
    t.add_argument("--suites", nargs="+", default=["nb201", "nb101", "nb301"])
    t.add_argument("--cells", type=int, default=40)
    t.add_argument("--threads", type=int, default=2)
    w = sub.add_parser("sweep")
    w.add_argument("--suites", nargs="+", default=list(SUITES))
    tp = sub.add_parser("top")
    tp.add_argument("--suites", nargs="+", default=["nb201", "nb101", "nb301"])
    k = sub.add_parser("krr")
    k.add_argument("--suite", choices=list(SUITES), required=True)
    k.add_argument("--cells", type=int, default=20)
    k.add_argument("--n", type=int, default=1000)
    k.add_argument("--test", type=int, default=300)
    args = ap.parse_args()
    commands = {"score": run_score, "sweep": run_sweep, "sizes": run_sizes, "krr": run_krr,
                "timing": run_timing, "top": run_top}  # fmt: skip
    commands[args.cmd](args)


if __name__ == "__main__":
    main()
