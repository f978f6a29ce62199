"""``nasntk leaderboard``, ``plot``, ``export``, ``show``, ``spaces`` and ``studies``: what a
study holds, read back (typer commands over :mod:`nasntk.leaderboard`, :mod:`nasntk.plots` and
:mod:`nasntk.study`; no logic here)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from nasntk.cli.search import _STORAGE_HELP, _STUDY_HELP
from nasntk.cli.search_view import stderr, stdout
from nasntk.errors import NasntkError

_Storage = Annotated[Optional[str], typer.Option("--storage", help=_STORAGE_HELP)]
_Study = Annotated[Optional[str], typer.Option("--study", help=_STUDY_HELP)]


def leaderboard_cmd(
    storage: _Storage = None,
    study: _Study = None,
    top: Optional[int] = typer.Option(
        None, "--top", "-k", help="Keep the best K rows (default: all)."
    ),
    fmt: str = typer.Option(
        "table",
        "--format",
        "-f",
        help="table | csv | json | markdown | html (one self-contained file with plots).",
    ),
    out: Optional[Path] = typer.Option(None, "--out", help="Write to this file instead of stdout."),
    plots: bool = typer.Option(
        True, "--plots/--no-plots", help="Embed the figures in HTML output."
    ),
    columns: Optional[str] = typer.Option(
        None,
        "--columns",
        "-c",
        help="Columns to show, comma-separated (e.g. rank,arch,default,params), or 'all'. "
        "Default: a table shows what fits the terminal and names the rest; files keep every column.",
    ),
    pruned: bool = typer.Option(
        False,
        "--pruned",
        help="List the pruned candidates instead: why (the budget and the measured value that "
        "broke it), params, FLOPs, measured scores.",
    ),
) -> None:
    """Ranked candidates of a study with every score, params, FLOPs and spec."""
    from nasntk.columns import parse
    from nasntk.leaderboard import check_format, pruned_rows, render, rows, study_info, table
    from nasntk.study import load_study
    from nasntk.study.record import objective_names

    check_format(fmt)
    if pruned and fmt == "html":
        raise NasntkError("--pruned lists as table, csv, json or markdown (not html)")
    wanted = parse(columns)
    st = load_study(storage, study)
    ranked = pruned_rows(st)[:top] if pruned else rows(st, top=top)
    if fmt == "table" and out is None:
        console = stdout()
        console.print(
            table(
                ranked,
                columns=wanted,
                title=f"{st.study_name}: {len(ranked)} {'pruned ' if pruned else ''}candidates",
                objectives=_pruned_first(ranked) if pruned else objective_names(st),
                width=console.width,
            )
        )
        return
    images, directions, cells = None, {}, []
    if fmt == "html" and plots and ranked:
        from nasntk.plots import figures

        images = figures(st)
    if fmt == "html":
        directions, cells = _html_extras(st, ranked)
    info = study_info(st) if fmt == "html" else {}
    title = f"nasntk leaderboard: {st.study_name}"
    text = render(ranked, fmt, title=title, images=images, info=info, columns=wanted,
                  directions=directions, cells=cells, objectives=objective_names(st))  # fmt: skip
    if out is None:
        sys.stdout.write(text)
    else:
        _write(out, text)
        stderr().print(f"wrote {len(ranked)} rows to {out}")


def _pruned_first(rows: list) -> list[str]:
    """The columns of a pruned table read first (with trial, arch, params, FLOPs): what was
    measured; the reason (``pruned``) follows where the width allows (its value is in them)."""
    from nasntk.columns import fields

    return [c for c in fields(rows) if c not in ("trial", "arch", "params", "flops", "pruned")]


def _html_extras(study: Any, ranked: list) -> tuple[dict[str, str], list[str]]:
    """Each score column's direction, and the rank-1 cell drawn (cell spaces)."""
    from nasntk import proxies
    from nasntk.study.models import cell_drawings
    from nasntk.study.record import objective_names

    directions = {}
    for name in {k for r in ranked for k in r} - {"params", "flops"}:  # sizes, not scores here
        if name in proxies.names():
            directions[name] = proxies.get(name).direction
    for name, d in zip(objective_names(study), study.directions, strict=False):
        directions[name] = d.name.lower()
    try:
        cells = cell_drawings(ranked[0]) if ranked else []
    except NasntkError:
        cells = []
    return directions, cells


