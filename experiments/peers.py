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
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from nasntk import rankstats
from nasntk.proxies.default import DEFAULT_TERMS
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
    for r in rows.values():  # files scored while pntk_live_g was the default keep it as "default"
        if "pntk_live_g" not in r and "default" in r:
            r["pntk_live_g"] = r.pop("default")
        r.pop("default", None)
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
#: the sweep. ``pntk_live_g`` is the per-candidate default of sessions 5–7 (log10 live params +
#: log10 G), the column ``default`` of the per-cell files scored before it was renamed.
CANDIDATES: dict[str, tuple[str, ...]] = {
    "agg(live_params, pntk_slow)": ("live_params", "pntk_slow"),
    "agg(pntk_live_g, AZ)": ("pntk_live_g", *AZ),
    "agg(live_params, pntk_slow, AZ)": ("live_params", "pntk_slow", *AZ),
    "agg(pntk_live_g, AZ − progressivity)": ("pntk_live_g", "az_expressivity", "az_trainability", "flops"),
    "agg(pntk_live_g, AZ, zico)": ("pntk_live_g", *AZ, "zico"),
    "agg(pntk_live_g, AZ, meco)": ("pntk_live_g", *AZ, "meco"),
    "agg(pntk_live_g, AZ, vkdnw_single)": ("pntk_live_g", *AZ, "vkdnw_single"),
    "agg(pntk_live_g, AZ, jacob_cov, vkdnw_single)": ("pntk_live_g", *AZ, "jacob_cov", "vkdnw_single"),
    "agg(pntk_live_g, AZ, zico, vkdnw_single)": ("pntk_live_g", *AZ, "zico", "vkdnw_single"),
    "agg(pntk_live_g, AZ, naswot)": ("pntk_live_g", *AZ, "naswot"),
    "agg(pntk_live_g, zico)": ("pntk_live_g", "zico"),
    "agg(pntk_live_g, naswot)": ("pntk_live_g", "naswot"),
    "agg(pntk_live_g, AZ, zico, meco, swap, vkdnw, jacob_cov)": (
        "pntk_live_g", *AZ, "zico", "meco", "swap", "vkdnw", "jacob_cov"),
    # every family's terms, each once (declared with the seven-term set above, before NB201 was in)
    "agg(pntk_live_g, AZ, zico, meco, swap, vkdnw, jacob_cov, naswot)": (
        "pntk_live_g", *AZ, "zico", "meco", "swap", "vkdnw", "jacob_cov", "naswot"),
    "agg(live_params, pntk_slow, AZ, zico, meco, swap, vkdnw, jacob_cov)": (
        "live_params", "pntk_slow", *AZ, "zico", "meco", "swap", "vkdnw", "jacob_cov"),
    "agg(pntk_live_g, AZ, zico, meco, swap, vkdnw)": ("pntk_live_g", *AZ, "zico", "meco", "swap", "vkdnw"),
    "agg(pntk_live_g, AZ, zico, meco, swap)": ("pntk_live_g", *AZ, "zico", "meco", "swap"),
    "agg(AZ, zico, meco, swap, vkdnw, jacob_cov)": (*AZ, "zico", "meco", "swap", "vkdnw", "jacob_cov"),
    # added after the NB101 / NB301 sweeps were in: every family without VKDNW (its Fisher
    # costs 2-3x the rest of the default), i.e. within the 2x time budget
    "agg(pntk_live_g, AZ, zico, meco, swap, jacob_cov, naswot)": (
        "pntk_live_g", *AZ, "zico", "meco", "swap", "jacob_cov", "naswot"),
    "agg(pntk_live_g, AZ, zico, meco, swap, naswot)": (
        "pntk_live_g", *AZ, "zico", "meco", "swap", "naswot"),
    "agg(AZ, zico, meco, swap)": (*AZ, "zico", "meco", "swap"),
    # the same sets without the pNTK: what the pNTK term adds
    "agg(AZ, zico)": (*AZ, "zico"),
    "agg(AZ, zico, vkdnw_single)": (*AZ, "zico", "vkdnw_single"),
    "agg(AZ, meco)": (*AZ, "meco"),
    "agg(live_params, AZ)": ("live_params", *AZ),
}  # fmt: skip


