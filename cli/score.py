"""``nasntk score`` (score many specs into a resumable CSV) and ``nasntk benchmark`` (rank quality).

Both are thin: they parse options, call :mod:`nasntk.scorecache` / :mod:`nasntk.evaluation`, and render with rich.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from nasntk.cli.search import _ImgSize
from nasntk.errors import NasntkError
from nasntk.tables import format_fixed

if TYPE_CHECKING:  # the evaluation module imports numpy / scipy: only when a command runs
    from nasntk.evaluation import BenchmarkResult

_BN_HELP = (
    "BatchNorm mode of the kernel and forward passes: eval | batch | frozen (default: frozen)."
)


def _names(scores: Optional[list[str]]) -> Optional[list[str]]:
    """Accept ``--scores a,b --scores c`` as well as repeated options."""
    if not scores:
        return None
    out = [s.strip() for item in scores for s in item.split(",") if s.strip()]
    return out or None


def _bn(bn: Optional[str]) -> Optional[str]:
    from nasntk.kernels.prepare import BN_MODES

    if bn is not None and bn not in BN_MODES:
        raise NasntkError(f"--bn must be eval, batch or frozen, got {bn!r}")
    return bn


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


_SPACE_OPT_HELP = "Space option KEY=VALUE (repeatable), e.g. C=8 for a narrower proxy network (see `nasntk spaces`)."


def _space(name: str, space_opt: Optional[list[str]]) -> object:
    """The search space ``name`` with the ``--space-opt`` options."""
    from nasntk.search_spaces import get as get_space
    from nasntk.study.config import parse_space_options

    return get_space(name, **parse_space_options(space_opt))


def _cells(result: object, name: str, per_col: dict, cols: list[str]) -> list[str]:
    """Table cells of one row: Kendall τ, Spearman ρ and the top-10 hit rate per column."""
    top10 = getattr(result, "top10", {})
    return [
        f"{format_fixed(per_col[c]['kendall'])}  {format_fixed(per_col[c]['spearman'])}  "
        f"{format_fixed(top10.get(name, {}).get(c, math.nan))}"
        for c in cols
    ]


# Options that `score` and `benchmark` share (typer reads these annotations).
_N = Annotated[int, typer.Option("--n", help="Number of images the kernel scores use.")]
_Seeds = Annotated[
    int, typer.Option("--seeds", help="Average each score over this many initialisations.")
]
_Bn = Annotated[Optional[str], typer.Option("--bn", help=_BN_HELP)]
_SpaceOpt = Annotated[Optional[list[str]], typer.Option("--space-opt", help=_SPACE_OPT_HELP)]


def score_cmd(
    space: str = typer.Option(..., "--space", help="Search space name (see `nasntk spaces`)."),
    specs: Path = typer.Option(
        ..., "--specs", help="File with one spec per line (text form or JSON)."
    ),
    data: str = typer.Option(
        "digits", "--data", help="Image source: digits, cifar10:PATH, npz:PATH, ..."
    ),
    out: Path = typer.Option(..., "--out", help="Output CSV (resumable: done rows are skipped)."),
    scores: Optional[list[str]] = typer.Option(
        None, "--scores", help="Scores to compute (comma-separated or repeated; default: all)."
    ),
    n: _N = 64,
    seeds: _Seeds = 1,
    bn: _Bn = None,
    space_opt: _SpaceOpt = None,
    img_size: _ImgSize = None,
) -> None:
    """Score many architectures; write a row per spec (every score, params, FLOPs, seconds)."""
    from nasntk.scorecache import score_specs

    space_obj = _space(space, space_opt)

    if not specs.is_file():
        raise NasntkError(f"specs file not found: {specs}")
    lines = specs.read_text().splitlines()
    todo = [ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    err = Console(stderr=True)
    rows = []
    with _progress(err) as progress:
        task = progress.add_task("scoring", total=len(todo))
        for row in score_specs(
            space_obj,
            todo,
            data=data,
            out=out,
            scores=_names(scores),
            n=n,
            seeds=seeds,
            bn=_bn(bn),
            img_size=img_size,
        ):
            rows.append(row)
            progress.advance(task)
    Console().print(f"{len(rows)} rows in {out}{_at(img_size)}")


def benchmark_cmd(
    truth: Path = typer.Option(
        ...,
        "--truth",
        help="Truth CSV: the cell (arch, genotype or matrix+ops), *_acc columns, anchors (naslib_*, params_m, flops_m).",
    ),
    data: str = typer.Option(..., "--data", help="Image source, e.g. cifar10:PATH."),
    space: str = typer.Option("nb201", "--space", help="Search space of the truth's cells."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Use only the first K cells."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the correlations as JSON."),
    scores: Optional[list[str]] = typer.Option(
        None, "--scores", help="Scores to compare (default: all)."
    ),
    n: _N = 64,
    seeds: _Seeds = 1,
    bn: _Bn = None,
    cache: Optional[Path] = typer.Option(None, "--cache", help="Resumable CSV of per-cell scores."),
    space_opt: _SpaceOpt = None,
    img_size: _ImgSize = None,
) -> None:
    """Kendall τ / Spearman ρ / top-10 hit rate of every score against every accuracy column."""
    from nasntk.evaluation import benchmark

    err = Console(stderr=True)
    with _progress(err) as progress:
        task = progress.add_task("benchmark", total=None)

        def tick(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        result = benchmark(
            _space(space, space_opt),
            truth=truth,
            data=data,
            limit=limit,
            scores=_names(scores),
            n=n,
            seeds=seeds,
            bn=_bn(bn),
            cache=cache,
            progress=tick,
            img_size=img_size,
        )
    _render_benchmark(result, _at(img_size))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result.to_json(), indent=2, allow_nan=True) + "\n")


def _at(img_size: Optional[int]) -> str:
    """Where the images were resized: `` at 16×16 pixels`` (nothing for their own size)."""
    return f" at {img_size}×{img_size} pixels" if img_size else ""


def _render_benchmark(result: BenchmarkResult, at: str = "") -> None:
    """The benchmark's table (scores, then the truth file's anchors) and the default's paired CI
    against the best anchor, per accuracy column; ``at``: the image size, said in the title."""
    cols = list(result.truth.columns) if result.truth is not None else []
    table = Table(
        title=f"{result.n} cells{at}, {result.seconds_per_cell:.3f} s per cell",
        caption="each cell: Kendall τ  Spearman ρ  top-10 hit rate (higher = better)",
    )
    table.add_column("score")
    for col in cols:
        table.add_column(col.removesuffix("_acc").removesuffix("_test"), justify="right")
    for name, per_col in result.scores.items():
        label = f"[bold]{name}[/bold]" if name == result.default else name
        table.add_row(label, *_cells(result, name, per_col, cols))
    if result.anchors:
        table.add_section()
    for name, per_col in result.anchors.items():
        table.add_row(f"[dim]anchor[/dim] {name}", *_cells(result, name, per_col, cols))
    Console().print(table)
    if result.top:
        Console().print(_top_table(result, cols))
    for col in cols if result.default and result.anchors else []:
        vs = result.versus_best_anchor(col)
        if vs is not None:
            best, d, lo, hi = vs
            Console().print(
                f"{col}: {result.default} − best anchor ({best}): τ {d:+.3f} "
                f"[95% paired bootstrap CI {lo:+.3f}, {hi:+.3f}]"
            )


def _top_cell(t: dict) -> str:
    """One score's top on one column: rank-1 accuracy (share of cells better), regret@1/5/10 and
    precision@10."""
    if not t or not math.isfinite(t.get("rank1_acc", math.nan)):
        return "—"
    regrets = "/".join(format_fixed(t.get(f"regret@{k}", math.nan), 2) for k in (1, 5, 10))
    return (
        f"{t['rank1_acc']:.2f} ({100 * t['rank1_share_better']:.1f}%)  {regrets}  "
        f"{format_fixed(t.get('precision@10', math.nan), 1)}"
    )


def _top_table(result: BenchmarkResult, cols: list[str]) -> Table:
    """The top of each score's ranking, the rows a search hands a user."""
    table = Table(
        title="the top of the ranking",
        caption=(
            "each cell: true accuracy of rank 1 (share of cells better)  regret@1/5/10 "
            "(best accuracy minus the best of the top k)  precision@10"
        ),
    )
    table.add_column("score")
    for col in cols:
        table.add_column(col.removesuffix("_acc").removesuffix("_test"), justify="right")
    for name in result.scores:
        label = f"[bold]{name}[/bold]" if name == result.default else name
        table.add_row(label, *(_top_cell(result.top.get(name, {}).get(c, {})) for c in cols))
    if result.anchors:
        table.add_section()
    for name in result.anchors:
        cells = (_top_cell(result.top.get(name, {}).get(c, {})) for c in cols)
        table.add_row(f"[dim]anchor[/dim] {name}", *cells)
    return table


