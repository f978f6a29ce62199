"""Figures of a study as PNG bytes: optimisation history, score vs parameters, Pareto front.

    figures(study)       -> {"history": png, "score_vs_params": png, ["pareto_front": png]}
    save(study, out_dir) -> [paths of the PNG files written]

The history and the Pareto front are Optuna's own matplotlib plots
(``optuna.visualization.matplotlib.plot_optimization_history`` / ``plot_pareto_front``); the
score-vs-parameters scatter is drawn here: one panel per objective, x = trainable parameters
(log scale), y = the objective, best-ranked candidates highlighted. Nothing is shown on screen.
"""

from __future__ import annotations

import io
import math
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import TrialState

from nasntk.errors import NasntkError
from nasntk.study import record
from nasntk.study.record import objective_names

__all__ = ["figures", "save"]


def _png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _history(study: optuna.Study, names: list[str]) -> bytes:
    import matplotlib.pyplot as plt
    from optuna.visualization.matplotlib import plot_optimization_history

    if len(names) == 1:
        ax = plot_optimization_history(study, target_name=names[0])
        return _png(ax.figure)
    fig, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 4), squeeze=False)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    for i, (name, ax) in enumerate(zip(names, axes[0], strict=True)):
        xs = [t.number for t in complete]
        ys = [t.values[i] for t in complete]
        ax.scatter(xs, ys, s=12, alpha=0.7, label=name)
        best, run = [], None
        maximize = study.directions[i] == StudyDirection.MAXIMIZE
        for y in ys:
            run = y if run is None else (max(run, y) if maximize else min(run, y))
            best.append(run)
        ax.plot(xs, best, color="tab:red", label=f"best {name}")
        ax.set_xlabel("trial")
        ax.set_ylabel(name)
        ax.set_title(f"Optimization history: {name}")
        ax.legend(loc="best", fontsize=8)
    return _png(fig)


def _score_vs_params(study: optuna.Study, names: list[str]) -> bytes:
    import matplotlib.pyplot as plt

    complete = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not record.is_duplicate(t) and t.user_attrs.get(record.PARAMS) is not None
    ]
    fig, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 4), squeeze=False)
    for i, (name, ax) in enumerate(zip(names, axes[0], strict=True)):
        xs = [float(t.user_attrs[record.PARAMS]) for t in complete]
        ys = [t.values[i] for t in complete]
        maximize = study.directions[i] == StudyDirection.MAXIMIZE
        order = sorted(range(len(ys)), key=lambda j: -ys[j] if maximize else ys[j])
        top = set(order[: max(1, min(10, len(order) // 10 or 1))])
        ax.scatter(
            [x for j, x in enumerate(xs) if j not in top],
            [y for j, y in enumerate(ys) if j not in top],
            s=14,
            alpha=0.6,
            label="candidates",
        )
        ax.scatter(
            [xs[j] for j in top],
            [ys[j] for j in top],
            s=30,
            color="tab:red",
            label=f"top {len(top)}",
        )
        front = _size_front(xs, ys, maximize)
        if len(front) > 1:
            ax.step([xs[j] for j in front], [ys[j] for j in front], where="post",
                    color="tab:green", lw=1.2, label="Pareto front (score vs size)")  # fmt: skip
        if xs and min(xs) > 0:
            ax.set_xscale("log")
        ax.set_xlabel("trainable parameters")
        ax.set_ylabel(f"{name} ({'higher' if maximize else 'lower'} is better)")
        ax.set_title(f"{name} vs parameters")
        ax.legend(loc="best", fontsize=8)
    return _png(fig)


def _size_front(xs: list[float], ys: list[float], maximize: bool) -> list[int]:
    """Indices of the candidates no other beats on both size (fewer parameters) and score,
    by increasing size."""
    sign = 1.0 if maximize else -1.0
    order = sorted(range(len(xs)), key=lambda j: (xs[j], -sign * ys[j]))
    front, best = [], -math.inf
    for j in order:
        if sign * ys[j] > best:
            front.append(j)
            best = sign * ys[j]
    return front


def _distributions(study: optuna.Study, names: list[str]) -> bytes:
    """Histogram of each objective over the distinct completed candidates."""
    import matplotlib.pyplot as plt

    complete = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not record.is_duplicate(t)
    ]
    fig, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 3.4), squeeze=False)
    for i, (name, ax) in enumerate(zip(names, axes[0], strict=True)):
        vals = [t.values[i] for t in complete if math.isfinite(t.values[i])]
        ax.hist(vals, bins=min(40, max(5, len(vals) // 4)), color="tab:blue", alpha=0.8)
        ax.set_xlabel(name)
        ax.set_ylabel("candidates")
        ax.set_title(f"distribution of {name} ({len(vals)} candidates)")
    return _png(fig)


def _pareto(study: optuna.Study, names: list[str]) -> bytes:
    from optuna.visualization.matplotlib import plot_pareto_front

    ax = plot_pareto_front(study, target_names=names)
    return _png(ax.figure)


def figures(study: optuna.Study) -> dict[str, bytes]:
    """PNG bytes of the study's figures (the Pareto front only for 2 or 3 objectives)."""
    import matplotlib

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        raise NasntkError(f"study {study.study_name!r} has no completed trials to plot")
    names = objective_names(study)
    out: dict[str, bytes] = {}
    with warnings.catch_warnings(), matplotlib.rc_context({"figure.max_open_warning": 0}):
        warnings.simplefilter("ignore")
        out["history"] = _history(study, names)
        out["score_vs_params"] = _score_vs_params(study, names)
        out["score_distributions"] = _distributions(study, names)
        if len(names) in (2, 3):
            out["pareto_front"] = _pareto(study, names)
    return out


def save(study: optuna.Study, out_dir: str | Path) -> list[Path]:
    """Write :func:`figures` as ``OUT_DIR/<name>.png`` (the folder is created); the paths."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NasntkError(f"cannot create folder {str(out)!r}: {exc.strerror}") from None
    paths = []
    for name, png in figures(study).items():
        path = out / f"{name}.png"
        path.write_bytes(png)
        paths.append(path)
    return paths
