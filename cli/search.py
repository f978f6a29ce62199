"""``nasntk search | leaderboard | plot | export | spaces | studies``: a thin layer over
:mod:`nasntk.search`, :mod:`nasntk.leaderboard` and :mod:`nasntk.plots`.

Progress and tables go to stderr while a search runs; the final leaderboard goes to stdout.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from nasntk.errors import NasntkError

#: What `nasntk search` runs with no options: a ~1 minute search on 2 CPU cores.
DEFAULT_SPACE = "nb201"
DEFAULT_SPACE_OPTIONS: dict[str, Any] = {"C": 16, "N": 1}
DEFAULT_IMG_SIZE = 8
DEFAULT_TRIALS = 100

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

  nasntk search --objective pntk_krr,pntk_cond,params:min --sampler nsga2 --trials 100

  nasntk search --space resnet --max-params 2e6 --workers 2 --storage journal:runs.log

  nasntk search --trials 300 --n-low 16 --n-kernel 128   # multi-fidelity with successive halving

Rerunning the same command resumes the same study (--trials is the total it should hold).
"""


def _stderr() -> Console:
    return Console(stderr=True)


def _stdout() -> Console:
    return Console(width=max(100, Console().width))


def _space_options(items: Optional[list[str]]) -> dict[str, Any]:
    """``KEY=VALUE`` strings -> dict (values parsed as JSON when they are, else kept as text)."""
    out: dict[str, Any] = {}
    for item in items or []:
        for part in item.split(","):
            key, sep, value = part.partition("=")
            if not sep or not key.strip():
                raise NasntkError(f"--space-opt {part!r} must look like KEY=VALUE (e.g. C=8)")
            try:
                out[key.strip()] = json.loads(value)
            except json.JSONDecodeError:
                out[key.strip()] = value.strip()
    return out


def _number(text: Optional[str], option: str) -> Optional[int]:
    """Budget numbers: ``2000000``, ``2e6``, ``2M``, ``500k``, ``1.5G``."""
    if text is None:
        return None
    t = text.strip().lower().replace("_", "").replace(",", "")
    scale = 1.0
    if t and t[-1] in "kmg":
        scale = {"k": 1e3, "m": 1e6, "g": 1e9}[t[-1]]
        t = t[:-1]
    try:
        value = float(t) * scale
    except ValueError:
        raise NasntkError(f"{option} must be a number like 2e6, 2M or 500k, got {text!r}") from None
    if not value > 0:
        raise NasntkError(f"{option} must be positive, got {text!r}")
    return int(value)


def _objective_columns(study: Any) -> list[str]:
    from nasntk.search import study_config

    names = list(study_config(study).get("objectives") or [])
    return names or ["value"]


class _Display:
    """Progress bar (trials done, best so far, ETA) and a live top-k table, on stderr."""

    def __init__(self, total: Optional[int], top: int, enabled: bool) -> None:
        self.top = top
        self.enabled = enabled
        self.console = _stderr()
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]trials"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[best]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
        )
        self.task = self.progress.add_task("search", total=total, best="")
        self.table: Any = Table()
        self.live = Live(self._group(), console=self.console, refresh_per_second=4, transient=True)
        self.started = False

    def _group(self) -> Group:
        return Group(self.progress, self.table)

    def __enter__(self) -> _Display:
        if self.enabled:
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.enabled:
            self.live.__exit__(*exc)

    def __call__(self, study: Any, trial: Any) -> None:
        from nasntk.leaderboard import rows, table
        from nasntk.search import counted_trials

        done = counted_trials(study)
        if not self.started:
            if done > 1:  # resuming: start the bar (and its speed estimate) at the trials held
                self.progress.reset(self.task, completed=done - 1)
            self.started = True
        self.progress.update(self.task, completed=done)
        objectives = _objective_columns(study)
        top_rows = rows(study, top=self.top)
        if top_rows:
            best = top_rows[0]
            self.progress.update(
                self.task,
                best=" ".join(f"best {k}={best.get(k, float('nan')):.4g}" for k in objectives[:3]),
            )
        self.table = table(
            top_rows, columns=_compact_columns(study, top_rows), title=f"top {self.top} so far"
        )
        if self.enabled:
            self.live.update(self._group())


