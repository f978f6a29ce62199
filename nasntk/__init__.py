"""nasntk: training-free neural architecture search from the empirical NTK at initialization.

The public Python API (the CLI is a thin layer over it)::

    from nasntk import pntk, entk, kernel      # kernels of any torch.nn.Module
    from nasntk import score, load_data        # named scores of a model or a spec; data sources
    from nasntk import search, build           # Optuna search; rebuild a leaderboard row
    from nasntk import benchmark, validate     # rank quality against ground truth / short training

The functions are bound eagerly: several share their name with the submodule that defines them
(``nasntk.search``, ``nasntk.validate``, ``nasntk.benchmark``), and binding the function after importing the
submodule is what makes ``nasntk.search`` the function whatever was imported first. Ranked rows of a study: ``nasntk.leaderboard.rows(study)``.
"""

from __future__ import annotations

__version__ = "0.1.0"

from nasntk.errors import NasntkError  # noqa: I001  (order matters: see the docstring)
from nasntk.kernels import entk, kernel, pntk
from nasntk.data import load as load_data
from nasntk.proxies import score
from nasntk.search_spaces import get as get_space
from nasntk.benchmark import benchmark
from nasntk.search import build, search
from nasntk.validate import validate

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
