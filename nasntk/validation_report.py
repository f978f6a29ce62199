"""The files of a validation: ``report.md``, ``validation.csv`` and one scatter plot per score."""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nasntk.errors import NasntkError
from nasntk.tables import format_value, markdown_table
from nasntk.validation import ATTR_PREFIX, FEW_PAIRS, Validation, as_float

__all__ = ["scatter", "write_report"]


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _fmt(v: Any) -> str:
    return format_value(v, bools=("yes", "no"))


def scatter(result: Validation, name: str, direction: str, path: Path) -> None:
    """A PNG of score ``name`` (x) against validation accuracy (y), top vs random candidates."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.8, 3.6), dpi=110)
    for role, color in (("top", "tab:orange"), ("random", "tab:blue")):
        pts = [(as_float(r.get(name)), r["val_acc"]) for r in result.rows if r.get("role") == role]
        pts = [(x, y) for x, y in pts if math.isfinite(x) and math.isfinite(y)]
        if pts:
            ax.scatter(
                *zip(*pts, strict=True), s=22, c=color, label=f"{role} ({len(pts)})", alpha=0.85
            )
    c = result.correlations.get(name, {})
    ax.set_xlabel(f"{name} ({'higher' if direction == 'maximize' else 'lower'} is better)")
    ax.set_ylabel("validation accuracy")
    ax.set_title(f"{name}: τ={_fmt(c.get('kendall'))}, ρ={_fmt(c.get('spearman'))}", fontsize=10)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(
    result: Validation,
    out: Path,
    dirs: Mapping[str, str],
    *,
    shape: Mapping[str, int],
    n_train_val: str,
) -> dict[str, str]:
    """Write ``report.md``, ``validation.csv`` and ``scatter_<score>.png`` into ``out``."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NasntkError(f"cannot create output folder {str(out)!r}: {exc.strerror}") from None
    files: dict[str, str] = {}
    for name in result.correlations:
        path = out / f"scatter_{_slug(name)}.png"
        scatter(result, name, dirs.get(name, "maximize"), path)
        files[f"scatter_{name}"] = str(path)
    cols = ["rank", "role", "trial", "arch", "val_acc", "train_acc", *result.correlations]
    cols += ["reused", "error"]
    files["csv"] = str(_write_csv(result, cols, out / "validation.csv"))
    report = out / "report.md"
    report.write_text(_report(result, dirs, cols, shape, n_train_val))
    files["report"] = str(report)
    return files


def _write_csv(result: Validation, cols: Sequence[str], path: Path) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(
            fh, fieldnames=[*cols, "spec"], extrasaction="ignore", lineterminator="\n"
        )
        writer.writeheader()
        for r in result.rows:
            writer.writerow({**r, "spec": json.dumps(r.get("spec"), sort_keys=True)})
    return path


def _report(
    result: Validation,
    dirs: Mapping[str, str],
    cols: Sequence[str],
    shape: Mapping[str, int],
    n_train_val: str,
) -> str:
    """The text of ``report.md``: budget, correlation table, candidate table, plots."""
    roles = [r["role"] for r in result.rows]
    size = f"{shape['in_chans']}×{shape['img_size']}×{shape['img_size']}"
    lines = [
        f"# Validation of study `{result.study}`",
        "",
        f"- budget: `{result.budget[len(ATTR_PREFIX) :]}`",
        f"- data: {n_train_val}; networks built for {size} inputs, {shape['num_classes']} classes",
        f"- candidates: {roles.count('top')} top + {roles.count('random')} random; trained now "
        f"{result.trained}, read back from the study {result.reused}",
        "",
        "## Rank correlation with the reached validation accuracy",
        "",
        "Scores are oriented so that a positive value means the score orders candidates like their accuracy.",
        "",
    ]
    correlations = [
        [name, dirs.get(name, "maximize"), str(c["n"]), _fmt(c["kendall"]),
         f"[{_fmt(c.get('kendall_low'))}, {_fmt(c.get('kendall_high'))}]", _fmt(c["spearman"])]
        for name, c in result.correlations.items()
    ]  # fmt: skip
    header = ["score", "direction", "pairs", "Kendall τ", "τ 95 % CI", "Spearman ρ"]
    lines += [*markdown_table(header, correlations), ""]
    pairs = max((int(c["n"]) for c in result.correlations.values()), default=0)
    if pairs < FEW_PAIRS:
        lines += [f"**{pairs} pairs only: τ is too uncertain to read** (see its CI); validate "
                  f"at least {FEW_PAIRS} candidates (--top / --random).", ""]  # fmt: skip
    lines += ["## Candidates", ""]
    lines += markdown_table(cols, ([_fmt(r.get(c)) for c in cols] for r in result.rows))
    lines += ["", "## Scatter plots", ""]
    lines += [f"![{name}](scatter_{_slug(name)}.png)" for name in result.correlations]
    return "\n".join(lines) + "\n"
