"""nasntk: training-free neural architecture search from the empirical NTK at initialization.

The public Python API (the CLI is a thin layer over it)::

    from nasntk import pntk, entk, kernel      # kernels of any torch.nn.Module
    from nasntk import score                   # named scores of a model or a spec
    from nasntk import search, build           # Optuna search; rebuild a leaderboard row
    from nasntk import benchmark, validate     # rank quality against ground truth / short training

Attributes are imported lazily so that ``import nasntk`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY: dict[str, str] = {
    "NasntkError": "nasntk.errors",
    "pntk": "nasntk.kernels",
    "entk": "nasntk.kernels",
    "kernel": "nasntk.kernels",
    "load_data": "nasntk.data:load",
    "score": "nasntk.proxies",
    "benchmark": "nasntk.benchmark",
    "search": "nasntk.search",
    "build": "nasntk.search",
    "leaderboard": "nasntk.leaderboard:rows",
    "validate": "nasntk.validate",
    "get_space": "nasntk.search_spaces:get",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'nasntk' has no attribute {name!r}")
    module_name, _, attr = target.partition(":")
    value = getattr(importlib.import_module(module_name), attr or name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
