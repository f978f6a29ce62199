"""What ``nasntk search`` shows: the data line, the live view (progress bar and a top-k table on
stderr) and the final report (counts, failure and pruning reasons, the leaderboard on stdout).
"""

from __future__ import annotations

import datetime
import math
import sys
import time
from typing import Any, Optional

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

#: Seconds between two "database unreachable, retrying" lines of one outage.
DB_EVERY = 10.0


def stderr() -> Console:
    return Console(stderr=True)


def stdout() -> Console:
    """Standard output at the terminal's width (80 when it is not a terminal, or $COLUMNS)."""
    return Console()


def _objective_columns(study: Any) -> list[str]:
    from nasntk.study.record import objective_names

    return objective_names(study)


def counts_line(s: dict[str, Any]) -> str:
    """``12 complete · 3 pruned · 1 failed · 2 duplicates`` from :func:`leaderboard.summary`."""
    parts = [f"{s['complete'] - s['duplicates']} scored"]
    parts += [f"{s[k]} {w}" for k, w in (("pruned", "pruned"), ("fail", "failed")) if s[k]]
    if s["duplicates"]:
        parts.append(f"{s['duplicates']} duplicates")
    return " · ".join(parts)


def trial_line(trial: Any, done: int, total: Optional[int], s: dict[str, Any]) -> str:
    """One log line per finished trial (for logs, when stderr is not a terminal)."""
    from nasntk.study.record import ARCH

    state = trial.state.name.lower()
    values = ""
    if trial.values:
        values = " " + " ".join(f"{v:.4g}" for v in trial.values)
    secs = f" ({trial.duration.total_seconds():.1f} s)" if trial.duration is not None else ""
    arch = str(trial.user_attrs.get(ARCH, ""))
    of = f"/{total}" if total else ""
    return f"trial {trial.number} [{done}{of}] {state}{values}{secs} {arch} — {counts_line(s)}"


class Display:
    """Progress bar (trials done, what they came to, best so far, ETA) and a live top-k table on
    a terminal; one line per trial otherwise (logs)."""

    def __init__(self, total: Optional[int], top: int, enabled: bool, header: str = "") -> None:
        self.top = top
        self.header = header  # said once the study is open and the first trial has finished
        self.enabled = enabled
        self.console = stderr()
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]trials"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"),
            TextColumn("{task.fields[best]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
        )
        self.task = self.progress.add_task("search", total=total, best="", counts="")
        self.total = total
        self.table: Any = Table()
        self.live = Live(self._group(), console=self.console, refresh_per_second=4, transient=True)
        self.started = False
        self.opened = datetime.datetime.now()  # trials finished before this were held already
        self.db_said = -math.inf  # when the last "database unreachable" line was printed

    def db_event(self, event: Any) -> None:
        """The database went away (one line, then one per ``DB_EVERY`` seconds) or came back."""
        if event.kind == "gave_up":
            return  # the search's one-line error follows
        now = time.monotonic()
        if event.kind == "retrying" and now - self.db_said < DB_EVERY:
            return
        self.db_said = now if event.kind != "back" else -math.inf
        style = "green" if event.kind == "back" else "yellow"
        self.console.print(f"[{style}]{event.line()}[/]", highlight=False, soft_wrap=True)

    def _group(self) -> Group:
        return Group(self.progress, self.table)

    def __enter__(self) -> Display:
        if self.enabled:
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.enabled:
            self.live.__exit__(*exc)

    def __call__(self, study: Any, trial: Any) -> None:
        from nasntk.leaderboard import rows, summary, table
        from nasntk.study import counted_trials

        done = counted_trials(study)
        if not self.started:
            held = held_before(study, self.opened)
            if held:  # resuming: start the bar (and its speed estimate) at the trials held
                self.progress.reset(self.task, completed=held)
            self.started = True
            if self.header:
                self.console.print(self.header, markup=False, highlight=False)
            if held:
                of = f" of {self.total}" if self.total else ""
                self.console.print(
                    f"resuming study {study.study_name}: {held}{of} trials already done",
                    markup=False,
                    highlight=False,
                )
        s = summary(study)
        self.progress.update(self.task, completed=done, counts=counts_line(s))
        if not self.enabled:
            line = trial_line(trial, done, self.total, s)
            self.console.print(line, markup=False, highlight=False, soft_wrap=True)
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


