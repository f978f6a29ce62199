"""How fast does the CLI start? This checkout beside an earlier commit, measured side by side.

Times (wall clock, best and median of ``--repeat`` runs, alternating the two versions so that a
busy machine slows both alike) of a bare ``python -c pass``, ``nasntk --help``, ``nasntk
--version`` (this checkout only), ``nasntk studies`` and ``nasntk leaderboard`` on a 200-trial
study, and whether each command imported torch or timm (``python -X importtime``). The earlier
commit (``--before``, default: the last one before the redesign) is unpacked with ``git archive``
into a temporary folder laid out as the installed package (``nasntk/cli``,
``nasntk/search_spaces``) and run with the same interpreter through ``PYTHONPATH``.

    OMP_NUM_THREADS=1 python experiments/cli_startup.py [--before 3803aea] [--repeat 5]

The 200-trial study is made once with ``nasntk search`` (NB201 cells at C=2, N=1 on digits,
N = 8; about a minute) in ``experiments/out/cli_startup/``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from checkouts import env as _env
from checkouts import unpack as _unpack

from nasntk.tables import markdown_table

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "experiments" / "out" / "cli_startup"
STUDY = "lb200"


def _study() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    if (OUT / "nasntk.db").exists():
        return
    cmd = [sys.executable, "-m", "nasntk", "search", "--space", "nb201", "--space-opt", "C=2",
           "--space-opt", "N=1", "--trials", "200", "--n-kernel", "8", "--study", STUDY]  # fmt: skip
    subprocess.run(cmd, cwd=OUT, env=_env(None), check=True, capture_output=True)


def _time(args: list[str], pythonpath: Path | None) -> float:
    start = time.perf_counter()
    subprocess.run(args, cwd=OUT, env=_env(pythonpath), check=True, capture_output=True)
    return time.perf_counter() - start


def _heavy_imports(args: list[str], pythonpath: Path | None) -> str:
    """Which of torch / timm the command imported (from ``-X importtime``)."""
    res = subprocess.run([sys.executable, "-X", "importtime", *args[1:]], cwd=OUT,
                         env=_env(pythonpath), capture_output=True, text=True)  # fmt: skip
    found = {line.rsplit("|", 1)[-1].strip() for line in res.stderr.splitlines() if "|" in line}
    return ", ".join(m for m in ("torch", "timm") if m in found) or "neither"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", default="3803aea", help="the earlier commit to compare with")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    _study()
    py = sys.executable
    nasntk = [py, "-m", "nasntk"]
    commands = {
        "python -c pass": [py, "-c", "pass"],
        "nasntk --help": [*nasntk, "--help"],
        "nasntk --version": [*nasntk, "--version"],
        "nasntk studies": [*nasntk, "studies"],
        "nasntk leaderboard (200 trials)": [*nasntk, "leaderboard", "--study", STUDY],
    }
    with tempfile.TemporaryDirectory() as tmp:
        before = _unpack(args.before, Path(tmp))
        versions = {"this checkout": None, args.before: before}
        times: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.repeat):
            for label, cmd in commands.items():
                for version, path in versions.items():
                    if version != "this checkout" and label == "nasntk --version":
                        continue  # the earlier CLI had no --version
                    times.setdefault((label, version), []).append(_time(cmd, path))
        bare = min(times[("python -c pass", "this checkout")])
        table = []
        for (label, version), ts in times.items():
            path = versions[version]
            heavy = "" if label == "python -c pass" else _heavy_imports(commands[label], path)
            table.append([label, version, f"{min(ts):.2f}", f"{statistics.median(ts):.2f}",
                          f"{min(ts) / bare:.1f}×", heavy])  # fmt: skip
        columns = ["command", "version", "best s", "median s", "best / python -c pass", "imports"]
        print("\n".join(markdown_table(columns, table)))


if __name__ == "__main__":
    main()
