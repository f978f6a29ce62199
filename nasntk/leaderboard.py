"""Leaderboards: a study's completed candidates as ranked rows, rendered as table/csv/json/md/html.

A *row* is a plain dict built only from what the study stores (trial user attributes and the
search configuration kept in the study's user attributes)::

    {"rank": 1, "trial": 17, "arch": "<space text form>", <objective scores…>, <other scores…>,
     "params": 123456, "flops": 7890123, "time_s": 0.41, "space": "nb201",
     "space_options": {...}, "data": "digits", "num_classes": 10, "in_chans": 1, "img_size": 16,
     "spec": {...}}

so that :func:`nasntk.build` rebuilds the untrained network from a row (or its exported JSON).

Ranking. One objective: by its value in the study's direction (ties: earlier trial first).
Several objectives: by Pareto rank (non-dominated sorting: rank 1 is the Pareto front, rank k is
the front once ranks < k are removed), then by the first objective, then by trial number.
Duplicate trials (``duplicate_of``: a spec already scored, values reused) appear once.
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from nasntk.errors import NasntkError
from nasntk.study import record
from nasntk.study.record import decode_float, objective_names, study_config
from nasntk.tables import format_value, markdown_table

__all__ = [
    "FORMATS",
    "check_format",
    "check_rank",
    "chance_warnings",
    "check_top",
    "export_row",
    "pareto_ranks",
    "render",
    "rows",
    "study_info",
    "summary",
    "table",
]

#: Output formats of :func:`render`.
FORMATS = ("table", "csv", "json", "markdown", "html")
_SHAPE_KEYS = record.SHAPE_KEYS


def check_format(fmt: str) -> None:
    """``--format`` names one of :data:`FORMATS` (or ``md``)."""
    if fmt not in FORMATS and fmt != "md":
        raise NasntkError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")


def check_top(top: int | None) -> None:
    """``--top`` keeps at least one row."""
    if top is not None and top < 1:
        raise NasntkError(f"--top must be at least 1, got {top}")


def pareto_ranks(points: Sequence[Sequence[float]]) -> list[int]:
    """Non-dominated sorting of points to *minimise*: rank 1 is the front, and so on.

    ``a`` dominates ``b`` when ``a_i <= b_i`` for every i and ``a_j < b_j`` for some j.
    O(n^2 m) per front; fine for leaderboards of thousands of rows.
    """
    n = len(points)
    ranks = [0] * n
    remaining = set(range(n))
    rank = 0
    while remaining:
        rank += 1
        front = []
        for i in remaining:
            pi = points[i]
            dominated = False
            for j in remaining:
                if j == i:
                    continue
                pj = points[j]
                if all(a <= b for a, b in zip(pj, pi, strict=True)) and any(
                    a < b for a, b in zip(pj, pi, strict=True)
                ):
                    dominated = True
                    break
            if not dominated:
                front.append(i)
        for i in front:
            ranks[i] = rank
        remaining -= set(front)
    return ranks


def _score_columns(study: optuna.Study, trials: Sequence[FrozenTrial]) -> list[str]:
    objectives = objective_names(study)
    declared = list(study_config(study).get("scores") or [])
    found: list[str] = []
    for t in trials:
        found.extend(k for k in record.scores(t) if k not in found)
    ordered = [n for n in objectives if n not in ("value",) and not n.startswith("value_")]
    ordered = [n for n in ordered if n not in ("params", "flops")]
    for n in declared + sorted(found):
        if n not in ordered and n not in ("params", "flops"):
            ordered.append(n)
    out = []
    for n in ordered:
        out.append(n)
        if f"{n}_std" in found and f"{n}_std" not in ordered:
            out.append(f"{n}_std")
    return [c for c in dict.fromkeys(out)]


def rows(study: optuna.Study, top: int | None = None) -> list[dict[str, Any]]:
    """The study's completed, distinct candidates as ranked rows (best first); ``top`` keeps K."""
    check_top(top)
    config = study_config(study)
    directions = study.directions
    objectives = objective_names(study)
    trials = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not record.is_duplicate(t) and t.values is not None
    ]
    signs = [1.0 if d == StudyDirection.MINIMIZE else -1.0 for d in directions]
    minimised = [[s * v for s, v in zip(signs, t.values, strict=True)] for t in trials]
    if len(directions) > 1:
        pareto = pareto_ranks(minimised)
        order = sorted(
            range(len(trials)), key=lambda i: (pareto[i], minimised[i][0], trials[i].number)
        )
    else:
        pareto = [0] * len(trials)
        order = sorted(range(len(trials)), key=lambda i: (minimised[i][0], trials[i].number))
    scores = _score_columns(study, trials)
    shape = {k: config.get(k) for k in _SHAPE_KEYS}
    out: list[dict[str, Any]] = []
    for rank, i in enumerate(order, start=1):
        t = trials[i]
        attrs = t.user_attrs
        row: dict[str, Any] = {"rank": rank}
        if len(directions) > 1:
            row["pareto_rank"] = pareto[i]
        row["trial"] = t.number
        row["arch"] = attrs.get(record.ARCH, "")
        for name, value in zip(objectives, t.values, strict=True):
            row[name] = float(value)
        for name in scores:
            if name not in row:
                row[name] = decode_float(attrs.get(name))
        row["params"] = attrs.get(record.PARAMS)
        row["flops"] = attrs.get(record.FLOPS)
        total = attrs.get(record.TIME_TOTAL)
        row["time_s"] = round(float(total), 4) if total is not None else None
        if isinstance(attrs.get(record.HARDWARE), Mapping):  # what latency / memory used
            row["hardware"] = dict(attrs[record.HARDWARE])
        row["space"] = attrs.get(record.SPACE, config.get("space"))
        if attrs.get(record.SPACE_OPTIONS) or config.get("space_options"):
            row["space_options"] = attrs.get(record.SPACE_OPTIONS) or config.get("space_options")
        row["data"] = attrs.get(record.DATA, config.get("data"))
        for k, v in shape.items():
            v = attrs.get(k, v)
            if v is not None:
                row[k] = v
        row["spec"] = record.spec(t)
        out.append(row)
        if top is not None and len(out) >= top:
            break
    return out