def held_before(study: Any, opened: datetime.datetime) -> int:
    """Counted trials the study held before ``opened`` (the command's start): a resumed
    study's earlier work, never what this command's own workers finished meanwhile."""
    from nasntk.study.record import counted

    return sum(
        1
        for t in study.get_trials(deepcopy=False)
        if counted(t) and t.datetime_complete is not None and t.datetime_complete < opened
    )


def _compact_columns(study: Any, rows: list[dict[str, Any]]) -> list[str]:
    """Columns of the search's tables: rank, trial, arch, the objectives, KRR accuracy, params."""
    objectives = _objective_columns(study)
    cols = ["rank", "pareto_rank", "trial", "arch", *objectives, "pntk_krr", "params"]
    present = set().union(*(r.keys() for r in rows)) if rows else set()
    return [c for c in dict.fromkeys(cols) if c in present]


def final_report(study: Any, *, top: int, seconds: Optional[float], interrupted: bool) -> None:
    from nasntk.leaderboard import chance_warnings, rows, summary, table

    err = stderr()
    s = summary(study)
    took = f" in {seconds:.1f} s" if seconds is not None else ""
    err.print(
        f"[bold]study {s['study']}[/]: {s['trials']} trials{took} — {s['complete']} complete "
        f"({s['duplicates']} duplicates reused), {s['pruned']} pruned, {s['fail']} failed"
        + (f", {s['running']} running" if s["running"] else "")
    )
    for reason, count in s["failures"].items():
        err.print(f"  failed ×{count}: {reason}", markup=False, highlight=False)
    prunes = list(s["prunes"].items())
    for reason, count in prunes[:5]:
        err.print(f"  pruned ×{count}: {reason}", markup=False, highlight=False)
    if len(prunes) > 5:
        more = sum(count for _, count in prunes[5:])
        err.print(f"  … and {len(prunes) - 5} more pruning reasons ({more} trials)")
    if interrupted:
        err.print(
            "[yellow]interrupted[/]: completed trials are saved; rerun the same command to resume"
        )
    every = rows(study)
    for warning in chance_warnings(every):
        err.print(f"[yellow]warning[/]: {warning}")
    ranked = every[:top]
    if ranked:
        title = f"top {len(ranked)} of {s['study']}"
        out = stdout()
        out.print(table(ranked, title=title, objectives=_objective_columns(study), width=out.width))
        sys.stdout.flush()
        err.print(
            "next: [cyan]nasntk leaderboard --format html --out leaderboard.html[/] · "
            "[cyan]nasntk export --rank 1 --out best.json[/] · [cyan]nasntk plot --out plots[/]"
        )
    else:
        err.print("no completed trials yet")


def data_line(config: Any) -> str:
    """What the search scores on (never a silent resize); empty when the source is bad (the
    search itself then says why, in one line)."""
    from nasntk import data as data_mod
    from nasntk.errors import NasntkError

    try:
        info = data_mod.info(config.data)
    except NasntkError:
        return ""
    size = config.img_size or info["img_size"]
    line = (
        f"data {config.data}: {info['size']:,} images, {info['num_classes']} classes, "
        f"{info['in_chans']} channel(s); networks scored on {config.n_kernel} of them at "
        f"{size}×{size}"
    )
    from nasntk.study.reference import aggregate_terms

    if aggregate_terms(config.score_names):
        from nasntk import proxies

        aggregates = [n for n in config.score_names if proxies.get(n).is_aggregate]
        line += (
            f"\n{', '.join(aggregates)} ranks its terms against a reference "
            f"sample of {config.reference_size} architectures, drawn and scored once when the "
            "study is made (--reference-size)"
        )
    return line + _measured_line(config)


def _measured_line(config: Any) -> str:
    """What latency and memory are measured with, when the search measures them."""
    from nasntk import proxies

    measured = [n for n in config.score_names if "measure" in proxies.get(n).needs]
    if not measured:
        return ""
    import torch

    opts = {**proxies.MEASURE_OPTIONS, **config.proxy_options}
    threads = config.threads_per_worker() or torch.get_num_threads()
    return (
        f"\n{', '.join(measured)} measured on {config.device} with {threads} torch "
        f"thread{'s' * (threads != 1)} per worker (--threads): latency at batch 1 and "
        f"{opts['latency_batch']} (--latency-batch), memory of a training step at batch "
        f"{opts['memory_batch']} (--memory-batch)"
    )
