"""Ground truth of a benchmark: the cells of a truth CSV, their accuracies and the anchors.

A truth CSV names each cell by ``arch`` (NAS-Bench-201's cell string), ``genotype`` (DARTS /
NAS-Bench-301) or ``matrix`` + ``ops`` (NAS-Bench-101, joined as the nb101 space's text form), has
one or more ``*_acc`` columns, and may carry *anchors*: published per-cell values of the same
cells to compare with, like for like (NASLib's ``naslib_*`` zero-cost scores, the benchmark's
``params_m`` / ``flops_m``).
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from nasntk.errors import NasntkError


def as_float(v: Any) -> float:
    """float(v), or nan when v is empty or not a number (CSV cells)."""
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


# ------------------------------------------------------------------------------------------------
# Ground truth
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Truth:
    """Cells of a ground-truth CSV: ``archs[i]`` has accuracy ``columns[name][i]``.

    ``anchors`` holds published per-cell values to compare with, like for like: every
    ``naslib_*`` column (NASLib's own zero-cost scores of the same cells) and the benchmark's
    ``params_m`` / ``flops_m`` (a blank or non-numeric value is nan).
    """

    archs: tuple[str, ...]
    columns: dict[str, np.ndarray]
    path: str = ""
    anchors: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.archs)


#: Columns of a truth CSV read as anchors besides ``naslib_*``.
ANCHOR_COLUMNS = ("params_m", "flops_m")


def _arch_column(header: Sequence[str], path: Path) -> Callable[[Mapping[str, str]], str]:
    """How a row names its cell: ``arch`` (NB201 string), ``genotype`` (DARTS / NB301) or
    ``matrix`` + ``ops`` (NB101, joined as the nb101 space's text form ``matrix|ops``)."""
    if "arch" in header:
        return lambda r: r["arch"].strip()
    if "genotype" in header:
        return lambda r: r["genotype"].strip()
    if "matrix" in header and "ops" in header:
        return lambda r: f"{r['matrix'].strip()}|{r['ops'].strip()}"
    raise NasntkError(
        f"truth CSV {path} has no 'arch' column (nor 'genotype', nor 'matrix' + 'ops'); "
        f"columns: {', '.join(header)}"
    )


def _anchor(rows: Sequence[Mapping[str, str]], col: str) -> np.ndarray:
    return np.array([as_float(r.get(col)) for r in rows], dtype=np.float64)


def read_truth(path: Union[str, os.PathLike], *, limit: Optional[int] = None) -> Truth:
    """Read a truth CSV: the cell (``arch``, ``genotype`` or ``matrix`` + ``ops``), one or more
    ``*_acc`` columns (numbers), and the anchors (``naslib_*``, ``params_m``, ``flops_m``).

    ``limit`` keeps the first ``limit`` rows (the dev CSVs are already random samples).
    """
    path = Path(path)
    if not path.is_file():
        raise NasntkError(f"truth CSV not found: {path}")
    if limit is not None and limit < 2:
        raise NasntkError(
            f"--limit must be at least 2 (rank correlation needs two cells), got {limit}"
        )
    try:
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            header = list(reader.fieldnames or [])
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise NasntkError(f"cannot read truth CSV {path}: {exc}") from None
    arch_of = _arch_column(header, path)
    acc_cols = [c for c in header if c.endswith("_acc")]
    if not acc_cols:
        raise NasntkError(f"truth CSV {path} has no accuracy column ending in '_acc'")
    if limit is not None:
        rows = rows[:limit]
    if len(rows) < 2:
        raise NasntkError(f"truth CSV {path} has fewer than 2 rows")
    columns: dict[str, np.ndarray] = {}
    for col in acc_cols:
        try:
            columns[col] = np.array([float(r[col]) for r in rows], dtype=np.float64)
        except (TypeError, ValueError):
            raise NasntkError(f"truth CSV {path}: column {col!r} has a non-numeric value") from None
    anchors = {
        c: _anchor(rows, c) for c in header if c.startswith("naslib_") or c in ANCHOR_COLUMNS
    }
    return Truth(
        archs=tuple(arch_of(r) for r in rows), columns=columns, path=str(path), anchors=anchors
    )
