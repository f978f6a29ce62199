"""Does the zero-cost ranking predict trained accuracy? Short real training of chosen candidates.

:func:`validate` (``nasntk.validate``) takes the top-K candidates of a study (its leaderboard
order) plus K others drawn at random from the rest of its completed, distinct candidates, rebuilds
each untrained network, trains it with :func:`nasntk.training.train` on a seeded,
class-stratified train/validation split of the data, and measures for every score s stored on
the trials

- Kendall τ-b and Spearman ρ between the *oriented* score (negated when the score's direction
  is ``"minimize"``, so a positive value always means "the score ranks like the accuracy") and
  the reached validation accuracy (``scipy.stats`` via :mod:`nasntk.rankstats`).

The random half matters: correlations measured on the top-K alone suffer from range restriction
(every candidate is good by the score), so they understate how well the score separates good
from bad architectures.

Results are stored back in the study, one *study* user attribute per candidate and budget:
``validate:<budget>#<trial number>`` (:meth:`Budget.key`: data, N, split, epochs, seed,
optimizer, learning rate, …) holding ``{"val_acc", "train_acc", "train_loss", "seconds", …}``.
A second run with the same budget reads them instead of retraining; a different budget trains
afresh. (Study attributes, because Optuna refuses to update the attributes of a finished trial
in every storage; one key per candidate, so concurrent validations never overwrite each other.)

With ``out=DIR`` it writes ``report.md`` (budget, correlation table, candidate table),
``validation.csv`` and one scatter plot per score (``scatter_<score>.png``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional, Union

import optuna
import torch

from nasntk import training
from nasntk.errors import NasntkError, one_line

__all__ = ["ATTR_PREFIX", "Budget", "Validation", "correlate", "result_key", "select", "validate"]

#: Prefix of the study user attributes that hold validation results.
ATTR_PREFIX = "validate:"
#: Images used when ``n`` is not given: all of the source up to this many (CPU-friendly).
DEFAULT_MAX_N = 2000
#: Fewer candidate pairs than this and τ is too uncertain to read (warned about).
FEW_PAIRS = 10
#: Row fields that are not scores (everything else numeric in a leaderboard row may be one).
_NOT_SCORES = {
    "rank",
    "pareto_rank",
    "trial",
    "time_s",
    "num_classes",
    "in_chans",
    "img_size",
}

#: ``progress(phase, done, total, label)``: phase "candidate" (label: the architecture) or "step".
Progress = Callable[[str, int, int, str], None]


@dataclass(frozen=True)
class Budget:
    """Everything that determines a validation result: data, images, split and training recipe."""

    data: str
    n: int
    val_fraction: float
    train: training.TrainConfig

    def key(self) -> str:
        """The user-attribute name results are stored under, e.g. ``validate:digits|n1797|…``."""
        return f"{ATTR_PREFIX}{self.data}|n{self.n}|val{self.val_fraction:g}|{self.train.key()}"


@dataclass(frozen=True)
class Validation:
    """The result table: one row per candidate, correlations per score, files written."""

    study: str
    budget: str
    rows: list[dict[str, Any]]
    correlations: dict[str, dict[str, float]]
    files: dict[str, str] = field(default_factory=dict)
    trained: int = 0
    reused: int = 0


# ---------------------------------------------------------------------------------------------
# Pure pieces
# ---------------------------------------------------------------------------------------------
def select(
    ranked: Sequence[Mapping[str, Any]], *, top: int, random_k: int, seed: int = 0
) -> list[dict[str, Any]]:
    """The first ``top`` rows plus ``random_k`` rows drawn (seeded) from the rest, rank order.

    Each returned row is a copy with ``"role"`` set to ``"top"`` or ``"random"``.
    """
    if top < 0 or random_k < 0:
        raise NasntkError(f"--top and --random must be >= 0, got {top} and {random_k}")
    if top + random_k < 1:
        raise NasntkError("nothing to validate: ask for --top K and/or --random K of at least 1")
    head = [dict(r, role="top") for r in ranked[:top]]
    rest = list(ranked[top:])
    picked = random.Random(seed).sample(range(len(rest)), min(random_k, len(rest)))
    tail = [dict(rest[i], role="random") for i in sorted(picked)]
    return head + tail


def score_names(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Numeric columns of leaderboard rows that are scores (not ranks, timings, shapes, spreads)."""
    out: list[str] = []
    for r in rows:
        for k, v in r.items():
            if k in _NOT_SCORES or k in out or k.endswith("_std") or isinstance(v, bool):
                continue
            if isinstance(v, (int, float)):
                out.append(k)
    return out


