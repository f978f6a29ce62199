"""The training-free peers and the default, like for like, on the three dev suites.

1. ``score``: every registered per-candidate score (all but the aggregates) of every dev cell of a
   suite — N = 64 CIFAR-10 test images (class-balanced, seed 0), one initialisation (seed 0), the
   networks and proxy sizes of ``experiments/suites.py`` — through the library's resumable score
   cache (:func:`nasntk.scorecache.score_specs`) into ``experiments/percell/<suite>-<i>of<k>.csv``:
   scores only (the spec text joins them with the truth file), kept in the repository so that any
   aggregate is re-measured in seconds.
2. ``sweep``: Kendall τ with 95 % bootstrap CIs of every score, every peer aggregate (computed over
   the population of scored cells, exactly as in ``nasntk benchmark``) and every candidate default
   (:data:`CANDIDATES`), the truth file's anchors beside them, the paired CI of each candidate − the
   best peer, and the top (rank-1 accuracy, regret@10); written to ``experiments/out/peers.md``.
3. ``reference``: how the size of a search's reference sample moves τ and the top (percentile
   aggregates against R random cells instead of exact ranks over the population).

    OMP_NUM_THREADS=1 python experiments/peers.py score --suite nb101 --shard 0/2 &
    OMP_NUM_THREADS=1 python experiments/peers.py score --suite nb101 --shard 1/2 &
    python experiments/peers.py sweep
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from nasntk import rankstats
from nasntk.tables import markdown_table

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NASNTK_SHARED", ROOT.parent / "shared"))
PERCELL = ROOT / "experiments" / "percell"
OUT = ROOT / "experiments" / "out"

#: suite → (truth CSV, space, proxy-network options) — the same as experiments/suites.py
SUITES = {
    "nb201": (SHARED / "data" / "nb201" / "nb201_dev.csv", "nb201", {}),
    "nb101": (
        SHARED / "data" / "nb101" / "nb101_dev.csv",
        "nb101",
        {"stem_channels": 16, "num_cells": 1},
    ),
    "nb301": (SHARED / "data" / "nb301" / "nb301_dev.csv", "darts", {"C": 8, "layers": 5}),
}


def per_candidate_scores() -> list[str]:
    from nasntk import proxies

    return [n for n in proxies.names() if not proxies.get(n).is_aggregate]


def run_score(args: argparse.Namespace) -> None:
    from nasntk import data as data_mod
    from nasntk.groundtruth import read_truth
    from nasntk.scorecache import score_specs
    from nasntk.search_spaces import get as get_space

    truth_path, space_name, options = SUITES[args.suite]
    truth = read_truth(truth_path)
    space = get_space(space_name, **options)
    shard, of = (int(v) for v in args.shard.split("/"))
    rows = [i for i in range(len(truth)) if i % args.every == 0]
    rows = [i for k, i in enumerate(rows) if k % of == shard][: args.limit]
    batch = data_mod.load("cifar10", 64, seed=0)
    out = PERCELL / f"{args.suite}-{shard}of{of}.csv"
    names = per_candidate_scores()
    for k, row in enumerate(
        score_specs(space, [truth.archs[i] for i in rows], data=batch, out=out, scores=names)
    ):
        print(f"{args.suite} {k + 1}/{len(rows)} {row['seconds']}s", flush=True)


def read_percell(suite: str) -> list[dict[str, str]]:
    """Every kept row of ``suite`` (all shard files), one per spec."""
    rows: dict[str, dict[str, str]] = {}
    for path in sorted(PERCELL.glob(f"{suite}-*.csv")):
        with path.open(newline="") as fh:
            for r in csv.DictReader(fh):
                rows.setdefault(r["spec"], {}).update({k: v for k, v in r.items() if v != ""})
    return list(rows.values())


# ------------------------------------------------------------------------------------------------
# 2. sweep
# ------------------------------------------------------------------------------------------------
#: The peers' aggregates (exact ranks over the scored cells), as the library registers them.
PEER_AGGREGATES = ("az_nas", "vkdnw_agg", "tenas")
#: Single peer scores compared with the default.
PEERS = ("zico", "meco", "swap", "swap_reg", "az_expressivity", "az_progressivity",
         "az_trainability", "vkdnw", "vkdnw_single", "tenas_ntk", "tenas_lr", "naswot",
         "synflow", "jacob_cov", "snip", "grad_norm")  # fmt: skip
AZ = ("az_expressivity", "az_progressivity", "az_trainability", "flops")
#: Candidate defaults: rank aggregates Σ log(rank/M) of these terms (no weights), declared before
#: the sweep. ``default`` is today's per-candidate default (log10 live params + log10 G).
CANDIDATES: dict[str, tuple[str, ...]] = {
    "agg(live_params, pntk_slow)": ("live_params", "pntk_slow"),
    "agg(default, AZ)": ("default", *AZ),
    "agg(live_params, pntk_slow, AZ)": ("live_params", "pntk_slow", *AZ),
    "agg(default, AZ − progressivity)": ("default", "az_expressivity", "az_trainability", "flops"),
    "agg(default, AZ, zico)": ("default", *AZ, "zico"),
    "agg(default, AZ, meco)": ("default", *AZ, "meco"),
    "agg(default, AZ, vkdnw_single)": ("default", *AZ, "vkdnw_single"),
    "agg(default, AZ, jacob_cov, vkdnw_single)": ("default", *AZ, "jacob_cov", "vkdnw_single"),
    "agg(default, AZ, zico, vkdnw_single)": ("default", *AZ, "zico", "vkdnw_single"),
    "agg(default, AZ, naswot)": ("default", *AZ, "naswot"),
    "agg(default, zico)": ("default", "zico"),
    "agg(default, naswot)": ("default", "naswot"),
    "agg(default, AZ, zico, meco, swap, vkdnw, jacob_cov)": (
        "default", *AZ, "zico", "meco", "swap", "vkdnw", "jacob_cov"),
    # the same sets without the pNTK: what the pNTK term adds
    "agg(AZ, zico)": (*AZ, "zico"),
    "agg(AZ, zico, vkdnw_single)": (*AZ, "zico", "vkdnw_single"),
    "agg(AZ, meco)": (*AZ, "meco"),
    "agg(live_params, AZ)": ("live_params", *AZ),
}  # fmt: skip


def truth_columns(suite: str) -> tuple[list[str], dict[str, Any], dict[str, Any], Any]:
    """(spec texts of the truth rows, accuracy columns, anchors, space) of ``suite``."""
    from nasntk.groundtruth import read_truth
    from nasntk.search_spaces import get as get_space

    truth_path, space_name, options = SUITES[suite]
    truth = read_truth(truth_path)
    space = get_space(space_name, **options)
    texts = [space.format(space.parse_any(a)) for a in truth.archs]
    return texts, truth.columns, truth.anchors, space


def suite_values(
    suite: str,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]] | None:
    """(score → per-cell values, accuracy column → values, anchor → values) on the scored cells;
    the peers' aggregates and the candidates computed over the scored population."""
    from nasntk import proxies
    from nasntk.proxies.aggregate import rank_aggregate

    kept = {r["spec"]: r for r in read_percell(suite)}
    if not kept:
        return None
    texts, columns, anchors, _ = truth_columns(suite)
    idx = [i for i, t in enumerate(texts) if t in kept]
    rows = [kept[texts[i]] for i in idx]
    names = [n for n in per_candidate_scores() if n in rows[0]] + ["flops"]
    values = {n: np.array([float(r.get(n, "nan")) for r in rows]) for n in dict.fromkeys(names)}
    directions = {n: proxies.get(n).direction for n in values}
    for name in PEER_AGGREGATES:
        p = proxies.get(name)
        rule = p.rule
        values[name] = rank_aggregate({t: values[t] for t in p.terms}, directions, rule)
        directions[name] = "maximize"
    for name, terms in CANDIDATES.items():
        values[name] = rank_aggregate({t: values[t] for t in terms}, directions)
        directions[name] = "maximize"
    oriented = {n: rankstats.orient(v, directions[n]) for n, v in values.items()}
    return (
        oriented,
        {c: v[idx] for c, v in columns.items()},
        {a: rankstats.orient(v[idx]) for a, v in anchors.items()},
    )


