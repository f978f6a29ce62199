"""``nasntk search | leaderboard | plot | export | spaces | studies``: a thin layer over
:mod:`nasntk.study`, :mod:`nasntk.leaderboard` and :mod:`nasntk.plots`.

Progress and tables go to stderr while a search runs; the final leaderboard goes to stdout. The
options' defaults are those of :mod:`nasntk.study.config` (``command_default``).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from nasntk.cli.search_view import Display, data_line, final_report, stderr, stdout
from nasntk.errors import NasntkError
from nasntk.study.config import (
    COMMAND_IMG_SIZE,
    COMMAND_SPACE,
    COMMAND_SPACE_OPTIONS,
    DEFAULT_TRIALS,
    command_default,
)

_STORAGE_HELP = (
    "Optuna storage URL: sqlite:///FILE.db (default: sqlite:///nasntk.db in the working "
    "folder), postgresql://USER:PASS@HOST/DB, journal:FILE.log. The same URL works with "
    "optuna-dashboard."
)
_STUDY_HELP = "Study name (default for search: derived from space, data, objective and N; for the other commands: the latest study)."

SEARCH_EPILOG = """\
Examples:

  nasntk search                                    # ~1 min on digits, small NAS-Bench-201 cells

  nasntk search --space nb201 --data cifar10 --trials 200 --n-kernel 128

  nasntk search --objective default,params:min --sampler nsga2 --trials 100

  nasntk search --space mobilenet --data cifar10 --objective default,latency_ms:min --trials 40

  nasntk search --space mobilenet --data cifar10 --max-latency-ms 5 --max-train-memory-mb 300

  nasntk search --space resnet --max-params 2e6 --workers 2 --storage journal:runs.log

  nasntk search --trials 300 --n-low 16 --n-kernel 128   # multi-fidelity with successive halving

