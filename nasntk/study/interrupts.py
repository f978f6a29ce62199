"""Ctrl-C and SIGTERM during a search: the only code that touches signals.

A search stops cleanly on Ctrl-C (SIGINT) or SIGTERM: completed trials are kept, the running ones
are marked FAIL ``interrupted`` and retried by the next run, and :class:`SearchInterrupted` (a
KeyboardInterrupt holding the study) reaches the caller.

The signal is raised only inside a trial's own work, never inside Optuna's bookkeeping: a
KeyboardInterrupt that lands while Optuna writes a finished trial to the storage escapes
Optuna's clean-up (it catches ``Exception`` only) as an UnboundLocalError. So while a study
runs (:meth:`Interrupts.deferred`), a signal is raised at once inside the objective
(:meth:`Interrupts.inside_trial`), and outside it is remembered and raised as soon as the next
trial starts, or when ``optimize`` returns. Worker processes ignore SIGINT (the terminal sends it
to the whole process group) and take SIGTERM from the parent, sent once, as their Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

import optuna

__all__ = ["INTERRUPTS", "SearchInterrupted", "as_worker_process", "interrupt", "sigterm_as_ctrl_c"]


class SearchInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a search; completed trials are kept, ``.study`` holds them."""

    def __init__(self, study: optuna.Study) -> None:
        super().__init__("search interrupted")
        self.study = study


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


class Interrupts:
    """Where a Ctrl-C / SIGTERM is raised while a study runs (see the module docstring)."""

    def __init__(self) -> None:
        self.inside = False
        self.pending = False

    def _handler(self, signum: int, frame: Any) -> None:
        if self.inside:
            self.inside = False
            raise KeyboardInterrupt
        self.pending = True

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """While a study runs: signals are raised inside trials, remembered outside them."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        wanted = {
            s: p for s, p in previous.items() if p not in (signal.SIG_IGN, signal.SIG_DFL, None)
        }
        self.pending = False
        for sig in wanted:
            signal.signal(sig, self._handler)
        try:
            yield
        finally:
            for sig, prev in wanted.items():
                signal.signal(sig, prev)
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt

    def is_pending(self) -> bool:
        """Whether a signal arrived outside a trial and waits to be raised."""
        return self.pending

    @contextlib.contextmanager
    def inside_trial(self) -> Iterator[None]:
        """A trial's own work: a signal is raised here at once (a remembered one first)."""
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt
        self.inside = True
        try:
            yield
        finally:
            self.inside = False


#: The one instance (signal handlers are per process).
INTERRUPTS = Interrupts()


def as_worker_process() -> None:
    """In a worker process: ignore SIGINT; SIGTERM (sent once by the parent) means Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)


def interrupt(pid: int) -> None:
    """Ask a worker process to stop as on Ctrl-C (it may already be gone)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)


@contextlib.contextmanager
def sigterm_as_ctrl_c() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt in this process for the duration (``nasntk search``)."""
    previous = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