#: Published NB201 figures (C10 / C100 / IN16), from the papers (issue 21's table); MeCo's are ρ.
PUBLISHED_NB201 = {
    "vkdnw_agg": ("kendall", (0.750, 0.753, 0.743)),
    "az_nas": ("kendall", (0.741, 0.723, 0.710)),
    "swap": ("kendall", (0.634, 0.649, 0.610)),
    "zico": ("kendall", (0.607, 0.614, 0.587)),
    "meco": ("spearman", (0.89, 0.88, 0.85)),
    "tenas_ntk": ("kendall", (0.54, math.nan, math.nan)),  # shared/README: all cells, C10 only
}
NB201_COLUMNS = ("cifar10_test_acc", "cifar100_test_acc", "imagenet16_test_acc")


def faithfulness(values: dict[str, np.ndarray], cols: dict[str, np.ndarray]) -> list[str]:
    """Each peer's NB201 figure here beside its published one (same statistic)."""
    table = []
    for name, (stat, published) in PUBLISHED_NB201.items():
        row = [name, "τ" if stat == "kendall" else "ρ"]
        for col, pub in zip(NB201_COLUMNS, published, strict=True):
            mine = rankstats.rank_correlations(values[name], cols[col])[stat]
            gap = "" if math.isnan(pub) else f" ({mine - pub:+.3f})"
            row.append(f"{mine:.3f} vs {pub:.3f}{gap}")
        table.append(row)
    header = ["peer", "stat", *[f"{c}: here vs published (gap)" for c in NB201_COLUMNS]]
    return markdown_table(header, table)


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
    values["default"] = rank_aggregate({t: values[t] for t in DEFAULT_TERMS}, directions)
    directions["default"] = "maximize"
    oriented = {n: rankstats.orient(v, directions[n]) for n, v in values.items()}
    return (
        oriented,
        {c: v[idx] for c, v in columns.items()},
        {a: rankstats.orient(v[idx]) for a, v in anchors.items()},
    )


#: What the default is set against, paired, on every column: every peer and the default
#: without its pNTK term.
VERSUS = ("az_nas", "vkdnw_agg", "meco", "swap", "zico", "az_expressivity", "tenas",
          "agg(AZ, meco)", "agg(pntk_live_g, AZ, zico, meco, swap)")  # fmt: skip


def versus(args: argparse.Namespace) -> list[str]:
    """Paired 95 % CIs of τ(default) − τ(X) for X in :data:`VERSUS` and the truth's best anchor."""
    lines = ["## The default against each peer, paired (τ difference [95 % CI])", ""]
    table = []
    header = ["against"]
    rows: dict[str, list[str]] = {x: [x] for x in (*VERSUS, "best anchor")}
    for suite in args.suites:
        got = suite_values(suite)
        if got is None:
            continue
        values, cols, anchors = got
        for c, acc in cols.items():
            header.append(f"{suite} {c}")
            for x in VERSUS:
                d = rankstats.paired_difference_ci(
                    values["default"], values[x], acc, n_boot=args.n_boot
                )
                rows[x].append(fmt_ci(*d, signed=True))
            if anchors:
                best = max(
                    anchors,
                    key=lambda a, acc=acc: rankstats.rank_correlations(anchors[a], acc)["kendall"],
                )  # noqa: E501
                d = rankstats.paired_difference_ci(
                    values["default"], anchors[best], acc, n_boot=args.n_boot
                )
                rows["best anchor"].append(fmt_ci(*d, signed=True) + f" ({best})")
            else:
                rows["best anchor"].append("–")
    table = list(rows.values())
    return lines + markdown_table(header, table)


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
        if suite == "nb201":
            lines += ["Faithfulness: the peers here beside their papers", ""]
            lines += faithfulness(values, cols) + [""]
        if best_anchor:
            lines += [f"best anchor: {best_anchor}", ""]
    lines += ["## Mean τ over the dev columns", ""]
    summary_pairs = versus(args)
    lines += summary_pairs + [""]
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