def pruned_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """The study's pruned candidates in trial order (duplicates left out): trial, arch, what
    was counted or measured before the prune — any measured score (``latency_ms``,
    ``train_memory_mb``, …), params, FLOPs —, why (``pruned``: over a budget, with the value
    that broke it, or stopped by the multi-fidelity pruner), and the spec."""
    out: list[dict[str, Any]] = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.PRUNED,)):
        if record.is_duplicate(t):
            continue
        attrs = t.user_attrs
        row: dict[str, Any] = {"trial": t.number, "arch": attrs.get(record.ARCH, "")}
        row.update(record.scores(t))
        row["params"] = attrs.get(record.PARAMS)
        row["flops"] = attrs.get(record.FLOPS)
        row["pruned"] = attrs.get(record.PRUNE_REASON, "pruned")
        if isinstance(attrs.get(record.HARDWARE), Mapping):
            row["hardware"] = dict(attrs[record.HARDWARE])
        row["spec"] = record.spec(t)
        out.append(row)
    return out


def summary(study: optuna.Study) -> dict[str, Any]:
    """Trial counts by state, duplicates, failures and prunes counted by their reason."""
    counts: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    pruned: Counter[str] = Counter()
    duplicates = 0
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name.lower()] += 1
        if record.is_duplicate(t):
            duplicates += 1
        if t.state == TrialState.FAIL:
            failures[str(t.user_attrs.get(record.FAIL_REASON, "unknown"))] += 1
        elif t.state == TrialState.PRUNED:
            pruned[str(t.user_attrs.get(record.PRUNE_REASON, "pruned"))] += 1
    return {
        "study": study.study_name,
        "trials": sum(counts.values()),
        "complete": counts.get("complete", 0),
        "pruned": counts.get("pruned", 0),
        "fail": counts.get("fail", 0),
        "running": counts.get("running", 0),
        "duplicates": duplicates,
        "failures": dict(failures.most_common()),
        "prunes": dict(pruned.most_common()),
    }


