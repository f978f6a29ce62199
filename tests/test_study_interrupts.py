"""Tests of nasntk.study.interrupts: where a Ctrl-C is raised while a study runs."""

from __future__ import annotations

import os
import signal

import pytest

from nasntk.study.interrupts import Interrupts, sigterm_as_ctrl_c


@pytest.fixture(autouse=True)
def ctrl_c_raises():
    """Python's own SIGINT handler (a run started in the background inherits SIGINT ignored)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_a_signal_inside_a_trial_is_raised_at_once() -> None:
    interrupts = Interrupts()
    ran = []
    with pytest.raises(KeyboardInterrupt), interrupts.deferred():
        with interrupts.inside_trial():
            os.kill(os.getpid(), signal.SIGINT)
            ran.append("after the signal")  # never reached
    assert ran == []


def test_a_signal_outside_trials_waits_for_the_next_trial() -> None:
    interrupts = Interrupts()
    steps = []
    with pytest.raises(KeyboardInterrupt), interrupts.deferred():
        os.kill(os.getpid(), signal.SIGINT)  # Optuna's bookkeeping: not interrupted
        steps.append("bookkeeping finished")
        with interrupts.inside_trial():
            steps.append("next trial ran")  # never reached
    assert steps == ["bookkeeping finished"]


def test_a_signal_after_the_last_trial_is_raised_when_the_study_ends() -> None:
    interrupts = Interrupts()
    with pytest.raises(KeyboardInterrupt), interrupts.deferred():
        os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_sigterm_is_ctrl_c_for_the_command() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt), sigterm_as_ctrl_c():
        os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) == before