def directions(names: Sequence[str]) -> dict[str, str]:
    """The declared direction of each score (``"maximize"`` for names the registry lacks)."""
    from nasntk import proxies

    known = set(proxies.names())
    return {n: proxies.get(n).direction if n in known else "maximize" for n in names}


def as_float(v: Any) -> float:
    """A stored number as a float (nan when missing or not a number)."""
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def correlate(
    scores: Mapping[str, Sequence[float]],
    accuracy: Sequence[float],
    directions: Optional[Mapping[str, str]] = None,
) -> dict[str, dict[str, float]]:
    """``{score: {"kendall": τ, "spearman": ρ, "n": pairs, "kendall_low", "kendall_high"}}``
    against the accuracies; ``kendall_low`` / ``kendall_high`` bound the 95 % percentile
    bootstrap CI of τ (resampling candidates; :func:`nasntk.rankstats.bootstrap_ci`).

    Pairs whose accuracy is missing (a candidate that could not be trained) are dropped. Scores
    are oriented first (``minimize`` scores negated; non-finite values rank last, as in a
    search); a constant score or accuracy gives NaN.
    """
    from nasntk.rankstats import bootstrap_ci, orient, rank_correlations

    directions = directions or {}
    acc = [as_float(a) for a in accuracy]
    keep = [i for i, a in enumerate(acc) if math.isfinite(a)]
    out: dict[str, dict[str, float]] = {}
    for name, values in scores.items():
        if len(values) != len(acc):
            raise NasntkError(
                f"score {name!r} has {len(values)} values but there are {len(acc)} accuracies"
            )
        s = orient([as_float(values[i]) for i in keep], directions.get(name, "maximize"))
        a = [acc[i] for i in keep]
        if len(keep) < 2:
            corr = {"kendall": math.nan, "spearman": math.nan}
            low = high = math.nan
        else:
            corr = rank_correlations(s, a)
            _, low, high = bootstrap_ci(s, a, n_boot=500)  # nan bounds for too few pairs
        out[name] = {**corr, "n": len(keep), "kendall_low": low, "kendall_high": high}
    return out


# ---------------------------------------------------------------------------------------------
# Study access
# ---------------------------------------------------------------------------------------------
def _open(study_or_name: Union[optuna.Study, str], storage: Optional[str]) -> optuna.Study:
    if isinstance(study_or_name, optuna.Study):
        return study_or_name
    from nasntk.study import load_study

    return load_study(storage, study_or_name)


def result_key(budget_key: str, trial_number: int) -> str:
    """The study user attribute holding the result of trial ``trial_number`` under a budget."""
    return f"{budget_key}#{int(trial_number)}"


def _stored(attrs: Mapping[str, Any], key: str) -> Optional[dict[str, Any]]:
    value = attrs.get(key)
    return dict(value) if isinstance(value, Mapping) and "val_acc" in value else None


