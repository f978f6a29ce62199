"""Optuna's logging and warnings silenced: nothing below the CLI prints."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import optuna


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Silence Optuna's per-trial logging and its warnings while searching."""
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module="optuna")
        try:
            yield
        finally:
            optuna.logging.set_verbosity(level)


@contextlib.contextmanager
def no_warnings() -> Iterator[None]:
    """Every warning ignored (Optuna's experimental-feature and deprecation notices)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
