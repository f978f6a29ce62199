"""Where the tests find ``../shared`` (the dev splits, CIFAR-10), and reading a dev CSV.

``$NASNTK_SHARED`` wins; else the ``shared/`` folder beside the checkout. A test that needs a
file that is absent skips cleanly (a user's machine has no ``../shared``).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

SHARED = Path(
    os.environ.get("NASNTK_SHARED", Path(__file__).resolve().parents[1].parent / "shared")
)


def dev_csv(benchmark: str) -> Path:
    """The dev split of ``benchmark`` (``nb201``, ``nb101`` or ``nb301``)."""
    return SHARED / "data" / benchmark / f"{benchmark}_dev.csv"


def dev_rows(benchmark: str) -> list[dict[str, str]]:
    """The rows of a dev split, or a clean skip when the file is absent."""
    path = dev_csv(benchmark)
    if not path.exists():
        pytest.skip(f"{path} not present (set NASNTK_SHARED)")
    with open(path, newline="") as f:
        return list(csv.DictReader(f))