def _budget(
    study: optuna.Study,
    *,
    data: Optional[str],
    n: Optional[int],
    val_fraction: float,
    config: training.TrainConfig,
) -> tuple[Budget, dict[str, int]]:
    """The budget and the input shape ``(num_classes, in_chans, img_size)`` to build with.

    The data defaults to the study's own; the channels and image size are the study's (so the
    trained network is the one that was scored), the classes those of the validation data.
    """
    from nasntk import data as data_mod
    from nasntk.study import study_config

    stored = study_config(study)
    source = data or stored.get("data") or "digits"
    info = data_mod.info(source)
    size = int(info["size"])
    n = min(size, DEFAULT_MAX_N) if n is None else int(n)
    if n < 2 * int(info["num_classes"]):
        raise NasntkError(
            f"--n must be at least 2 images per class ({2 * int(info['num_classes'])}), got {n}"
        )
    if n > size:
        raise NasntkError(f"data {source!r} has {size} images, fewer than --n {n}")
    shape = {
        "num_classes": int(info["num_classes"]),
        "in_chans": int(stored.get("in_chans") or info["in_chans"]),
        "img_size": int(stored.get("img_size") or info["img_size"]),
    }
    return Budget(
        data=source, n=n, val_fraction=float(val_fraction), train=config.resolved()
    ), shape


# ---------------------------------------------------------------------------------------------
# The facade
# ---------------------------------------------------------------------------------------------
def validate(
    study_or_name: Union[optuna.Study, str],
    *,
    storage: Optional[str] = None,
    top: int = 5,
    random_k: int = 5,
    epochs: int = 3,
    data: Optional[str] = None,
    n: Optional[int] = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    optimizer: str = "sgd",
    lr: Optional[float] = None,
    weight_decay: Optional[float] = None,
    batch_size: int = 64,
    augment: bool = False,
    device: str = "cpu",
    out: Optional[Union[str, Path]] = None,
    retrain: bool = False,
    progress: Optional[Progress] = None,
) -> Validation:
    """Train the top-``top`` and ``random_k`` random candidates of a study; correlate scores.

    Args:
        study_or_name: an Optuna study, or the name of one in ``storage``.
        storage: storage URL (default: the search's ``sqlite:///nasntk.db``).
        top, random_k: how many leading candidates, and how many others drawn at random
            (seeded by ``seed``) from the rest of the leaderboard.
        epochs, optimizer, lr, weight_decay, batch_size, augment, seed, device: the training
            recipe (:class:`nasntk.training.TrainConfig`); ``seed`` also seeds the model's
            initialisation, the split, and the random draw.
        data: the data source (default: the one the study was searched on); ``n`` images of
            it (default: all, at most ``DEFAULT_MAX_N`` = 2,000), of which ``val_fraction`` of
            each class is held out for validation.
        out: a folder for ``report.md``, ``validation.csv`` and the scatter plots.
        retrain: ignore stored results of this budget and train again (overwriting them).
        progress: ``progress(phase, done, total, label)`` for progress bars.

    Returns:
        :class:`Validation` with one row per candidate (leaderboard fields, ``role``,
        ``val_acc``, ``train_acc``, ``train_loss``, ``train_seconds``, ``reused``) and, per score,
        ``{"kendall", "spearman", "n"}``.
    """
    from nasntk.leaderboard import rows as leaderboard_rows

    study = _open(study_or_name, storage)
    config = training.TrainConfig(
        epochs=epochs,
        optimizer=optimizer,
        lr=lr,
        weight_decay=weight_decay,
        batch_size=batch_size,
        augment=augment,
        seed=seed,
        device=device,
    )
    budget, shape = _budget(study, data=data, n=n, val_fraction=val_fraction, config=config)
    ranked = leaderboard_rows(study)
    if not ranked:
        raise NasntkError(f"study {study.study_name!r} has no completed candidates to validate")
    chosen = select(ranked, top=top, random_k=random_k, seed=seed)
    runs = _Runs(study, budget, shape, config, retrain=retrain, progress=progress)
    rows = []
    for i, row in enumerate(chosen):
        if progress is not None:
            progress("candidate", i, len(chosen), str(row.get("arch") or row.get("spec")))
        rows.append(_result_row(row, *runs.result(row)))
    if progress is not None:
        progress("candidate", len(chosen), len(chosen), "")

    names = score_names(ranked)
    scores = {s: [r.get(s) for r in rows] for s in names}
    corr = correlate(scores, [r["val_acc"] for r in rows], directions(names))
    result = Validation(
        study=study.study_name,
        budget=budget.key(),
        rows=rows,
        correlations=corr,
        trained=runs.trained,
        reused=runs.reused,
    )
    if out is not None:
        sizes = _sizes(runs.split, budget)
        from nasntk.validation_report import write_report

        files = write_report(result, Path(out), directions(names), shape=shape, n_train_val=sizes)
        result = replace(result, files=files)
    return result


