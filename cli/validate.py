"""``nasntk validate``: train the top-K and K random candidates of a study briefly; correlate.

Thin: parses options, calls :func:`nasntk.validate.validate` with rich progress bars, renders the
correlation table (and where the report went).
"""

from __future__ import annotations

import importlib
import math
from pathlib import Path
from typing import Optional

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


def _fmt(v: object, digits: int = 3) -> str:
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(v)
    return "nan" if math.isnan(f) else f"{f:.{digits}f}"


def register(app: typer.Typer) -> None:
    """Add ``validate`` to app."""

    @app.command("validate", epilog=_EPILOG)
    def validate_cmd(
        study: Optional[str] = typer.Option(
            None, "--study", help="Study name (default: the storage's most recent)."
        ),
        storage: Optional[str] = typer.Option(
            None, "--storage", help="Optuna storage URL (default: sqlite:///nasntk.db)."
        ),
        top: int = typer.Option(5, "--top", help="Train the K best candidates of the leaderboard."),
        random_k: int = typer.Option(
            5, "--random", help="...and K others drawn at random from the rest."
        ),
        epochs: int = typer.Option(3, "--epochs", help="Training epochs per candidate."),
        data: Optional[str] = typer.Option(
            None, "--data", help="Image source (default: the one the study searched on)."
        ),
        n: Optional[int] = typer.Option(
            None, "--n", help="Images to use (default: all of the source, at most 2,000)."
        ),
        val_fraction: float = typer.Option(
            0.2, "--val-fraction", help="Fraction of each class held out for validation."
        ),
        seed: int = typer.Option(
            0, "--seed", help="Seeds the initialisation, the split, shuffling and the random draw."
        ),
        optimizer: str = typer.Option("sgd", "--optimizer", help="sgd (momentum 0.9) or adamw."),
        lr: Optional[float] = typer.Option(
            None,
            "--lr",
            help="Peak learning rate of the cosine schedule (default: 0.05 sgd, 0.002 adamw).",
        ),
        weight_decay: Optional[float] = typer.Option(
            None, "--weight-decay", help="Default: 5e-4 sgd, 0.05 adamw."
        ),
        batch_size: int = typer.Option(64, "--batch-size", help="Mini-batch size."),
        augment: bool = typer.Option(
            False,
            "--augment/--no-augment",
            help="Random crop + horizontal flip (natural images, not digits).",
        ),
        device: str = typer.Option("cpu", "--device", help="cpu, cuda or auto."),
        out: Optional[Path] = typer.Option(
            None, "--out", help="Folder for report.md, validation.csv and scatter plots."
        ),
        retrain: bool = typer.Option(
            False, "--retrain", help="Ignore results stored for this budget and train again."
        ),
    ) -> None:
        """Check the zero-cost ranking: train candidates briefly, report Kendall τ / Spearman ρ.

        Results are stored in the study, keyed by the budget (data, epochs, seed, recipe): running
        the same command again reads them back instead of retraining.
        """
        val = importlib.import_module("nasntk.validate")
        err = Console(stderr=True)
        columns = (
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[label]}"),
        )
        with Progress(*columns, console=err, transient=True) as bars:
            cand = bars.add_task("candidates", total=None, label="")
            steps = bars.add_task("training", total=None, label="", visible=False)

            def progress(phase: str, done: int, total: int, label: str) -> None:
                if phase == "candidate":
                    bars.update(cand, completed=done, total=total, label=label[:60])
                    bars.update(steps, completed=0, total=None, visible=False)
                else:
                    bars.update(steps, completed=done, total=total, visible=True)

            result = val.validate(
                study,
                storage=storage,
                top=top,
                random_k=random_k,
                epochs=epochs,
                data=data,
                n=n,
                val_fraction=val_fraction,
                seed=seed,
                optimizer=optimizer,
                lr=lr,
                weight_decay=weight_decay,
                batch_size=batch_size,
                augment=augment,
                device=device,
                out=out,
                retrain=retrain,
                progress=progress,
            )
        console = Console()
        cands = Table(title=f"study {result.study}: {result.budget[len(val.ATTR_PREFIX) :]}")
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
            cands.add_row(
                str(r.get("rank")),
                r["role"],
                str(r.get("trial")),
                str(r.get("arch", "")),
                _fmt(r["val_acc"]),
                note,
            )
        console.print(cands)
        corr = Table(title="rank correlation with validation accuracy (positive = score agrees)")
        for col in ("score", "pairs", "Kendall τ", "Spearman ρ"):
            corr.add_column(col, justify="left" if col == "score" else "right")
        for name, c in result.correlations.items():
            corr.add_row(name, str(c["n"]), _fmt(c["kendall"]), _fmt(c["spearman"]))
        console.print(corr)
        console.print(f"trained {result.trained}, read back from the study {result.reused}")
        if result.files:
            console.print(f"report: {result.files['report']}")
