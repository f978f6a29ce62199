"""nasntk: training-free neural architecture search from the empirical NTK at initialization.

The public Python API (the CLI is a thin layer over it)::

    from nasntk import pntk, entk, kernel      # kernels of any torch.nn.Module
    from nasntk import score, load_data        # named scores of a model or a spec; data sources
    from nasntk import search, build           # Optuna search; rebuild a leaderboard row
    from nasntk import benchmark, validate     # rank quality against ground truth / short training

``search`` and ``build`` live in the package ``nasntk.study``, ``validate`` in the module
``nasntk.validation``, ``benchmark`` in ``nasntk.evaluation``: ``nasntk.search``,
``nasntk.validate`` and ``nasntk.benchmark`` are only the functions. Ranked rows of a study:
``nasntk.leaderboard.rows(study)``.
"""

from __future__ import annotations

__version__ = "0.1.0"

from nasntk.errors import NasntkError  # noqa: I001  (order matters: see the docstring)
from nasntk.kernels import entk, kernel, pntk
from nasntk.data import load as load_data
from nasntk.proxies import score
from nasntk.search_spaces import get as get_space
from nasntk.evaluation import benchmark
from nasntk.study import build, search
from nasntk.validation import validate

__all__ = [
    "NasntkError",
    "benchmark",
    "build",
    "entk",
    "get_space",
    "kernel",
    "load_data",
    "pntk",
    "score",
    "search",
    "validate",
]