# ------------------------------------------------------------------------------------------------
# 5. table (for experiments/search_quality.py --scores-csv)
# ------------------------------------------------------------------------------------------------
def run_table(args: argparse.Namespace) -> None:
    """``spec, default, params`` of the scored NB201 cells, ``default`` being configuration
    ``--score`` (a candidate: its exact rank aggregate over the scored cells)."""
    got = suite_values("nb201")
    if got is None:
        raise SystemExit("no NB201 cells scored yet")
    values, _, _ = got
    kept = {r["spec"]: r for r in read_percell("nb201")}
    texts, _, _, _ = truth_columns("nb201")
    specs = [t for t in texts if t in kept]
    out = OUT / f"table_nb201_{args.score.replace(' ', '_').replace(',', '')}.csv"
    OUT.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["spec", "default", "params"])
        for spec, v in zip(specs, values[args.score], strict=True):
            w.writerow([spec, repr(float(v)), kept[spec]["params"]])
    print(out)


# ------------------------------------------------------------------------------------------------
# 6. zoo: timm's scaled families
# ------------------------------------------------------------------------------------------------
#: timm's own scaled members, smallest first (the issue's chains; no accuracy is read).
CHAINS = {
    "efficientnet": ["efficientnet_b0", "efficientnet_b1", "efficientnet_b2"],
    "mobilenetv3_small": [
        "mobilenetv3_small_050",
        "mobilenetv3_small_075",
        "mobilenetv3_small_100",
    ],
    "resnet": ["resnet10t", "resnet14t", "resnet18", "resnet34"],
    "regnetx": ["regnetx_002", "regnetx_004", "regnetx_006"],
    "lcnet": ["lcnet_050", "lcnet_075", "lcnet_100"],
}


