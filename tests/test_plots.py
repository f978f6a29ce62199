"""Tests of nasntk.plots: the figures of a study as PNG files."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from search_toy_space import TINY, ToySpace

from nasntk.errors import NasntkError
from nasntk.plots import figures, save
from nasntk.study import search


def test_plots_are_png_files(db: str, tmp_path: Path) -> None:
    study = search(ToySpace(), trials=4, objective="pntk_krr,params:min", storage=db, **TINY)
    paths = save(study, tmp_path / "figs")
    assert sorted(p.name for p in paths) == [
        "history.png",
        "pareto_front.png",
        "score_distributions.png",
        "score_vs_params.png",
    ]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_size_front_is_the_non_dominated_set() -> None:
    from nasntk.plots import _size_front

    xs = [10.0, 20.0, 30.0, 15.0, 40.0]
    ys = [1.0, 3.0, 2.0, 0.5, 4.0]
    # by size: 10 (1.0) kept, 15 (0.5) beaten by 10, 20 (3.0) kept, 30 (2.0) beaten, 40 kept
    assert _size_front(xs, ys, maximize=True) == [0, 1, 4]
    assert _size_front(xs, [-y for y in ys], maximize=False) == [0, 1, 4]


def test_a_study_without_completed_trials_has_no_figures() -> None:
    with pytest.raises(NasntkError, match="no completed trials to plot"):
        figures(optuna.create_study(study_name="empty"))