Rerunning the same command resumes the same study (--trials is the total it should hold).
"""


# The options of `nasntk search` (defaults: nasntk.study.config.command_default).
_Space = Annotated[
    Optional[str],
    typer.Option(
        "--space",
        "-s",
        help=f"Search space (see `nasntk spaces`) or module:Class. Default: {COMMAND_SPACE} "
        f"with {', '.join(f'{k}={v}' for k, v in COMMAND_SPACE_OPTIONS.items())} on "
        f"{COMMAND_IMG_SIZE}×{COMMAND_IMG_SIZE} images.",
    ),
]
_SpaceOpt = Annotated[
    Optional[list[str]],
    typer.Option("--space-opt", help="Space option KEY=VALUE (repeatable), e.g. C=16."),
]
_Data = Annotated[
    str,
    typer.Option(
        "--data",
        "-d",
        help="Images: digits, cifar10[:PATH], mnist[:PATH], npz:PATH, folder:PATH.",
    ),
]
_Trials = Annotated[
    Optional[int],
    typer.Option(
        "--trials",
        "-n",
        help=f"Finished trials the study should hold (default {DEFAULT_TRIALS}, or unlimited with --timeout).",
    ),
]
_Timeout = Annotated[
    Optional[float], typer.Option("--timeout", help="Stop starting trials after this many seconds.")
]
_NKernel = Annotated[int, typer.Option("--n-kernel", "-N", help="Images in the kernel (N >= 4).")]
_NLow = Annotated[
    Optional[int],
    typer.Option(
        "--n-low", help="Multi-fidelity: score on this many images first; prune poor candidates."
    ),
]
_Pruner = Annotated[
    Optional[str],
    typer.Option("--pruner", help="sha (default with --n-low) | median | hyperband | none."),
]
_Objective = Annotated[
    str,
    typer.Option(
        "--objective",
        "-o",
        help="Score to optimise, or several comma-separated (multi-objective); NAME:min/max overrides the direction.",
    ),
]
_Scores = Annotated[
    Optional[str],
    typer.Option(
        "--scores",
        help="Extra scores to record (comma-separated, or 'all'); default: all pNTK scores.",
    ),
]
_Sampler = Annotated[
    str,
    typer.Option(
        "--sampler",
        help="tpe | evolution (regularized, over one-parameter mutations) | local (hill climbing from the best) | random | nsga2 | grid.",
    ),
]
_MaxParams = Annotated[
    Optional[str],
    typer.Option(
        "--max-params",
        help="Parameter budget (e.g. 2e6, 2M); over-budget candidates are pruned before any kernel.",
    ),
]
_MaxFlops = Annotated[
    Optional[str], typer.Option("--max-flops", help="FLOPs budget per image (e.g. 500M).")
]
_MaxLatency = Annotated[
    Optional[float],
    typer.Option(
        "--max-latency-ms",
        help="Latency budget: measured forward time at batch 1 (ms, on --device with --threads "
        "threads); over-budget candidates are pruned right after the build, before any kernel.",
    ),
]
_MaxMemory = Annotated[
    Optional[float],
    typer.Option(
        "--max-train-memory-mb",
        help="Memory budget: peak MiB of one SGD training step at --memory-batch images.",
    ),
]
_LatencyBatch = Annotated[
    Optional[int],
    typer.Option(
        "--latency-batch",
        min=1,
        help="Batch of latency_batch_ms (default 32; latency_ms is always batch 1).",
    ),
]
_MemoryBatch = Annotated[
    Optional[int],
    typer.Option("--memory-batch", min=1, help="Batch of train_memory_mb (default 64)."),
]
_Storage = Annotated[Optional[str], typer.Option("--storage", help=_STORAGE_HELP)]
_Study = Annotated[Optional[str], typer.Option("--study", help=_STUDY_HELP)]
_DbPatience = Annotated[
    float,
    typer.Option(
        "--db-patience",
        help="Seconds of database outage (a restart, a failover, a locked file) to wait "
        "through, retrying, before stopping with how to resume (0: stop at once).",
    ),
]
_Workers = Annotated[
    int, typer.Option("--workers", "-w", help="Worker processes sharing the storage.")
]
_Threads = Annotated[
    int,
    typer.Option(
        "--threads",
        help="Torch threads per worker (small kernels run fastest on 1; use --workers for more cores).",
    ),
]
_Seed = Annotated[Optional[int], typer.Option("--seed", help="Sampler seed.")]
_Device = Annotated[str, typer.Option("--device", help="cpu | cuda | auto.")]
_Bn = Annotated[
    Optional[str], typer.Option("--bn", help="BatchNorm in the kernel: eval | batch | frozen.")
]
_Seeds = Annotated[
    int, typer.Option("--seeds", help="Average scores over this many initialisations.")
]
_ImgSize = Annotated[
    Optional[int],
    typer.Option(
        "--img-size",
        help="Resize the images to SIZE×SIZE pixels; the networks are built and scored at this "
        "size (default: the data's own size, 32 for digits; `nasntk search` without --space: 8).",
    ),
]
_RefSize = Annotated[
    int,
    typer.Option(
        "--reference-size",
        help="Architectures in the study's reference sample, against which an aggregate "
        "score (az_nas, vkdnw_agg, tenas) ranks its terms; drawn once, when the study is made.",
    ),
]
_Top = Annotated[int, typer.Option("--top", "-k", help="Rows of the live and final leaderboards.")]
_Refine = Annotated[
    int,
    typer.Option(
        "--refine",
        help="After the search, train the K best for --refine-epochs and re-rank them (0: no).",
    ),
]
_RefineEpochs = Annotated[
    int, typer.Option("--refine-epochs", help="Training epochs per candidate of --refine.")
]
_Live = Annotated[
    Optional[bool],
    typer.Option(
        "--live/--no-live", help="Live progress and table (default: when stderr is a terminal)."
    ),
]
_d = command_default


def search_cmd(
    space: _Space = None,
    space_opt: _SpaceOpt = None,
    data: _Data = _d("data"),
    trials: _Trials = _d("trials"),
    timeout: _Timeout = _d("timeout"),
    n_kernel: _NKernel = _d("n_kernel"),
    n_low: _NLow = _d("n_low"),
    pruner: _Pruner = _d("pruner"),
    objective: _Objective = _d("objective"),
    scores: _Scores = _d("scores"),
    sampler: _Sampler = _d("sampler"),
    max_params: _MaxParams = None,
    max_flops: _MaxFlops = None,
    max_latency_ms: _MaxLatency = _d("max_latency_ms"),
    max_train_memory_mb: _MaxMemory = _d("max_train_memory_mb"),
    latency_batch: _LatencyBatch = None,
    memory_batch: _MemoryBatch = None,
    storage: _Storage = _d("storage"),
    study: _Study = _d("study_name"),
    db_patience: _DbPatience = _d("db_patience"),
    workers: _Workers = _d("workers"),
    threads: _Threads = _d("threads"),
    seed: _Seed = _d("seed"),
    device: _Device = _d("device"),
    bn: _Bn = _d("bn"),
    seeds: _Seeds = _d("seeds"),
    img_size: _ImgSize = _d("img_size"),
    reference_size: _RefSize = _d("reference_size"),
    top: _Top = 10,
    refine: _Refine = 0,
    refine_epochs: _RefineEpochs = 1,
    live: _Live = None,
) -> None:
    """Search a space for the best untrained architectures (pNTK scores at initialization).

    Each trial samples an architecture, checks the budgets, builds it, scores it on N images and stores every score in the study. Ctrl-C stops cleanly: completed trials are kept.
    """
    from nasntk.leaderboard import check_top
    from nasntk.study import SearchInterrupted, search
    from nasntk.study.config import command_config
    from nasntk.study.interrupts import sigterm_as_ctrl_c

    check_top(top)
    if refine < 0 or refine_epochs < 1:
        raise NasntkError("--refine must be >= 0 and --refine-epochs >= 1")
    config = command_config(
        space=space, space_opt=space_opt, max_params=max_params, max_flops=max_flops,
        data=data, trials=trials, timeout=timeout, objective=objective, scores=scores,
        sampler=sampler, seed=seed, n_kernel=n_kernel, n_low=n_low, pruner=pruner,
        storage=storage, study_name=study, db_patience=db_patience, workers=workers,
        device=device, bn=bn,
        seeds=seeds, img_size=img_size, threads=threads, reference_size=reference_size,
        max_latency_ms=max_latency_ms, max_train_memory_mb=max_train_memory_mb,
        proxy_options={k: v for k, v in (("latency_batch", latency_batch),
                                         ("memory_batch", memory_batch)) if v is not None},
    )  # fmt: skip
    header = data_line(config)
    display = Display(
        config.target_trials, top, sys.stderr.isatty() if live is None else live, header=header
    )
    start = time.perf_counter()
    try:
        with sigterm_as_ctrl_c(), display:
            result = search(config, callbacks=[display], on_db_event=display.db_event)
    except SearchInterrupted as exc:
        final_report(exc.study, top=top, seconds=time.perf_counter() - start, interrupted=True)
        raise typer.Exit(130) from None
    ran = display.started or config.target_trials is None
    if not ran:
        stderr().print(
            f"nothing to run: the study already holds {config.target_trials} trials "
            "(raise --trials to continue it)"
        )
    seconds = time.perf_counter() - start if ran else None  # no "30 trials in 2.2 s" for none
    final_report(result, top=top, seconds=seconds, interrupted=False)
    if refine:
        from nasntk.cli.validate import progress_bars, render_refinement
        from nasntk.refine import refine as refine_top

        stderr().print(f"refining the top {refine}: {refine_epochs} epoch(s) of training each")
        with progress_bars() as progress:
            refined = refine_top(
                result, top=refine, epochs=refine_epochs, device=config.device, progress=progress
            )
        render_refinement(refined)


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
) -> None:
    """Ranked candidates of a study with every score, params, FLOPs and spec."""
    from nasntk.columns import parse
    from nasntk.leaderboard import check_format, render, rows, study_info, table
    from nasntk.study import load_study
    from nasntk.study.record import objective_names

    check_format(fmt)
    wanted = parse(columns)
    st = load_study(storage, study)
    ranked = rows(st, top=top)
    if fmt == "table" and out is None:
        console = stdout()
        console.print(
            table(
                ranked,
                columns=wanted,
                title=f"{st.study_name}: {len(ranked)} candidates",
                objectives=objective_names(st),
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


def _html_extras(study: Any, ranked: list) -> tuple[dict[str, str], list[str]]:
    """Each score column's direction, and the rank-1 cell drawn (cell spaces)."""
    from nasntk import proxies
    from nasntk.study.models import cell_drawings
    from nasntk.study.record import objective_names

    directions = {}
    for name in {k for r in ranked for k in r}:
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
    """Add ``search``, ``leaderboard``, ``plot``, ``export``, ``spaces`` and ``studies``."""
    app.command("search", epilog=SEARCH_EPILOG)(search_cmd)
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
