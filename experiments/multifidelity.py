"""Multi-fidelity search: how much time does scoring on a small N first save, at equal top-10?

Protocol (side by side, one process, same machine state):

1. *Full*: ``nasntk.search`` with the random sampler (seed S), T trials, every candidate scored
   on N images.
2. *Multi-fidelity*: the same sampler and seed — hence the same T candidates, in the same order,
   because random sampling does not depend on earlier results — but each candidate is first
   scored on ``n_low`` images and successive halving (eta = 3) stops those whose small-N score is
   not in the top third so far; only survivors get the N-image kernel.

Reported per ``n_low``: wall time of the search, the fraction of candidates pruned, the time
saved against the full run, and the overlap of the two top-10 lists (distinct architectures by
the full-N score; 10/10 means the multi-fidelity search found the same top-10). The Kendall tau
between small-N and full-N scores (on the candidates that got both) explains the overlap.

    python experiments/multifidelity.py                       # digits, nb201 C=16 N=1, 8x8
    python experiments/multifidelity.py --trials 200 --n 128 --n-low 16 32 64
    python experiments/multifidelity.py --data cifar10 --img-size 16

Writes experiments/out/multifidelity.csv and prints a table.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import torch
from optuna.trial import TrialState
from scipy.stats import kendalltau

import nasntk
from nasntk.leaderboard import rows

OUT = Path(__file__).resolve().parent / "out"


def run(args: argparse.Namespace, n_low: int | None, db: Path) -> tuple[float, object]:
    if db.exists():
        db.unlink()
    start = time.perf_counter()
    study = nasntk.search(
        "nb201",
        space_options={"C": args.C, "N": args.cells},
        data=args.data,
        img_size=args.img_size,
        trials=args.trials,
        n_kernel=args.n,
        n_low=n_low,
        sampler="random",
        seed=args.seed,
        storage=f"sqlite:///{db}",
        threads=1,
        scores=[],
    )
    return time.perf_counter() - start, study


def top(study, k: int = 10) -> list[str]:
    return [json_key(r["spec"]) for r in rows(study, top=k)]


def json_key(spec: dict) -> str:
    import json

    return json.dumps(spec, sort_keys=True)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", default="digits")
    p.add_argument("--img-size", type=int, default=8)
    p.add_argument("--C", type=int, default=16)
    p.add_argument("--cells", type=int, default=1, help="cells per stage (NB201's N)")
    p.add_argument("--trials", type=int, default=150)
    p.add_argument("--n", type=int, default=128, help="images of the full kernel")
    p.add_argument("--n-low", type=int, nargs="+", default=[16, 32])
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)

    # Warm-up (imports, first-kernel overheads) so that neither timed run pays for it.
    run(argparse.Namespace(**{**vars(args), "trials": 3}), None, OUT / "mf_warmup.db")

    t_full, full = run(args, None, OUT / "mf_full.db")
    full_top = top(full)
    full_by_key = {
        t.user_attrs["spec"]: t.value
        for t in full.get_trials(states=(TrialState.COMPLETE,))
        if "duplicate_of" not in t.user_attrs
    }
    results = [
        {
            "n_low": "-",
            "seconds": round(t_full, 1),
            "pruned": 0.0,
            "saved": 0.0,
            "top10_overlap": f"{len(full_top)}/{len(full_top)}",
            "tau_low_full": "",
        }
    ]
    for n_low in args.n_low:
        t_mf, mf = run(args, n_low, OUT / f"mf_low{n_low}.db")
        trials = mf.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
        pruned = sum(t.state == TrialState.PRUNED for t in trials) / max(1, len(trials))
        overlap = len(set(top(mf)) & set(full_top))
        # Small-N vs full-N agreement, on every candidate: small-N from this run, full-N from
        # the full run (same candidates).
        pairs = [
            (t.intermediate_values[1], full_by_key[t.user_attrs["spec"]])
            for t in trials
            if 1 in t.intermediate_values and t.user_attrs.get("spec") in full_by_key
        ]
        tau = kendalltau(*zip(*pairs, strict=True)).statistic if len(pairs) > 2 else float("nan")
        results.append(
            {
                "n_low": n_low,
                "seconds": round(t_mf, 1),
                "pruned": round(pruned, 3),
                "saved": round(1 - t_mf / t_full, 3),
                "top10_overlap": f"{overlap}/{len(full_top)}",
                "tau_low_full": round(float(tau), 3),
            }
        )

    print(
        f"nb201 C={args.C} N={args.cells} on {args.data} {args.img_size}x{args.img_size}, "
        f"{args.trials} random candidates (seed {args.seed}), full N={args.n}, successive halving eta=3"
    )
    header = ["n_low", "seconds", "pruned", "saved", "top10_overlap", "tau_low_full"]
    print(" | ".join(f"{h:>13}" for h in header))
    for r in results:
        print(" | ".join(f"{r[h]!s:>13}" for h in header))
    with open(OUT / "multifidelity.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        writer.writerows(results)
    print(f"wrote {OUT / 'multifidelity.csv'}")


if __name__ == "__main__":
    main()