def _compact_columns(study: Any, rows: list[dict[str, Any]]) -> list[str]:
    """Columns of the search's tables: rank, trial, arch, the objectives, KRR accuracy, params."""
    objectives = _objective_columns(study)
    cols = ["rank", "pareto_rank", "trial", "arch", *objectives, "pntk_krr", "params"]
    present = set().union(*(r.keys() for r in rows)) if rows else set()
    return [c for c in dict.fromkeys(cols) if c in present]


def _final_report(study: Any, *, top: int, seconds: Optional[float], interrupted: bool) -> None:
    from nasntk.leaderboard import rows, summary, table

    err = _stderr()
    s = summary(study)
    took = f" in {seconds:.1f} s" if seconds is not None else ""
    err.print(
        f"[bold]study {s['study']}[/]: {s['trials']} trials{took} — {s['complete']} complete "
        f"({s['duplicates']} duplicates reused), {s['pruned']} pruned, {s['fail']} failed"
        + (f", {s['running']} running" if s["running"] else "")
    )
    for reason, count in s["failures"].items():
        err.print(f"  failed ×{count}: {reason}", markup=False, highlight=False)
    for reason, count in list(s["prunes"].items())[:5]:
        err.print(f"  pruned ×{count}: {reason}", markup=False, highlight=False)
    if interrupted:
        err.print(
            "[yellow]interrupted[/]: completed trials are saved; rerun the same command to resume"
        )
    ranked = rows(study, top=top)
    if ranked:
        title = f"top {len(ranked)} of {s['study']}"
        _stdout().print(table(ranked, columns=_compact_columns(study, ranked), title=title))
        sys.stdout.flush()
        err.print(
            "next: [cyan]nasntk leaderboard --format html --out leaderboard.html[/] · "
            "[cyan]nasntk export --rank 1 --out best.json[/] · [cyan]nasntk plot --out plots[/]"
        )
    else:
        err.print("no completed trials yet")


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def register(app: typer.Typer) -> None:
    """Add ``search``, ``leaderboard``, ``plot``, ``export``, ``spaces`` and ``studies``."""

    @app.command("search", epilog=SEARCH_EPILOG)
    def search_cmd(
        space: Optional[str] = typer.Option(
            None,
            "--space",
            "-s",
            help=f"Search space (see `nasntk spaces`) or module:Class. Default: {DEFAULT_SPACE} "
            "with C=16, N=1 on 8×8 images.",
        ),
        space_opt: Optional[list[str]] = typer.Option(
            None, "--space-opt", help="Space option KEY=VALUE (repeatable), e.g. C=16."
        ),
        data: str = typer.Option(
            "digits",
            "--data",
            "-d",
            help="Images: digits, cifar10[:PATH], mnist[:PATH], npz:PATH, folder:PATH.",
        ),
        trials: Optional[int] = typer.Option(
            None,
            "--trials",
            "-n",
            help=f"Finished trials the study should hold (default {DEFAULT_TRIALS}, or unlimited with --timeout).",
        ),
        timeout: Optional[float] = typer.Option(
            None, "--timeout", help="Stop starting trials after this many seconds."
        ),
        n_kernel: int = typer.Option(64, "--n-kernel", "-N", help="Images in the kernel (N >= 4)."),
        n_low: Optional[int] = typer.Option(
            None,
            "--n-low",
            help="Multi-fidelity: score on this many images first; prune poor candidates.",
        ),
        pruner: Optional[str] = typer.Option(
            None, "--pruner", help="sha (default with --n-low) | median | hyperband | none."
        ),
        objective: str = typer.Option(
            "default",
            "--objective",
            "-o",
            help="Score to optimise, or several comma-separated (multi-objective); NAME:min/max overrides the direction.",
        ),
        scores: Optional[str] = typer.Option(
            None,
            "--scores",
            help="Extra scores to record (comma-separated, or 'all'); default: all pNTK scores.",
        ),
        sampler: str = typer.Option("tpe", "--sampler", help="tpe | random | nsga2 | grid."),
        max_params: Optional[str] = typer.Option(
            None,
            "--max-params",
            help="Parameter budget (e.g. 2e6, 2M); over-budget candidates are pruned before any kernel.",
        ),
        max_flops: Optional[str] = typer.Option(
            None, "--max-flops", help="FLOPs budget per image (e.g. 500M)."
        ),
        storage: Optional[str] = typer.Option(None, "--storage", help=_STORAGE_HELP),
        study: Optional[str] = typer.Option(None, "--study", help=_STUDY_HELP),
        workers: int = typer.Option(
            1, "--workers", "-w", help="Worker processes sharing the storage."
        ),
        threads: int = typer.Option(
            1,
            "--threads",
            help="Torch threads per worker (small kernels run fastest on 1; use --workers for more cores).",
        ),
        seed: Optional[int] = typer.Option(0, "--seed", help="Sampler seed."),
        device: str = typer.Option("cpu", "--device", help="cpu | cuda | auto."),
        bn: Optional[str] = typer.Option(
            None, "--bn", help="BatchNorm in the kernel: eval | batch | frozen."
        ),
        seeds: int = typer.Option(
            1, "--seeds", help="Average scores over this many initialisations."
        ),
        img_size: Optional[int] = typer.Option(
            None, "--img-size", help="Resize images to this size."
        ),
        top: int = typer.Option(10, "--top", "-k", help="Rows of the live and final leaderboards."),
        live: Optional[bool] = typer.Option(
            None,
            "--live/--no-live",
            help="Live progress and table (default: when stderr is a terminal).",
        ),
    ) -> None:
        """Search a space for the best untrained architectures (pNTK scores at initialization).

        Each trial samples an architecture, checks the budgets, builds it, scores it on N images and stores every score in the study. Ctrl-C stops cleanly: completed trials are kept.
        """
        from nasntk.search import SearchInterrupted, search

        options = _space_options(space_opt)
        if space is None:
            space = DEFAULT_SPACE
            options = {**DEFAULT_SPACE_OPTIONS, **options}
            if img_size is None:
                img_size = DEFAULT_IMG_SIZE
        if trials is None and timeout is None:
            trials = DEFAULT_TRIALS
        if top < 1:
            raise NasntkError(f"--top must be at least 1, got {top}")
        enabled = sys.stderr.isatty() if live is None else live
        display = _Display(trials, top, enabled)
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
        start = time.perf_counter()
        try:
            with display:
                result = search(
                    space,
                    data=data,
                    trials=trials,
                    timeout=timeout,
                    objective=objective,
                    scores=scores,
                    sampler=sampler,
                    seed=seed,
                    n_kernel=n_kernel,
                    n_low=n_low,
                    pruner=pruner,
                    max_params=_number(max_params, "--max-params"),
                    max_flops=_number(max_flops, "--max-flops"),
                    storage=storage,
                    study_name=study,
                    workers=workers,
                    device=device,
                    bn=bn,
                    seeds=seeds,
                    space_options=options,
                    img_size=img_size,
                    threads=threads,
                    callbacks=[display],
                )
        except SearchInterrupted as exc:
            _final_report(exc.study, top=top, seconds=time.perf_counter() - start, interrupted=True)
            raise typer.Exit(130) from None
        finally:
            signal.signal(signal.SIGTERM, previous)
        if not display.started and trials is not None:
            _stderr().print(
                f"nothing to run: the study already holds {trials} trials "
                "(raise --trials to continue it)"
            )
        _final_report(result, top=top, seconds=time.perf_counter() - start, interrupted=False)

    @app.command(
        "leaderboard",
        epilog="Examples:\n\n  nasntk leaderboard --top 20\n\n"
        "  nasntk leaderboard --format html --out leaderboard.html\n\n"
        "  nasntk leaderboard --study nb201-digits-default-n64 --format csv --out lb.csv",
    )
    def leaderboard_cmd(
        storage: Optional[str] = typer.Option(None, "--storage", help=_STORAGE_HELP),
        study: Optional[str] = typer.Option(None, "--study", help=_STUDY_HELP),
        top: Optional[int] = typer.Option(
            None, "--top", "-k", help="Keep the best K rows (default: all)."
        ),
        fmt: str = typer.Option(
            "table",
            "--format",
            "-f",
            help="table | csv | json | markdown | html (one self-contained file with plots).",
        ),
        out: Optional[Path] = typer.Option(
            None, "--out", help="Write to this file instead of stdout."
        ),
        plots: bool = typer.Option(
            True, "--plots/--no-plots", help="Embed the figures in HTML output."
        ),
    ) -> None:
        """Ranked candidates of a study with every score, params, FLOPs and spec."""
        from nasntk.leaderboard import FORMATS, render, rows, summary, table
        from nasntk.search import load_study, study_config

        if fmt not in FORMATS and fmt != "md":
            raise NasntkError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
        st = load_study(storage, study)
        ranked = rows(st, top=top)
        if fmt == "table" and out is None:
            _stdout().print(table(ranked, title=f"{st.study_name}: {len(ranked)} candidates"))
            return
        images = None
        info: dict[str, Any] = {}
        if fmt == "html":
            config = study_config(st)
            s = summary(st)
            info = {
                "study": st.study_name,
                "space": config.get("space", ""),
                "data": config.get("data", ""),
                "N": config.get("n_kernel", ""),
                "objectives": ", ".join(config.get("objectives", [])),
                "trials": f"{s['trials']} ({s['complete']} complete, {s['pruned']} pruned, {s['fail']} failed)",
            }
            if plots and ranked:
                from nasntk.plots import figures

                images = figures(st)
        text = render(
            ranked, fmt, title=f"nasntk leaderboard: {st.study_name}", images=images, info=info
        )
        if out is None:
            sys.stdout.write(text)
        else:
            _write(out, text)
            _stderr().print(f"wrote {len(ranked)} rows to {out}")

    @app.command(
        "plot",
        epilog="Examples:\n\n  nasntk plot --out plots\n\n  nasntk plot --study my-study --storage journal:runs.log --out figs",
    )
    def plot_cmd(
        out: Path = typer.Option(Path("plots"), "--out", help="Folder for the PNG files."),
        storage: Optional[str] = typer.Option(None, "--storage", help=_STORAGE_HELP),
        study: Optional[str] = typer.Option(None, "--study", help=_STUDY_HELP),
    ) -> None:
        """PNG figures: optimisation history, score vs parameters, Pareto front (multi-objective)."""
        from nasntk.plots import save
        from nasntk.search import load_study

        for path in save(load_study(storage, study), out):
            print(path)

    @app.command(
        "export",
        epilog="Examples:\n\n  nasntk export --rank 1 --out best.json\n\n"
        "  python -c \"import json, nasntk; print(nasntk.build(json.load(open('best.json'))))\"",
    )
    def export_cmd(
        rank: int = typer.Option(1, "--rank", "-r", help="Leaderboard rank to export (1 = best)."),
        out: Optional[Path] = typer.Option(None, "--out", help="JSON file (default: stdout)."),
        storage: Optional[str] = typer.Option(None, "--storage", help=_STORAGE_HELP),
        study: Optional[str] = typer.Option(None, "--study", help=_STUDY_HELP),
    ) -> None:
        """Write one leaderboard row (space, spec, scores) as JSON; nasntk.build(row) rebuilds it."""
        from nasntk.leaderboard import render, rows
        from nasntk.search import load_study

        if rank < 1:
            raise NasntkError(f"--rank must be at least 1, got {rank}")
        st = load_study(storage, study)
        ranked = rows(st)
        if rank > len(ranked):
            raise NasntkError(
                f"study {st.study_name!r} has {len(ranked)} ranked candidates, no rank {rank}"
            )
        row = json.loads(render([ranked[rank - 1]], "json"))[0]
        row["study"] = st.study_name
        text = json.dumps(row, indent=2) + "\n"
        if out is None:
            sys.stdout.write(text)
        else:
            _write(out, text)
            _stderr().print(f"wrote rank {rank} (trial {row['trial']}) to {out}")

    @app.command("spaces", epilog="Examples:\n\n  nasntk spaces\n\n  nasntk spaces --space nb201")
    def spaces_cmd(
        space: Optional[str] = typer.Option(None, "--space", "-s", help="Show only this space."),
    ) -> None:
        """Search spaces and their dimensions."""
        from nasntk.search_spaces import get, names

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
        _stdout().print(tbl)

    @app.command(
        "studies",
        epilog="Examples:\n\n  nasntk studies\n\n  nasntk studies --storage postgresql://me@db/nas",
    )
    def studies_cmd(
        storage: Optional[str] = typer.Option(None, "--storage", help=_STORAGE_HELP),
    ) -> None:
        """Studies in a storage with their trial counts."""
        from nasntk.search import study_summaries

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
        _stdout().print(tbl)


def _write(path: Path, text: str) -> None:
    try:
        if path.parent and not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except OSError as exc:
        raise NasntkError(f"cannot write {str(path)!r}: {exc.strerror}") from None