def fmt_ci(point: float, low: float, high: float, signed: bool = False) -> str:
    f = "{:+.3f}" if signed else "{:.3f}"
    return f"{f.format(point)} [{f.format(low)}, {f.format(high)}]"


def run_sweep(args: argparse.Namespace) -> None:
    lines = ["# Peers and candidate defaults on the dev suites (experiments/peers.py sweep)", ""]
    summary: dict[str, dict[str, float]] = {}
    for suite in args.suites:
        got = suite_values(suite)
        if got is None:
            continue
        values, cols, anchors = got
        n = len(next(iter(cols.values())))
        lines += [f"## {suite} ({n} dev cells scored)", ""]
        best_peer = {
            c: max(
                PEERS + PEER_AGGREGATES,
                key=lambda p, c=c: rankstats.rank_correlations(values[p], a)["kendall"],
            )
            for c, a in cols.items()
        }  # noqa: E501
        best_anchor = (
            {
                c: max(
                    anchors,
                    key=lambda p, c=c: rankstats.rank_correlations(anchors[p], a)["kendall"],
                )
                for c, a in cols.items()
            }
            if anchors
            else {}
        )  # noqa: E501
        header = [
            "score",
            *[f"τ {c}" for c in cols],
            *[f"− best peer, {c}" for c in cols],
            *[f"rank 1 / regret@10, {c}" for c in cols],
        ]  # noqa: E501
        table = []
        for name, v in {**values, **{f"anchor {a}": x for a, x in anchors.items()}}.items():
            row = [name]
            for c, acc in cols.items():
                point, low, high = rankstats.bootstrap_ci(v, acc, n_boot=args.n_boot)
                row.append(fmt_ci(point, low, high))
                summary.setdefault(name, {})[f"{suite}:{c}"] = point
            for c, acc in cols.items():
                peer = best_peer[c]
                d = rankstats.paired_difference_ci(v, values[peer], acc, n_boot=args.n_boot)
                row.append(fmt_ci(*d, signed=True) + f" ({peer})")
            for acc in cols.values():
                top = rankstats.top_quality(v, acc)
                row.append(f"{top['rank1_acc']:.2f} / {top['regret@10']:.2f}")
            table.append(row)
        lines += markdown_table(header, table) + [""]
        if best_anchor:
            lines += [f"best anchor: {best_anchor}", ""]
    lines += ["## Mean τ over the dev columns", ""]
    cols_all = sorted({k for v in summary.values() for k in v})
    rows = [
        [
            name,
            f"{np.mean([v.get(k, np.nan) for k in cols_all]):.3f}",
            *[f"{v.get(k, np.nan):.3f}" for k in cols_all],
        ]
        for name, v in summary.items()
    ]  # noqa: E501
    rows.sort(key=lambda r: -float(r[1]) if r[1] != "nan" else 0)
    lines += markdown_table(["score", "mean τ", *cols_all], rows)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "peers.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


