"""``nasntk validate``: train the top-K and K random candidates of a study briefly; correlate.

Thin: parses options, calls :func:`nasntk.validation.validate` with rich progress bars, renders
the correlation table (and where the report went).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

_EPILOG = (
    "Example: nasntk search --space nb201 --trials 60 --study demo && "
    "nasntk validate --study demo --top 5 --random 5 --epochs 3 --out validate-demo"
)


_Study = Annotated[
    Optional[str], typer.Option("--study", help="Study name (default: the storage's most recent).")
]
_Storage = Annotated[
    Optional[str],
    typer.Option("--storage", help="Optuna storage URL (default: sqlite:///nasntk.db)."),
]
_Top = Annotated[int, typer.Option("--top", help="Train the K best candidates of the leaderboard.")]
_Random = Annotated[
    int, typer.Option("--random", help="...and K others drawn at random from the rest.")
]
_Epochs = Annotated[int, typer.Option("--epochs", help="Training epochs per candidate.")]
_Data = Annotated[
    Optional[str],
    typer.Option("--data", help="Image source (default: the one the study searched on)."),
]
_N = Annotated[
    Optional[int],
    typer.Option("--n", help="Images to use (default: all of the source, at most 2,000)."),
]
_ValFraction = Annotated[
    float, typer.Option("--val-fraction", help="Fraction of each class held out for validation.")
]
_Seed = Annotated[
    int,
    typer.Option(
        "--seed", help="Seeds the initialisation, the split, shuffling and the random draw."
    ),
]
_Optimizer = Annotated[str, typer.Option("--optimizer", help="sgd (momentum 0.9) or adamw.")]
_Lr = Annotated[
    Optional[float],
    typer.Option(
        "--lr", help="Peak learning rate of the cosine schedule (default: 0.05 sgd, 0.002 adamw)."
    ),
]
_WeightDecay = Annotated[
    Optional[float], typer.Option("--weight-decay", help="Default: 5e-4 sgd, 0.05 adamw.")
]
_BatchSize = Annotated[int, typer.Option("--batch-size", help="Mini-batch size.")]
_Augment = Annotated[
    bool,
    typer.Option(
        "--augment/--no-augment",
        help="Random crop + horizontal flip (natural images, not digits).",
    ),
]
_Device = Annotated[str, typer.Option("--device", help="cpu, cuda or auto.")]
_Out = Annotated[
    Optional[Path],
    typer.Option(
        "--out",
        help="Folder for report.md, validation.csv and scatter plots (default: validate/<study>).",
    ),
]
_Retrain = Annotated[
    bool, typer.Option("--retrain", help="Ignore results stored for this budget and train again.")
]


def validate_cmd(
    study: _Study = None,
    storage: _Storage = None,
    top: _Top = 5,
    random_k: _Random = 5,
    epochs: _Epochs = 3,
    data: _Data = None,
    n: _N = None,
    val_fraction: _ValFraction = 0.2,
    seed: _Seed = 0,
    optimizer: _Optimizer = "sgd",
    lr: _Lr = None,
    weight_decay: _WeightDecay = None,
    batch_size: _BatchSize = 64,
    augment: _Augment = False,
    device: _Device = "cpu",
    out: _Out = None,
    retrain: _Retrain = False,
) -> None:
    """Check the zero-cost ranking: train candidates briefly, report Kendall τ / Spearman ρ.

    Results are stored in the study, keyed by the budget (data, epochs, seed, recipe): running
    the same command again reads them back instead of retraining.
    """
    from nasntk.study import load_study
    from nasntk.validation import validate

    if study is None:  # the study the last search opened (and say which)
        study = load_study(storage, None).study_name
        Console(stderr=True).print(f"validating study {study} (the one searched last)")
    if out is None:
        out = Path("validate") / re.sub(r"[^A-Za-z0-9_.+-]+", "-", study)
    options = dict(storage=storage, top=top, random_k=random_k, epochs=epochs, data=data, n=n)
    options.update(val_fraction=val_fraction, seed=seed, optimizer=optimizer, lr=lr)
    options.update(weight_decay=weight_decay, batch_size=batch_size, augment=augment)
    options.update(device=device, out=out, retrain=retrain)
    with progress_bars() as progress:
        result = validate(study, progress=progress, **options)
    _render(result)


@contextlib.contextmanager
def progress_bars() -> Iterator[Callable[[str, int, int, str], None]]:
    """Bars for the candidates and the training steps of the current one (on stderr)."""
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[label]}"),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bars:
        cand = bars.add_task("candidates", total=None, label="")
        steps = bars.add_task("training", total=None, label="", visible=False)

        def progress(phase: str, done: int, total: int, label: str) -> None:
            if phase == "candidate":
                bars.update(cand, completed=done, total=total, label=label[:60])
                bars.update(steps, completed=0, total=None, visible=False)
            else:
                bars.update(steps, completed=done, total=total, visible=True)

        yield progress


def _render(result: Any) -> None:
    """The candidates, the correlations, and where the report went (on stdout)."""
    from nasntk.tables import format_fixed
    from nasntk.validation import ATTR_PREFIX, FEW_PAIRS

    console = Console()
    cands = Table(title=f"study {result.study}: {result.budget[len(ATTR_PREFIX) :]}")
    for col, just in (
        ("rank", "right"),
        ("role", "left"),
        ("trial", "right"),
        ("arch", "left"),
        ("val acc", "right"),
        ("note", "left"),
    ):
        cands.add_column(col, justify=just, overflow="fold")
    for r in result.rows:
        note = r.get("error") or ("stored" if r.get("reused") else "")
        cells = (r.get("rank"), r["role"], r.get("trial"), r.get("arch", ""))
        cands.add_row(*map(str, cells), format_fixed(r["val_acc"]), note)
    console.print(cands)
    corr = Table(title="rank correlation with validation accuracy (positive = score agrees)")
    for col in ("score", "pairs", "Kendall τ", "τ 95% CI", "Spearman ρ"):
        corr.add_column(col, justify="left" if col == "score" else "right")
    for name, c in result.correlations.items():
        ci = f"[{format_fixed(c.get('kendall_low'))}, {format_fixed(c.get('kendall_high'))}]"
        corr.add_row(name, str(c["n"]), format_fixed(c["kendall"]), ci, format_fixed(c["spearman"]))
    console.print(corr)
    pairs = max((int(c["n"]) for c in result.correlations.values()), default=0)
    if pairs < FEW_PAIRS:
        console.print(
            f"[yellow]warning[/]: {pairs} pairs only — τ is too uncertain to read (see its CI); "
            f"validate at least {FEW_PAIRS} candidates (--top / --random)"
        )
    console.print(f"trained {result.trained}, read back from the study {result.reused}")
    if result.files:
        console.print(f"report: {result.files['report']}")


def refine_cmd(
    study: _Study = None,
    storage: _Storage = None,
    top: Annotated[
        int, typer.Option("--top", help="Re-rank the K best candidates of the leaderboard.")
    ] = 10,
    epochs: _Epochs = 1,
    data: _Data = None,
    n: _N = None,
    val_fraction: _ValFraction = 0.2,
    seed: _Seed = 0,
    optimizer: _Optimizer = "sgd",
    lr: _Lr = None,
    weight_decay: _WeightDecay = None,
    batch_size: _BatchSize = 64,
    augment: _Augment = False,
    device: _Device = "cpu",
    retrain: _Retrain = False,
) -> None:
    """Re-rank a study's top-K by a short training run (stored in the study; resumable).

    The zero-cost score orders the space; a little training decides among its first rows. Running
    the same command again reads the stored results instead of retraining.
    """
    from nasntk.refine import refine

    options = dict(storage=storage, top=top, epochs=epochs, data=data, n=n, seed=seed)
    options.update(val_fraction=val_fraction, optimizer=optimizer, lr=lr, retrain=retrain)
    options.update(weight_decay=weight_decay, batch_size=batch_size, augment=augment)
    with progress_bars() as progress:
        result = refine(study, progress=progress, device=device, **options)
    render_refinement(result)


def render_refinement(result: Any) -> None:
    """The re-ranked top-K: new rank, zero-cost rank, architecture, validation accuracy."""
    from nasntk.tables import format_fixed
    from nasntk.validation import ATTR_PREFIX

    console = Console()
    table = Table(title=f"study {result.study}, refined: {result.budget[len(ATTR_PREFIX) :]}")
    for col, just in (("new rank", "right"), ("zero-cost rank", "right"), ("trial", "right"),
                      ("arch", "left"), ("val acc", "right"), ("note", "left")):  # fmt: skip
        table.add_column(col, justify=just, overflow="fold")
    for r in result.rows:
        note = r.get("error") or ("stored" if r.get("reused") else "")
        cells = (r["refined_rank"], r.get("rank"), r.get("trial"), r.get("arch", ""))
        table.add_row(*map(str, cells), format_fixed(r["val_acc"]), note)
    console.print(table)
    best = result.best
    console.print(
        f"rank 1 after refinement: trial {best.get('trial')} (zero-cost rank {best.get('rank')}); "
        f"trained {result.trained}, read back from the study {result.reused}"
    )


def register(app: typer.Typer) -> None:
    """Add ``validate`` and ``refine`` to app."""
    app.command("validate", epilog=_EPILOG)(validate_cmd)
    app.command(
        "refine",
        epilog="Example: nasntk search --space nb201 --trials 100 && nasntk refine --top 10",
    )(refine_cmd)
