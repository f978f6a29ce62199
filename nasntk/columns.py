"""Which columns a leaderboard shows: the ones asked for, all of them, or what fits the width.

Pure functions over leaderboard rows (:func:`nasntk.leaderboard.rows`). ``--columns`` is a
comma-separated list of column names, or ``all``. Without it, a terminal table starts from the
columns a user reads first — rank (and Pareto rank), trial, arch, the objectives, params, FLOPs —
and adds the others in their leaderboard order while the table still fits the terminal's width;
the ones left out are named under the table, never dropped silently. Files (markdown, HTML, CSV,
JSON) keep every column unless ``--columns`` says otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from nasntk.errors import NasntkError
from nasntk.tables import format_value

__all__ = ["ARCH_MIN_WIDTH", "Choice", "choose", "fields", "first", "middle", "parse"]

#: Columns a table never shows (they are in CSV / JSON / export).
HIDDEN = {
    "spec", "space", "space_options", "data", "num_classes", "in_chans", "img_size", "hardware",
}  # fmt: skip
#: The narrowest the folded ``arch`` column gets before other columns give way.
ARCH_MIN_WIDTH = 24
#: Characters a cell needs beyond its text (borders and padding of a rich table).
_PAD = 3


class Choice(NamedTuple):
    """The columns to show, and the available ones not shown."""

    columns: list[str]
    left_out: list[str]


def fields(rows: Sequence[Mapping[str, Any]], *, display: bool = True) -> list[str]:
    """Every column of ``rows`` in first-seen order (``display``: without :data:`HIDDEN`)."""
    cols: list[str] = []
    for r in rows:
        for k in r:
            if k not in cols and not (display and k in HIDDEN):
                cols.append(k)
    return cols


def first(available: Sequence[str], objectives: Sequence[str] = ()) -> list[str]:
    """The columns a user reads first, in ``available``'s order: rank (and Pareto rank), trial,
    arch, the ``objectives``, params, FLOPs — what a terminal table starts from and what an HTML
    table shows before its "more columns" toggle."""
    wanted = {"rank", "pareto_rank", "trial", "arch", *objectives, "params", "flops"}
    return [c for c in available if c in wanted]


def parse(text: str | Sequence[str] | None) -> list[str] | str | None:
    """``None`` (the default choice), ``"all"``, or the list of names in ``--columns a,b``."""
    if text is None:
        return None
    items = [text] if isinstance(text, str) else list(text)
    names = [n.strip() for item in items for n in str(item).split(",") if n.strip()]
    if not names:
        raise NasntkError("--columns needs column names (comma-separated) or 'all'")
    if names == ["all"]:
        return "all"
    return list(dict.fromkeys(names))


def middle(text: str, width: int) -> str:
    """``text`` shortened to ``width`` characters by an ellipsis in the middle (start and end
    are what tell two long names apart)."""
    if len(text) <= width or width < 5:
        return text
    keep = width - 1
    return text[: (keep + 1) // 2] + "…" + text[len(text) - keep // 2 :]


def _width(rows: Sequence[Mapping[str, Any]], col: str) -> int:
    if col == "arch":
        return ARCH_MIN_WIDTH + _PAD
    cells = [len(format_value(r.get(col))) for r in rows]
    return max([len(col), *cells]) + _PAD


def choose(
    rows: Sequence[Mapping[str, Any]],
    requested: list[str] | str | None = None,
    *,
    objectives: Sequence[str] = (),
    width: int | None = None,
    display: bool = True,
) -> Choice:
    """The columns to show (see the module docstring).

    ``requested``: :func:`parse`'s result. ``width``: the terminal's width; ``None`` (a file)
    keeps every column. ``display``: leave out :data:`HIDDEN` unless asked for by name.
    Unknown names raise :class:`NasntkError` naming the available ones.
    """
    everything = fields(rows, display=False)
    available = fields(rows, display=display)
    if requested == "all":
        return Choice(available, [])
    if isinstance(requested, list):
        unknown = [c for c in requested if c not in everything]
        if unknown and rows:
            raise NasntkError(
                f"unknown column(s) {', '.join(unknown)}; available: {', '.join(everything)}"
            )
        return Choice(requested, [c for c in available if c not in requested])
    if width is None:
        return Choice(available, [])
    shown = first(available, objectives)
    used = 4 + sum(_width(rows, c) for c in shown)
    left_out = []
    for c in available:
        if c in shown:
            continue
        w = _width(rows, c)
        if used + w <= width:
            shown.append(c)
            used += w
        else:
            left_out.append(c)
    order = {c: i for i, c in enumerate(available)}
    shown.sort(key=lambda c: order[c])
    return Choice(shown, left_out)