def plot_cmd(
    out: Path = typer.Option(Path("plots"), "--out", help="Folder for the PNG files."),
    storage: _Storage = None,
    study: _Study = None,
) -> None:
    """PNG figures: optimisation history, score vs parameters, Pareto front (multi-objective)."""
    from nasntk.plots import save
    from nasntk.study import load_study

    for path in save(load_study(storage, study), out):
        print(path)


def export_cmd(
    rank: int = typer.Option(1, "--rank", "-r", help="Leaderboard rank to export (1 = best)."),
    out: Optional[Path] = typer.Option(None, "--out", help="JSON file (default: stdout)."),
    storage: _Storage = None,
    study: _Study = None,
) -> None:
    """Write one leaderboard row (space, spec, scores) as JSON; nasntk.build(row) rebuilds it."""
    from nasntk.leaderboard import check_rank, export_row
    from nasntk.study import load_study
    from nasntk.study.models import rebuild_info

    check_rank(rank)
    row = export_row(load_study(storage, study), rank)
    info = rebuild_info(row)
    if info is not None:
        row["rebuild"] = info
    text = json.dumps(row, indent=2) + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        _write(out, text)
        stderr().print(f"wrote rank {rank} (trial {row['trial']}) to {out}")


def show_cmd(
    rank: int = typer.Option(1, "--rank", "-r", help="Leaderboard rank to show (1 = best)."),
    storage: _Storage = None,
    study: _Study = None,
    tree: bool = typer.Option(True, "--tree/--no-tree", help="Print the module tree."),
) -> None:
    """One candidate at a glance: architecture, input shape, params, FLOPs, scores, how to
    rebuild it (with or without nasntk) and its module tree."""
    from nasntk.leaderboard import check_rank, export_row
    from nasntk.study import build, load_study
    from nasntk.study.models import rebuild_info
    from nasntk.tables import format_value

    check_rank(rank)
    row = export_row(load_study(storage, study), rank)
    out = stdout()
    skip = {"rank", "trial", "arch", "spec", "space", "space_options", "data", "study",
            "num_classes", "in_chans", "img_size", "params", "flops", "time_s", "pareto_rank",
            "hardware"}  # fmt: skip
    shape = f"{row.get('in_chans')}×{row.get('img_size')}×{row.get('img_size')}"
    facts = Table(title=f"rank {rank} of {row['study']} (trial {row['trial']})", show_header=False)
    facts.add_column("what", style="bold")
    facts.add_column("value", overflow="fold")
    facts.add_row("arch", str(row.get("arch", "")))
    opts = row.get("space_options")
    facts.add_row("space", str(row.get("space")) + (f" {json.dumps(opts)}" if opts else ""))
    facts.add_row("input", f"{shape} ({row.get('num_classes')} classes; data {row.get('data')})")
    facts.add_row("params", format_value(row.get("params")))
    facts.add_row("FLOPs", format_value(row.get("flops")))
    for k, v in row.items():
        if k not in skip and not isinstance(v, (dict, list)):
            facts.add_row(k, format_value(v))
    hw = row.get("hardware")
    if isinstance(hw, dict):  # what latency_ms / train_memory_mb were measured with
        facts.add_row("measured on", ", ".join(f"{k} {v}" for k, v in hw.items()))
    out.print(facts)
    info = rebuild_info(row)
    out.print(f"[bold]with nasntk[/]: nasntk.build(json.load(open('best.json')))  "
              f"(after nasntk export --rank {rank} --out best.json)")  # fmt: skip
    if info and "code" in info:
        out.print("[bold]without nasntk[/] (timm only):")
        out.print(info["code"].rstrip(), markup=False, highlight=False, soft_wrap=True)
    elif info:
        out.print("[bold]in the benchmark's own form[/]:")
        out.print(json.dumps(info), markup=False, highlight=False, soft_wrap=True)
    if tree:
        model = build(row, seed=0)
        out.print(str(model), markup=False, highlight=False, soft_wrap=True)


