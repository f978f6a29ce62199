"""How values look in tables (terminal, markdown, HTML), and markdown tables themselves.

One formatting for every table nasntk writes: leaderboards, validation reports, the CLI's.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["format_compact", "format_fixed", "format_value", "markdown_table"]


def format_value(value: Any, *, bools: tuple[str, str] | None = None) -> str:
    """Human formatting: ints with separators, floats with 4 significant digits.

    None is empty; non-finite floats are ``nan`` / ``inf`` / ``-inf``; dicts and lists are JSON;
    booleans are ``True`` / ``False``, or ``bools`` (e.g. ``("yes", "no")``).
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value) if bools is None else bools[0 if value else 1]
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def format_compact(value: Any) -> str:
    """:func:`format_value` made narrow for a dense table: integers from 10,000 up with three
    significant digits and an SI suffix (``230k``, ``3.79M``), exponents without ``+`` and
    leading zeros (``1.772e5``); everything else as :func:`format_value`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return format_value(value)
    if isinstance(value, int):
        if abs(value) < 10_000:
            return format_value(value)
        scaled, power = float(value) / 1000.0, 0
        while abs(scaled) >= 999.5 and power < 4:
            scaled, power = scaled / 1000.0, power + 1
        if abs(scaled) >= 999.5:  # beyond peta: an exponent
            return format_compact(float(value))
        return f"{scaled:.3g}{'kMGTP'[power]}"
    text = format_value(value)
    mantissa, e, exponent = text.partition("e")
    return f"{mantissa}e{int(exponent)}" if e else text


def format_fixed(value: Any, digits: int = 3) -> str:
    """Numbers with ``digits`` decimals (``nan``, ``inf``, ``-inf`` as words); others as text."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(f) or math.isinf(f):
        return str(f)
    return f"{f:.{digits}f}"


def markdown_table(columns: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """The lines of a markdown table of already formatted cells (``|`` escaped in cells)."""

    def line(cells: Iterable[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return [line(columns), "|" + "|".join("---" for _ in columns) + "|", *map(line, rows)]
