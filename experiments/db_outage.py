"""A distributed search through database outages (issue 22), and what the retry wrapper costs.

Part 1 needs the throwaway PostgreSQL server of ``bash .ci/postgres.sh`` (its URL in
``.ci/postgres.url``; ``pause`` / ``resume`` stop and start it keeping its data). It runs the
README's search with two workers on a fresh study and, while it runs, restarts the server once
a quarter of the trials are done (``--restart-at``: stopped and started again at once) and stops
it for ``--outage`` seconds once 60 % are (``--outage-at``); then it prints the exit code, the wall time, the trials by state, whether a
traceback was printed, and the database lines of the log.

Part 2 (no server): the same small search on SQLite with ``db_patience=0`` (no wrapper) and
``db_patience=300`` (every storage call through the retry policy), alternated ``--repeats``
times; the ratio of the medians is the wrapper's cost when nothing fails.

    bash .ci/postgres.sh && python experiments/db_outage.py --trials 400
    python experiments/db_outage.py --skip-outage            # part 2 only
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import optuna

import nasntk
from nasntk import leaderboard

ROOT = Path(__file__).resolve().parents[1]
SERVER = ROOT / ".ci" / "postgres.sh"


def _server(action: str) -> None:
    subprocess.run(["bash", str(SERVER), action], check=True, capture_output=True, timeout=120)


def _done(url: str, name: str) -> int:
    """Finished trials of the study (0 while it does not exist yet or the server is away)."""
    try:
        study = optuna.load_study(study_name=name, storage=url)
        return sum(t.state.is_finished() for t in study.get_trials(deepcopy=False))
    except Exception:
        return 0


def _disturb(url: str, name: str, args: argparse.Namespace, log: list[str]) -> None:
    """Restart the server once ``restart_at`` of the trials are done; stop it for ``outage``
    seconds once ``outage_at`` of them are (fractions of ``--trials``: surely mid-search)."""
    start = time.monotonic()
    for at, seconds in ((args.restart_at, 0.0), (args.outage_at, args.outage)):
        while _done(url, name) < at * args.trials:
            time.sleep(0.5)
        _server("pause")
        stopped = time.monotonic() - start
        time.sleep(seconds)
        _server("resume")
        log.append(
            f"server stopped at {stopped:.0f} s ({_done(url, name)} trials done), "
            f"started again {seconds:g} s later"
        )


def outage_run(args: argparse.Namespace) -> None:
    url_file = ROOT / ".ci" / "postgres.url"
    if not url_file.is_file():
        sys.exit("no server: run `bash .ci/postgres.sh` first")
    url = url_file.read_text().strip()
    name = f"outage-{int(time.time())}"
    cmd = [sys.executable, "-m", "nasntk", "search", "--storage", url, "--study", name]
    cmd += ["--trials", str(args.trials), "--workers", "2", "--no-live"]
    said: list[str] = []
    with tempfile.TemporaryDirectory() as folder:
        started = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        thread = threading.Thread(target=_disturb, args=(url, name, args, said), daemon=True)
        thread.start()
        out, err = proc.communicate()
        seconds = time.monotonic() - started
        thread.join(timeout=60)
    text = err.decode()
    study = optuna.load_study(study_name=name, storage=url)
    summary = leaderboard.summary(study)
    print(f"part 1: {' '.join(cmd[2:4])} … --trials {args.trials} --workers 2 on PostgreSQL")
    for line in said:
        print(f"  {line}")
    print(f"  exit code {proc.returncode} after {seconds:.0f} s; traceback printed: "
          f"{'Traceback' in text}")  # fmt: skip
    print(f"  trials {summary['trials']}: {summary['complete']} complete "
          f"({summary['duplicates']} duplicates reused), {summary['pruned']} pruned, "
          f"{summary['fail']} failed, {summary['running']} running")  # fmt: skip
    for line in text.splitlines():
        if line.startswith("database"):
            print(f"  log: {line}")


def overhead_run(args: argparse.Namespace) -> None:
    options = dict(data="digits", trials=20, objective="pntk_live_g", n_kernel=16, img_size=8)
    times: dict[float, list[float]] = {0.0: [], 300.0: []}
    for rep in range(args.repeats):
        for patience in times:
            with tempfile.TemporaryDirectory() as folder:
                t0 = time.perf_counter()
                nasntk.search(
                    "nb201", storage=f"sqlite:///{folder}/s.db", seed=rep, db_patience=patience,
                    threads=1, **options,
                )  # fmt: skip
                times[patience].append(time.perf_counter() - t0)
    print(f"part 2: 20-trial nb201 searches on SQLite, {args.repeats} alternating repeats")
    for patience, ts in times.items():
        print(f"  db_patience {patience:>5g}: " + " ".join(f"{t:.2f}" for t in ts) + " s")
    ratio = statistics.median(times[300.0]) / statistics.median(times[0.0])
    print(f"  median ratio with / without the retry wrapper: {ratio:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=400)
    parser.add_argument("--restart-at", type=float, default=0.25, help="fraction of trials")
    parser.add_argument("--outage-at", type=float, default=0.6, help="fraction of trials")
    parser.add_argument("--outage", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-outage", action="store_true")
    args = parser.parse_args()
    if not args.skip_outage:
        outage_run(args)
    overhead_run(args)


if __name__ == "__main__":
    main()
