"""nasntk: training-free neural architecture search from the empirical NTK at initialization.

The public Python API (the CLI is a thin layer over it)::

    from nasntk import pntk, entk, kernel      # kernels of any torch.nn.Module
    from nasntk import pntk_fn                 # a kernel function: set up once, many batches
    from nasntk import score, load_data        # named scores of a model or a spec; data sources
    from nasntk import search, build           # Optuna search; rebuild a leaderboard row
    from nasntk import benchmark, validate     # rank quality against ground truth / short training
    from nasntk import refine                  # re-rank a study's top-K by a short training run

Every name is imported on first use. ``search`` and ``build`` live in the package ``nasntk.study``, ``validate`` in the module
``nasntk.validation``, ``benchmark`` in ``nasntk.evaluation``: ``nasntk.search``,
``nasntk.validate`` and ``nasntk.benchmark`` are only the functions. Ranked rows of a study:
``nasntk.leaderboard.rows(study)``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from nasntk.errors import NasntkError

#: Public name → the module that defines it, imported on first use (PEP 562): ``import nasntk``
#: and the CLI's ``--help`` / ``leaderboard`` / ``studies`` stay free of torch and timm.
_LAZY = {
    "pntk": "nasntk.kernels",
    "entk": "nasntk.kernels",
    "kernel": "nasntk.kernels",
    "pntk_fn": "nasntk.kernels",
    "load_data": "nasntk.data",
    "score": "nasntk.proxies",
    "get_space": "nasntk.search_spaces",
    "benchmark": "nasntk.evaluation",
    "search": "nasntk.study",
    "build": "nasntk.study",
    "validate": "nasntk.validation",
    "refine": "nasntk.refine",
}
_RENAMED = {"load_data": "load", "get_space": "get"}

__all__ = [
    "NasntkError",
    "benchmark",
    "build",
    "entk",
    "get_space",
    "kernel",
    "load_data",
    "pntk",
    "pntk_fn",
    "refine",
    "score",
    "search",
    "validate",
]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from nasntk.data import load as load_data
    from nasntk.evaluation import benchmark
    from nasntk.kernels import entk, kernel, pntk, pntk_fn
    from nasntk.proxies import score
    from nasntk.refine import refine
    from nasntk.search_spaces import get as get_space
    from nasntk.study import build, search
    from nasntk.validation import validate


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'nasntk' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), _RENAMED.get(name, name))
    globals()[name] = value  # cache: later lookups do not come back here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
