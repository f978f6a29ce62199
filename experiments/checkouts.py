"""An earlier commit of nasntk, unpacked so that it runs beside this checkout (same interpreter).

``git archive`` of the revision into a folder laid out as the installed package (``nasntk/cli``
and ``nasntk/search_spaces`` link to the top-level ``cli/`` and ``search_spaces/``); a command
runs it with ``PYTHONPATH`` set to that folder (:func:`env`) from a working folder outside the
checkout, so that the editable install of this checkout is not picked up instead.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def unpack(rev: str, dest: Path) -> Path:
    """The tree of ``rev`` in ``dest``, laid out as the installed package; returns ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    (dest / "nasntk" / "cli").symlink_to(dest / "cli")
    (dest / "nasntk" / "search_spaces").symlink_to(dest / "search_spaces")
    return dest


def env(pythonpath: Path | None, **extra: str) -> dict[str, str]:
    """The environment of a timed command: one BLAS/OpenMP thread, a wide terminal, and the
    unpacked revision first on ``PYTHONPATH`` (``None``: this checkout, as installed)."""
    out = dict(os.environ, OMP_NUM_THREADS="1", COLUMNS="160", **extra)
    if pythonpath is not None:
        out["PYTHONPATH"] = str(pythonpath)
    return out
