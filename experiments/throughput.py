"""Search throughput: NB201 candidates per minute, this checkout beside an earlier commit.

Runs the same real search — ``nasntk search --space nb201 --data cifar10 --trials T --workers 2``
(C=16, N=5 cells, 32×32 CIFAR-10, N = 64, the default score) — with this checkout and with
``--before`` (default 3803aea, the code when the throughput issue was filed), alternating the two
``--repeat`` times so that a busy machine slows both alike. Each run starts a fresh study in a
temporary folder. Printed per run: wall-clock seconds of the whole command (start-up included),
trials completed, candidates per minute (completed / wall minutes) and the median seconds of one
trial (Optuna's start/complete times), then the ratio of the two versions' best runs.

    NASNTK_SHARED=../shared python experiments/throughput.py [--trials 60] [--repeat 1]

The earlier commit runs from ``git archive`` through ``PYTHONPATH`` (``checkouts.py``).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
from checkouts import env, unpack

from nasntk.tables import markdown_table


def run_search(workdir: Path, pythonpath: Path | None, trials: int, workers: int) -> dict:
    """One fresh search in ``workdir``; its wall time, completed trials and median trial time."""
    workdir.mkdir(parents=True)
    cmd = [sys.executable, "-m", "nasntk", "search", "--space", "nb201", "--data", "cifar10",
           "--trials", str(trials), "--workers", str(workers), "--study", "tp"]  # fmt: skip
    start = time.perf_counter()
    res = subprocess.run(cmd, cwd=workdir, env=env(pythonpath), capture_output=True, text=True)
    wall = time.perf_counter() - start
    if res.returncode != 0:
        raise SystemExit(f"search failed ({res.returncode}):\n{res.stderr[-2000:]}")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.load_study(study_name="tp", storage=f"sqlite:///{workdir / 'nasntk.db'}")
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    per = [(t.datetime_complete - t.datetime_start).total_seconds() for t in done]
    return {
        "wall": wall,
        "done": len(done),
        "per_min": 60.0 * len(done) / wall,
        "trial_s": statistics.median(per) if per else float("nan"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", default="3803aea", help="the earlier commit to compare with")
    ap.add_argument("--trials", type=int, default=60)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    rows, best = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        before = unpack(args.before, Path(tmp) / "src")
        versions = {"this checkout": None, args.before: before}
        for r in range(args.repeat):
            for label, path in versions.items():
                out = run_search(Path(tmp) / f"run{r}-{label.replace(' ', '_')}", path,
                                 args.trials, args.workers)  # fmt: skip
                best[label] = max(best.get(label, 0.0), out["per_min"])
                rows.append([label, f"{out['wall']:.1f}", str(out["done"]),
                             f"{out['per_min']:.1f}", f"{out['trial_s']:.2f}"])  # fmt: skip
                print(" | ".join(rows[-1]), flush=True)
    cols = ["version", "wall s", "trials done", "candidates / min", "median s per trial"]
    print("\n".join(markdown_table(cols, rows)))
    now, then = best["this checkout"], best[args.before]
    print(f"\nbest candidates per minute: this checkout {now:.1f}, {args.before} {then:.1f} "
          f"(ratio {now / then:.2f}×)")  # fmt: skip


if __name__ == "__main__":
    main()