def run_zoo(args: argparse.Namespace) -> None:
    """Every per-candidate score of the chain members (untrained, 10 classes, 32×32, N = 64
    CIFAR-10 images) into ``experiments/percell/zoo.csv``; then Kendall τ between each score
    (aggregates: exact ranks over the chain members together) and the size order in each chain."""
    import timm
    import torch
    from scipy import stats

    from nasntk import data as data_mod
    from nasntk import proxies
    from nasntk.proxies.aggregate import rank_aggregate

    path = PERCELL / "zoo.csv"
    names = per_candidate_scores()
    done = {}
    if path.exists():
        with path.open(newline="") as fh:
            done = {r["model"]: r for r in csv.DictReader(fh)}
    batch = data_mod.load("cifar10", 64, seed=0)
    for model_name in [m for chain in CHAINS.values() for m in chain]:
        if model_name in done:
            continue
        torch.manual_seed(0)
        model = timm.create_model(model_name, pretrained=False, num_classes=10)
        res = proxies.compute(model, batch, names)
        row = {"model": model_name, **{n: repr(float(res[n])) for n in names}}
        row["reasons"] = json.dumps(res["reasons"], sort_keys=True)
        done[model_name] = row
        with path.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=["model", *names, "reasons"])
            w.writeheader()
            w.writerows(done.values())
        print(model_name, res["pntk_live_g"], flush=True)
    members = [m for chain in CHAINS.values() for m in chain]
    values = {n: np.array([float(done[m][n]) for m in members]) for n in names}
    directions = {n: proxies.get(n).direction for n in names}
    for cand, terms in {**CANDIDATES, "default": DEFAULT_TERMS}.items():
        values[cand] = rank_aggregate({t: values[t] for t in terms}, directions)
        directions[cand] = "maximize"
    for agg in PEER_AGGREGATES:
        p = proxies.get(agg)
        values[agg] = rank_aggregate({t: values[t] for t in p.terms}, directions, p.rule)
        directions[agg] = "maximize"
    table = []
    for name, v in values.items():
        o = rankstats.orient(v, directions[name])
        row = [name]
        for chain in CHAINS.values():
            idx = [members.index(m) for m in chain]
            tau = stats.kendalltau(o[idx], np.arange(len(idx))).statistic
            finite = np.isfinite(v[idx]).all()
            row.append(f"{tau:+.2f}" + ("" if finite else " (non-finite)"))
        table.append(row)
    lines = ["# τ between each score and the size order within timm's chains", ""]
    lines += markdown_table(["score", *CHAINS], table)
    (OUT / "peers_zoo.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


# ------------------------------------------------------------------------------------------------
# 4. timing
# ------------------------------------------------------------------------------------------------
def run_timing(args: argparse.Namespace) -> None:
    """Seconds per cell of two score sets side by side in one process (alternating which goes
    first, the same built network): ``--base`` (today's default) and ``--new`` (a candidate's
    terms), over ``--cells`` dev cells of each suite, at ``--threads`` torch threads."""
    import time

    import torch

    from nasntk import data as data_mod
    from nasntk import proxies
    from nasntk.groundtruth import read_truth
    from nasntk.search_spaces import get as get_space

    torch.set_num_threads(args.threads)
    batch = data_mod.load("cifar10", 64, seed=0)
    base = args.base.split(",")
    named = {**CANDIDATES, "default": DEFAULT_TERMS}
    new = list(named.get(args.new, args.new.split(",")))
    lines = [f"# Seconds per cell, {args.threads} threads (experiments/peers.py timing)", "",
             f"base: {', '.join(base)}; new: {', '.join(new)}", ""]  # fmt: skip
    table = []
    for suite in args.suites:
        truth_path, space_name, options = SUITES[suite]
        truth = read_truth(truth_path, limit=args.cells)
        space = get_space(space_name, **options)
        secs: dict[str, list[float]] = {"base": [], "new": []}
        for i, arch in enumerate(truth.archs):
            spec = space.parse_any(arch)
            order = [("base", base), ("new", new)][:: 1 if i % 2 == 0 else -1]
            shape = {"num_classes": 10, "in_chans": 3, "img_size": 32}
            # as a search pays it: params / FLOPs come from the budget check's exact count
            known = {"params": space.params(spec, **shape), "flops": space.flops(spec, **shape)}
            for tag, names in order:
                torch.manual_seed(0)
                model = space.build(spec, **shape)
                t0 = time.perf_counter()
                proxies.compute(model, batch, names, known=known)
                secs[tag].append(time.perf_counter() - t0)
        b, n = np.mean(secs["base"][1:]), np.mean(secs["new"][1:])  # the first is warm-up
        table.append([suite, f"{b:.3f}", f"{n:.3f}", f"{n / b:.2f}"])
    lines += markdown_table(["suite", "base s/cell", "new s/cell", "new / base"], table)
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
    t = sub.add_parser("timing")
    t.add_argument("--suites", nargs="+", default=list(SUITES))
    t.add_argument("--cells", type=int, default=20)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--base", default="pntk_live_g", help="today's default: pntk_live_g")
    t.add_argument("--new", required=True, help="a CANDIDATES name or comma-separated scores")
    tb = sub.add_parser("table")
    tb.add_argument("--score", required=True)
    sub.add_parser("zoo")
    args = ap.parse_args(argv)
    commands = {"score": run_score, "sweep": run_sweep, "reference": run_reference}
    commands["timing"] = run_timing
    commands["table"] = run_table
    commands["zoo"] = run_zoo
    commands[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