class _Runs:
    """Training results of candidates under one budget: read back from the study, or trained now."""

    def __init__(
        self,
        study: optuna.Study,
        budget: Budget,
        shape: Mapping[str, int],
        config: training.TrainConfig,
        *,
        retrain: bool,
        progress: Optional[Progress],
    ) -> None:
        self.study, self.budget, self.shape, self.config = study, budget, shape, config
        self.stored = {} if retrain else study.user_attrs
        self.progress = progress
        self.split: Optional[tuple[Any, Any]] = None  # loaded at the first training
        self.trained = self.reused = 0

    def _data(self) -> tuple[Any, Any]:
        if self.split is None:
            from nasntk import data as data_mod

            b, seed = self.budget, self.config.seed
            batch = data_mod.load(
                b.data,
                b.n,
                seed=seed,
                in_chans=self.shape["in_chans"],
                img_size=self.shape["img_size"],
            )
            self.split = training.split(batch.x, batch.y, val_fraction=b.val_fraction, seed=seed)
        return self.split

    def result(self, row: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        """The result of a candidate and whether it was stored already."""
        from nasntk.study import build

        key = result_key(self.budget.key(), int(row["trial"]))
        stored = _stored(self.stored, key)
        if stored is not None:
            self.reused += 1
            return stored, True
        result = _train_one(row, self.shape, self._data(), self.config, build, self.progress)
        result["arch"] = str(row.get("arch", ""))
        self.study.set_user_attr(key, result)
        self.trained += 1
        return result, False


def _result_row(row: Mapping[str, Any], result: Mapping[str, Any], reused: bool) -> dict[str, Any]:
    """A leaderboard row with its training result."""
    return {
        **{k: v for k, v in row.items() if k not in ("spec", "space_options")},
        "spec": row.get("spec"),
        "val_acc": as_float(result.get("val_acc")),
        "train_acc": as_float(result.get("train_acc")),
        "train_loss": as_float(result.get("train_loss")),
        "train_seconds": as_float(result.get("seconds")),
        "error": result.get("error", ""),
        "reused": reused,
    }


def _sizes(split_data: Optional[tuple[Any, Any]], budget: Budget) -> str:
    if split_data is None:
        return f"{budget.n} images, {budget.val_fraction:g} of each class held out"
    (x_tr, _), (x_va, _) = split_data
    return f"{x_tr.shape[0]} train / {x_va.shape[0]} validation images"


def _train_one(
    row: Mapping[str, Any],
    shape: Mapping[str, int],
    split_data: tuple[Any, Any],
    config: training.TrainConfig,
    build: Callable[..., Any],
    progress: Optional[Progress],
) -> dict[str, Any]:
    """Build the untrained network of ``row`` (seeded init) and train it; errors become rows."""
    c = config.resolved()
    on_step = None
    if progress is not None:

        def on_step(done: int, total: int) -> None:
            progress("step", done, total, "")

    with torch.random.fork_rng(devices=[]):
        try:
            model = build(row, seed=c.seed, **shape)
            res = training.train(model, split_data[0], split_data[1], c, on_step=on_step)
        except NasntkError as exc:
            return {"val_acc": math.nan, "error": str(exc)}
        except RuntimeError as exc:  # e.g. out of memory: the candidate is skipped, not the run
            return {"val_acc": math.nan, "error": one_line(exc)}
    d = res.to_dict()
    return {
        k: (v if not isinstance(v, float) or math.isfinite(v) else str(v)) for k, v in d.items()
    }