# ------------------------------------------------------------------------------------------------
# 3. reference
# ------------------------------------------------------------------------------------------------
def run_reference(args: argparse.Namespace) -> None:
    """τ and rank 1 of an aggregate whose terms are percentiles against R random scored cells
    (as a search ranks its trials against its study's reference sample), R = 8 … 128, beside
    the exact population ranks; mean ± sd over ``--repeats`` reference draws."""
    from nasntk import proxies
    from nasntk.proxies.aggregate import percentile

    lines = [f"# Reference-sample size (experiments/peers.py reference; {args.repeats} draws)", ""]
    for suite in args.suites:
        got = suite_values(suite)
        if got is None:
            continue
        values, cols, _ = got
        n = len(next(iter(cols.values())))
        lines += [f"## {suite} ({n} cells)", ""]
        table = []
        for name in args.scores:
            terms = CANDIDATES.get(name) or proxies.get(name).terms
            rule = "log" if name in CANDIDATES else proxies.get(name).rule
            exact = values[name]
            row = [name, "all (exact ranks)"]
            for acc in cols.values():
                tau = rankstats.rank_correlations(exact, acc)["kendall"]
                row.append(f"{tau:.3f} / {rankstats.top_quality(exact, acc)['rank1_acc']:.2f}")
            table.append(row)
            for size, smooth in [(s, m) for s in (8, 16, 32, 64, 128) for m in (False, True)]:
                if size >= n:
                    continue
                per_col: dict[str, list[tuple[float, float]]] = {c: [] for c in cols}
                for rep in range(args.repeats):
                    pick = np.random.default_rng(rep).choice(n, size, replace=False)
                    total = np.zeros(n)
                    for t in terms:  # values are oriented (larger = better) already
                        ref = values[t][pick]
                        share = np.array(
                            [percentile(v, ref, "maximize", smooth) for v in values[t]]
                        )
                        total += np.log(share) if rule == "log" else share
                    for c, acc in cols.items():
                        tau = rankstats.rank_correlations(total, acc)["kendall"]
                        per_col[c].append((tau, rankstats.top_quality(total, acc)["rank1_acc"]))
                row = [name, f"R = {size}, {'smoothed' if smooth else 'step'}"]
                for c in cols:
                    taus, tops = np.array(per_col[c]).T
                    row.append(f"{taus.mean():.3f} ± {taus.std():.3f} / {tops.mean():.2f}")
                table.append(row)
        header = ["score", "reference", *[f"τ / rank-1 acc, {c}" for c in cols]]
        lines += markdown_table(header, table) + [""]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "peers_reference.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("score")
    s.add_argument("--suite", choices=list(SUITES), required=True)
    s.add_argument("--shard", default="0/1")
    s.add_argument("--every", type=int, default=1, help="score every k-th dev row")
    s.add_argument("--limit", type=int, default=None)
    w = sub.add_parser("sweep")
    w.add_argument("--suites", nargs="+", default=list(SUITES))
    w.add_argument("--n-boot", type=int, default=int(os.environ.get("N_BOOT", 1000)))
    r = sub.add_parser("reference")
    r.add_argument("--suites", nargs="+", default=list(SUITES))
    r.add_argument("--scores", nargs="+", default=["az_nas"])
    r.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args(argv)
    {"score": run_score, "sweep": run_sweep, "reference": run_reference}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