def chance_warnings(ranked: Sequence[Mapping[str, Any]]) -> list[str]:
    """Scores that mean nothing on this study: kernel-regression accuracy (``pntk_krr``) whose
    median over the candidates is at or below chance, 1 / classes."""
    krr = [r.get("pntk_krr") for r in ranked]
    krr = [float(v) for v in krr if isinstance(v, (int, float)) and v == v]
    classes = next((r.get("num_classes") for r in ranked if r.get("num_classes")), None)
    if not krr or not classes:
        return []
    chance, median = 1.0 / float(classes), statistics.median(krr)
    if median > chance:
        return []
    return [
        f"pntk_krr (kernel-regression accuracy on a held-out part of the N images) has median "
        f"{median:.3f}, at or below chance ({chance:.3f} for {classes} classes): at this N it is "
        "noise, do not rank by it (raise --n-kernel, or rank by default)"
    ]


def study_info(study: optuna.Study) -> dict[str, Any]:
    """Key facts of a study for the top of a report: space, data, N, objectives, trial counts."""
    config = study_config(study)
    s = summary(study)
    return {
        "study": study.study_name,
        "space": config.get("space", ""),
        "data": config.get("data", ""),
        "N": config.get("n_kernel", ""),
        "objectives": ", ".join(config.get("objectives", [])),
        "trials": f"{s['trials']} ({s['complete']} complete, {s['pruned']} pruned, {s['fail']} failed)",
        **_measured_with(study),
    }


def _measured_with(study: optuna.Study) -> dict[str, str]:
    """``{"measured": "latency_ms at batch 1 … on cpu, 1 torch thread …"}`` when the study holds
    measured scores (those of its latest trial that has them), else ``{}``."""
    for t in reversed(study.get_trials(deepcopy=False)):
        hw = t.user_attrs.get(record.HARDWARE)
        if not isinstance(hw, Mapping):
            continue
        batches = {
            "latency_ms": "batch 1",
            "latency_batch_ms": f"batch {hw.get('latency_batch')}",
            "train_memory_mb": f"batch {hw.get('memory_batch')}, {hw.get('memory')}",
        }
        what = [f"{name} at {b}" for name, b in batches.items() if name in t.user_attrs]
        threads = hw.get("threads")
        return {
            "measured": f"{', '.join(what)}; on {hw.get('device')}, {threads} torch "
            f"thread{'s' * (threads != 1)}, {hw.get('latency_clock', 'wall')} clock"
        }
    return {}


def check_rank(rank: int) -> None:
    """``--rank`` is 1 or more."""
    if rank < 1:
        raise NasntkError(f"--rank must be at least 1, got {rank}")


def export_row(study: optuna.Study, rank: int) -> dict[str, Any]:
    """The row of leaderboard rank ``rank`` as JSON-safe data, with its study's name."""
    check_rank(rank)
    ranked = rows(study)
    if rank > len(ranked):
        raise NasntkError(
            f"study {study.study_name!r} has {len(ranked)} ranked candidates, no rank {rank}"
        )
    row = _plain(dict(ranked[rank - 1]))
    row["study"] = study.study_name
    return row


# Rendering
# ---------------------------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    """JSON-safe values: non-finite floats become None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


#: Longest text a table cell shows before it is shortened in the middle (``arch`` folds).
_CELL_TEXT = 40


def table(
    rows: Sequence[Mapping[str, Any]],
    *,
    columns: Sequence[str] | str | None = None,
    title: str | None = None,
    objectives: Sequence[str] = (),
    width: int | None = None,
) -> Any:
    """A :class:`rich.table.Table` of the rows.

    ``columns``: names, ``"all"`` or ``None``: the first columns (rank, trial, arch, the
    ``objectives``, params, FLOPs) and as many others as fit ``width`` (default: all); the
    columns left out are named in the caption (:func:`nasntk.columns.choose`). ``arch`` folds;
    other long text is shortened in the middle.
    """
    from rich.table import Table

    from nasntk.columns import choose, middle

    requested = list(columns) if columns is not None and not isinstance(columns, str) else columns
    choice = choose(rows, requested, objectives=objectives, width=width)
    cols = choice.columns or ["rank", "trial", "arch"]
    caption = None
    if choice.left_out and requested is None:  # named columns are the user's choice
        shown = ", ".join(choice.left_out[:4]) + (", …" if len(choice.left_out) > 4 else "")
        caption = f"+{len(choice.left_out)} more columns ({shown}): --columns all, or --columns a,b"
    tbl = Table(title=title, show_lines=False, header_style="bold", caption=caption)
    for c in cols:
        if c == "arch":
            tbl.add_column(c, justify="left", overflow="fold", min_width=16)
        else:
            tbl.add_column(c, justify="right", no_wrap=True)
    for r in rows:
        cells = [format_value(r.get(c)) for c in cols]
        tbl.add_row(
            *[v if c == "arch" else middle(v, _CELL_TEXT) for c, v in zip(cols, cells, strict=True)]
        )
    return tbl