def _type_name(value: Any) -> str:
    """The type of a space option, from its default (``tuple of int`` for a tuple of ints)."""
    if isinstance(value, (tuple, list)) and value:
        inner = sorted({type(v).__name__ for v in value})
        return f"{type(value).__name__} of {' | '.join(inner)}"
    return "any" if value is None else type(value).__name__


def spaces_cmd(
    space: Optional[str] = typer.Option(None, "--space", "-s", help="Show only this space."),
) -> None:
    """Search spaces and their dimensions."""
    from nasntk.search_spaces import get, names, option_defaults

    tbl = Table(title="search spaces")
    tbl.add_column("space", style="bold")
    tbl.add_column("dimension")
    tbl.add_column("choices")
    tbl.add_column("meaning")
    chosen = [space] if space else names()
    for name in chosen:
        try:
            obj = get(name)
        except NasntkError as exc:
            if space:
                raise
            tbl.add_row(name, "", f"(unavailable: {exc})", "")
            continue
        dims = list(getattr(obj, "dimensions", ()))
        if tbl.row_count:
            tbl.add_section()
        if not dims:
            tbl.add_row(name, "", "", "")
        for i, d in enumerate(dims):
            tbl.add_row(name if i == 0 else "", d.name, d.choices, d.help)
        for key, default in option_defaults(type(obj)).items():
            tbl.add_row(
                "",
                f"--space-opt {key}=…",
                f"{_type_name(default)}, default {default!r}",
                "space option (network)",
            )
    stdout().print(tbl)


def studies_cmd(
    storage: _Storage = None,
) -> None:
    """Studies in a storage with their trial counts."""
    from nasntk.study import study_summaries

    summaries = study_summaries(storage)
    tbl = Table(title="studies", show_lines=True)
    tbl.add_column("study (space · data · objectives)", overflow="fold", ratio=1)
    for col in ("trials", "complete", "pruned", "failed", "running"):
        tbl.add_column(col, justify="right", no_wrap=True)
    tbl.add_column("started", no_wrap=True)
    for s in summaries:
        what = " · ".join(
            x for x in (str(s["space"]), str(s["data"]), ",".join(s["objectives"])) if x
        )
        tbl.add_row(
            f"[bold]{s['study']}[/]" + (f"\n[dim]{what}[/]" if what else ""),
            *(str(s[k]) for k in ("trials", "complete", "pruned", "fail", "running")),
            s["started"][5:16].replace("T", " "),
        )
    stdout().print(tbl)


def register(app: typer.Typer) -> None:
    """Add ``leaderboard``, ``plot``, ``export``, ``show``, ``spaces`` and ``studies``."""
    app.command(
        "leaderboard",
        epilog="Examples:\n\n  nasntk leaderboard --top 20\n\n"
        "  nasntk leaderboard --format html --out leaderboard.html\n\n"
        "  nasntk leaderboard --study nb201-digits-default-n64 --format csv --out lb.csv",
    )(leaderboard_cmd)
    app.command(
        "plot",
        epilog="Examples:\n\n  nasntk plot --out plots\n\n  nasntk plot --study my-study --storage journal:runs.log --out figs",
    )(plot_cmd)
    app.command(
        "export",
        epilog="Examples:\n\n  nasntk export --rank 1 --out best.json\n\n"
        "  python -c \"import json, nasntk; print(nasntk.build(json.load(open('best.json'))))\"",
    )(export_cmd)
    app.command("show", epilog="Examples:\n\n  nasntk show\n\n  nasntk show --rank 3 --no-tree")(
        show_cmd
    )
    app.command("spaces", epilog="Examples:\n\n  nasntk spaces\n\n  nasntk spaces --space nb201")(
        spaces_cmd
    )
    app.command(
        "studies",
        epilog="Examples:\n\n  nasntk studies\n\n  nasntk studies --storage postgresql://me@db/nas",
    )(studies_cmd)


def _write(path: Path, text: str) -> None:
    try:
        if path.parent and not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except OSError as exc:
        raise NasntkError(f"cannot write {str(path)!r}: {exc.strerror}") from None