def scores_cmd(
    family: Optional[str] = typer.Option(None, "--family", help="Only this family (e.g. az_nas)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON list instead of a table."),
) -> None:
    """Every registered score: direction (▲ higher is better, ▼ lower), family, what it needs
    (params / forward / grad / kernel / labels / population) and its reference.

    Examples:
        nasntk scores
        nasntk scores --family az_nas --json
    """
    from nasntk.proxies import describe

    rows = [r for r in describe() if family is None or r["family"] == family]
    if family is not None and not rows:
        families = sorted({r["family"] for r in describe()})
        raise NasntkError(f"no score of family {family!r}; families: {', '.join(families)}")
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
        return
    table = Table(title="registered scores")
    for col in ("score", "", "family", "needs", "reference", "what it is"):
        table.add_column(col, overflow="fold")
    for r in rows:
        mark = "▲" if r["direction"] == "maximize" else "▼"
        name = r["name"] + (" [dim](default)[/dim]" if r["default"] else "")
        terms = f" — ranks of {', '.join(r['terms'])}" if r["terms"] else ""
        needs = ", ".join(r["needs"])
        table.add_row(name, mark, r["family"], needs, r["reference"], r["help"] + terms)
    Console().print(table)


def register(app: typer.Typer) -> None:
    """Add ``score``, ``benchmark`` and ``scores`` to app."""
    app.command("score")(score_cmd)
    app.command("benchmark")(benchmark_cmd)
    app.command("scores")(scores_cmd)