def _markdown(rows: Sequence[Mapping[str, Any]], cols: Sequence[str]) -> str:
    cells = ([format_value(r.get(c)) for c in cols] for r in rows)
    return "\n".join(markdown_table(list(cols), cells)) + "\n"


def _csv(rows: Sequence[Mapping[str, Any]], cols: Sequence[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(cols), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow(
            {
                c: json.dumps(r[c], sort_keys=True)
                if isinstance(r.get(c), (dict, list))
                else r.get(c)
                for c in cols
            }
        )
    return buf.getvalue()


def render(
    rows: Sequence[Mapping[str, Any]],
    fmt: str = "table",
    *,
    title: str | None = None,
    images: Mapping[str, bytes] | None = None,
    info: Mapping[str, Any] | None = None,
    columns: Sequence[str] | str | None = None,
    objectives: Sequence[str] = (),
    width: int = 160,
    directions: Mapping[str, str] | None = None,
    cells: Sequence[str] = (),
) -> str:
    """Rows as text: ``table`` (rich, plain text), ``csv``, ``json``, ``markdown`` or ``html``.

    ``columns`` (names or ``"all"``) picks the columns of every format. Without it the text
    table shows what fits ``width`` (:func:`nasntk.columns.choose`), markdown and HTML every
    display column, CSV and JSON every field (spec and space options as JSON; JSON writes
    non-finite numbers as ``null``). HTML is one self-contained page
    (:func:`nasntk.report_html.page`): ``info`` facts, ``images`` (PNG bytes), ``cells`` (SVG
    drawings of the rank-1 cell), then a sortable, filterable table whose score headers carry
    their ``directions``; without ``columns`` it shows the first columns of a terminal table
    (rank, trial, arch, the ``objectives``, params, FLOPs; :func:`nasntk.columns.first`) and
    puts the others behind a "more columns" toggle. ``objectives`` default to the column after
    ``arch``, where :func:`rows` puts the first one.
    """
    from nasntk.columns import choose, parse

    requested = parse(columns) if columns is not None else None
    if fmt == "table":
        from rich.console import Console

        console = Console(file=io.StringIO(), width=width, color_system=None, record=True)
        console.print(
            table(rows, columns=requested, title=title, objectives=objectives, width=width)
        )
        return console.export_text()
    if fmt != "md":
        check_format(fmt)
    cols = choose(rows, requested, display=fmt not in ("csv", "json")).columns
    cols = cols or ["rank", "trial", "arch"]
    if fmt == "csv":
        return _csv(rows, cols)
    if fmt == "json":
        return json.dumps([_plain({c: r.get(c) for c in cols}) for r in rows], indent=2) + "\n"
    if fmt in ("markdown", "md"):
        return _markdown(rows, cols)
    from nasntk.columns import first
    from nasntk.report_html import page

    primary = None if requested is not None else first(cols, objectives or _objectives(cols))
    return page(rows, cols, title=title, info=info, images=images, directions=directions,
                cells=cells, primary=primary)  # fmt: skip


def _objectives(cols: Sequence[str]) -> list[str]:
    """Without named objectives, the column after ``trial`` / ``arch`` / ``pareto_rank``: where
    :func:`rows` puts the first objective."""
    rest = [c for c in cols if c not in ("rank", "pareto_rank", "trial", "arch")]
    return rest[:1]
