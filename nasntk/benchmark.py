"""How well do training-free scores rank architectures? Scoring many specs, and rank correlations.

Two jobs, both behind ``nasntk score`` / ``nasntk benchmark``:

1. :func:`score_specs` — score a list of specs of one search space on one image batch and stream a
   row per spec (text form, every score, params, FLOPs, seconds). With ``out=`` the rows go to a CSV
   that is *resumable*: for a spec already there with the same configuration (data, n, seeds, bn,
   options) only the scores it still lacks are computed (none if it has them all), and each new
   row is appended and flushed as soon as it is done, so an interrupted run loses nothing.
2. :func:`benchmark` — score the cells of a ground-truth CSV (columns ``arch`` and ``*_acc``) and
   measure, for every score s and every accuracy column a,

   - Kendall τ-b and Spearman ρ between the *oriented* score and a (``scipy.stats``). A score is
     oriented so that larger means "predicted better": scores whose direction is ``"minimize"``
     (e.g. the log condition number) are negated. A non-finite oriented score (a failed kernel)
     ranks last, as it would in a search;
   - the top-k hit rate |top_k(s) ∩ top_k(a)| / k (k = 10): of the k cells the score likes best,
     the fraction that are among the k most accurate.

:func:`bootstrap_ci` gives percentile-bootstrap confidence intervals of τ (resampling cells with
replacement), used by ``experiments/nb201_ranking.py`` to report every configuration honestly.
"""

from __future__ import annotations

import csv
import inspect
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
from scipy import stats

from nasntk.errors import NasntkError

#: Columns every row of :func:`score_specs` carries besides the scores (data, n, seeds, bn and opts
#: are the configuration: a cached row is reused only when they all match).
META_COLUMNS = ("spec", "data", "n", "seeds", "bn", "opts", "params", "flops", "seconds")
TOP_K = 10

Computer = Callable[..., dict]


# ------------------------------------------------------------------------------------------------
# Ground truth
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Truth:
    """Cells of a ground-truth CSV: ``archs[i]`` has accuracy ``columns[name][i]``."""

    archs: tuple[str, ...]
    columns: dict[str, np.ndarray]
    path: str = ""

    def __len__(self) -> int:
        return len(self.archs)


def read_truth(path: Union[str, os.PathLike], *, limit: Optional[int] = None) -> Truth:
    """Read a truth CSV: an ``arch`` column and one or more ``*_acc`` columns (numbers).

    ``limit`` keeps the first ``limit`` rows (the dev CSV is already a random sample).
    """
    path = Path(path)
    if not path.is_file():
        raise NasntkError(f"truth CSV not found: {path}")
    if limit is not None and limit < 2:
        raise NasntkError(
            f"--limit must be at least 2 (rank correlation needs two cells), got {limit}"
        )
    try:
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            header = list(reader.fieldnames or [])
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise NasntkError(f"cannot read truth CSV {path}: {exc}") from None
    if "arch" not in header:
        raise NasntkError(f"truth CSV {path} has no 'arch' column (columns: {', '.join(header)})")
    acc_cols = [c for c in header if c.endswith("_acc")]
    if not acc_cols:
        raise NasntkError(f"truth CSV {path} has no accuracy column ending in '_acc'")
    if limit is not None:
        rows = rows[:limit]
    if len(rows) < 2:
        raise NasntkError(f"truth CSV {path} has fewer than 2 rows")
    columns: dict[str, np.ndarray] = {}
    for col in acc_cols:
        try:
            columns[col] = np.array([float(r[col]) for r in rows], dtype=np.float64)
        except (TypeError, ValueError):
            raise NasntkError(f"truth CSV {path}: column {col!r} has a non-numeric value") from None
    return Truth(archs=tuple(r["arch"].strip() for r in rows), columns=columns, path=str(path))


# ------------------------------------------------------------------------------------------------
# Rank statistics
# ------------------------------------------------------------------------------------------------
def orient(values: Sequence[float], direction: str = "maximize") -> np.ndarray:
    """Map a score to "larger is better": negate ``minimize`` scores; non-finite → −inf (last)."""
    if direction not in ("maximize", "minimize"):
        raise NasntkError(f"direction must be 'maximize' or 'minimize', got {direction!r}")
    v = np.asarray(values, dtype=np.float64)
    v = -v if direction == "minimize" else v.copy()
    v[~np.isfinite(v)] = -np.inf
    return v


def _finite_ranks(v: np.ndarray) -> np.ndarray:
    # -inf ties at the bottom; scipy handles ties in ranks, and ±inf is ordered correctly.
    return stats.rankdata(v)


def rank_correlations(score: Sequence[float], acc: Sequence[float]) -> dict[str, float]:
    """Kendall τ-b and Spearman ρ between an oriented score and accuracies (NaN if constant)."""
    s = _finite_ranks(np.asarray(score, dtype=np.float64))
    a = np.asarray(acc, dtype=np.float64)
    if s.shape != a.shape:
        raise NasntkError(f"score has {s.size} values but accuracy has {a.size}")
    if np.ptp(s) == 0 or np.ptp(a) == 0:
        return {"kendall": math.nan, "spearman": math.nan}
    return {
        "kendall": float(stats.kendalltau(s, a).statistic),
        "spearman": float(stats.spearmanr(s, a).statistic),
    }


def top_k_hit_rate(score: Sequence[float], acc: Sequence[float], k: int = TOP_K) -> float:
    """|top_k(score) ∩ top_k(acc)| / k for an oriented score (ties broken by position)."""
    s = np.asarray(score, dtype=np.float64)
    a = np.asarray(acc, dtype=np.float64)
    k = min(k, s.size)
    if k <= 0:
        return math.nan
    top_s = set(np.argsort(-s, kind="stable")[:k].tolist())
    top_a = set(np.argsort(-a, kind="stable")[:k].tolist())
    return len(top_s & top_a) / k


def correlations(
    scores: Mapping[str, Sequence[float]],
    truth: Mapping[str, Sequence[float]],
    directions: Optional[Mapping[str, str]] = None,
) -> dict[str, dict[str, dict[str, float]]]:
    """``{score: {column: {"kendall": τ, "spearman": ρ}}}`` for every score × accuracy column."""
    directions = directions or {}
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name, values in scores.items():
        oriented = orient(values, directions.get(name, "maximize"))
        out[name] = {col: rank_correlations(oriented, acc) for col, acc in truth.items()}
    return out


def bootstrap_ci(
    score: Sequence[float],
    acc: Sequence[float],
    *,
    statistic: str = "kendall",
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(point estimate, low, high): percentile bootstrap CI of τ or ρ, resampling cells."""
    if statistic not in ("kendall", "spearman"):
        raise NasntkError(f"statistic must be 'kendall' or 'spearman', got {statistic!r}")
    s = np.asarray(score, dtype=np.float64)
    a = np.asarray(acc, dtype=np.float64)
    point = rank_correlations(s, a)[statistic]
    rng = np.random.default_rng(seed)
    reps = np.empty(n_boot)
    for b in range(n_boot):
        idx = rng.integers(0, s.size, s.size)
        reps[b] = rank_correlations(s[idx], a[idx])[statistic]
    alpha = (1.0 - level) / 2.0
    low, high = np.nanquantile(reps, [alpha, 1.0 - alpha])
    return point, float(low), float(high)


# ------------------------------------------------------------------------------------------------
# Resumable CSV of scored specs
# ------------------------------------------------------------------------------------------------
def read_rows(path: Union[str, os.PathLike]) -> list[dict[str, str]]:
    """Rows of a score CSV (empty list if the file does not exist or is empty)."""
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return []
    try:
        with path.open(newline="") as fh:
            return [dict(r) for r in csv.DictReader(fh)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise NasntkError(f"cannot read score CSV {path}: {exc}") from None


def _config(
    data: str, n: int, seeds: int, bn: Optional[str], opts: Mapping[str, Any]
) -> dict[str, str]:
    extra = json.dumps(dict(opts), sort_keys=True, default=str) if opts else ""
    return {"data": str(data), "n": str(n), "seeds": str(seeds), "bn": bn or "", "opts": extra}


def _merge_cached(
    rows: Iterable[Mapping[str, str]], config: Mapping[str, str]
) -> dict[str, dict[str, Any]]:
    """Per spec, the union of its rows with this configuration (later non-empty values win).

    Scores of one spec may come from several runs (e.g. baselines first, kernel scores later);
    ``seconds`` is their sum and ``reasons`` the union, so a merged row reads like one run.
    """
    merged: dict[str, dict[str, Any]] = {}
    for row in rows:
        if any(row.get(k, "") != v for k, v in config.items()):
            continue
        m = merged.setdefault(row.get("spec", ""), {"seconds": 0.0, "reasons": {}})
        for key, value in row.items():
            if value in ("", None) or key in ("seconds", "reasons"):
                continue
            m[key] = value
        m["seconds"] = round(m["seconds"] + _as_float(row.get("seconds")), 4)
        if row.get("reasons"):
            try:
                m["reasons"].update(json.loads(row["reasons"]))
            except (json.JSONDecodeError, AttributeError):
                pass
    return merged


class _Appender:
    """Append rows to a CSV, writing the header first if the file is new; flush every row.

    If the file already has a header lacking some columns, it is rewritten once (atomically) with
    the union of columns so old rows survive and new rows fit.
    """

    def __init__(self, path: Path, fieldnames: Sequence[str]):
        self.path = path
        existing = read_rows(path)
        old_fields: list[str] = []
        if existing or (path.exists() and path.stat().st_size > 0):
            with path.open(newline="") as fh:
                old_fields = next(csv.reader(fh), [])
        fields = list(old_fields) + [f for f in fieldnames if f not in old_fields]
        if old_fields and fields != old_fields:
            tmp = path.with_suffix(path.suffix + ".tmp")
            with tmp.open("w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=fields)
                w.writeheader()
                w.writerows(existing)
            os.replace(tmp, path)
        self.fields = fields
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = path.open("a", newline="")
        self._writer = csv.DictWriter(self._fh, fieldnames=fields, extrasaction="ignore")
        if not old_fields:
            self._writer.writeheader()
            self._fh.flush()

    def write(self, row: Mapping[str, Any]) -> None:
        self._writer.writerow({k: _cell(v) for k, v in row.items()})
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()


def _cell(v: Any) -> Any:
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, (dict, list)):
        return json.dumps(v, sort_keys=True) if v else ""
    return v


def _compute_default() -> Computer:
    from nasntk import proxies

    return proxies.compute


def _score_names(names: Optional[Sequence[str]]) -> list[str]:
    from nasntk import proxies

    known = proxies.names()
    if not names:
        return list(known)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise NasntkError(f"unknown score(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return list(dict.fromkeys(names))


def _load_batch(data: Any, n: int, in_chans: Optional[int], img_size: Optional[int]) -> Any:
    if not isinstance(data, str):
        return data  # an already-loaded Batch (x, y, num_classes, source)
    from nasntk import data as data_mod

    return data_mod.load(data, n, seed=0, in_chans=in_chans, img_size=img_size)


def score_specs(
    space: Any,
    specs: Iterable[Union[str, Mapping[str, Any]]],
    *,
    data: Any = "digits",
    out: Optional[Union[str, os.PathLike]] = None,
    scores: Optional[Sequence[str]] = None,
    n: int = 64,
    seeds: int = 1,
    bn: Optional[str] = None,
    compute: Optional[Computer] = None,
    **opts: Any,
) -> Iterator[dict[str, Any]]:
    """Score every spec (text form or dict) of ``space``; yield one row per spec, in order.

    A row holds ``spec`` (text form), the configuration (``data``, ``n``, ``seeds``, ``bn``,
    ``opts`` — the extra scoring options as JSON),
    ``params`` and ``flops`` (of the network built for the data's classes and image size),
    ``seconds`` (wall time of building + scoring), each score, ``<score>_std`` when ``seeds > 1``
    and ``reasons`` (JSON: why a score is non-finite). With ``out``, a spec's earlier rows of the
    same configuration are merged (:func:`_merge_cached`) and only its missing scores are computed;
    values read back from the CSV are strings.

    ``data`` is a source string (``nasntk.data.load``) or an already-loaded batch; ``compute`` is
    the scoring function (defaults to :func:`nasntk.proxies.compute`); ``opts`` go to it.
    """
    from nasntk.search_spaces import get as get_space

    if isinstance(space, str):
        space = get_space(space)
    if n < 2:
        raise NasntkError(f"n must be at least 2, got {n}")
    if seeds < 1:
        raise NasntkError(f"seeds must be at least 1, got {seeds}")
    names = _score_names(scores) if compute is None else list(scores or [])
    compute = compute or _compute_default()
    if bn is None:  # record the mode actually used: the scoring function's default
        bn_default = inspect.signature(compute).parameters.get("bn")
        if bn_default is not None and isinstance(bn_default.default, str):
            bn = bn_default.default
    texts = []
    for i, s in enumerate(specs):
        if isinstance(s, str):
            if not s.strip() or s.lstrip().startswith("#"):
                continue
            spec = space.parse_any(s)
        else:
            spec = space.validate(dict(s))
        texts.append((i, space.format(spec), spec))

    source = data if isinstance(data, str) else getattr(data, "source", "batch")
    config = _config(source, n, seeds, bn, opts)
    cached: dict[str, dict[str, Any]] = {}
    appender: Optional[_Appender] = None
    if out is not None:
        out = Path(out)
        cached = _merge_cached(read_rows(out), config)
        std_cols = [f"{nm}_std" for nm in names] if seeds > 1 else []
        columns = dict.fromkeys([*META_COLUMNS, *names, *std_cols, "reasons"])
        appender = _Appender(out, list(columns))

    batch = None
    try:
        for _, text, spec in texts:
            done = cached.get(text, {})
            missing = [nm for nm in names if nm not in done]
            if not missing:
                yield done
                continue
            if batch is None:
                batch = _load_batch(data, n, None, None)
            row = _score_one(space, spec, text, batch, missing, seeds, bn, compute, opts)
            row.update(config)
            if appender is not None:
                appender.write(row)
            if done:  # the scores done before, plus the ones just computed
                row = {**done, **row, "seconds": round(done["seconds"] + row["seconds"], 4),
                       "reasons": {**done["reasons"], **row["reasons"]}}  # fmt: skip
            yield row
    finally:
        if appender is not None:
            appender.close()


def _score_one(
    space: Any,
    spec: Mapping[str, Any],
    text: str,
    batch: Any,
    names: Sequence[str],
    seeds: int,
    bn: Optional[str],
    compute: Computer,
    opts: Mapping[str, Any],
) -> dict[str, Any]:
    import torch

    in_chans, img_size = int(batch.x.shape[1]), int(batch.x.shape[-1])
    shape = {"num_classes": int(batch.num_classes), "in_chans": in_chans, "img_size": img_size}

    def builder(seed: int) -> Any:
        torch.manual_seed(seed)
        return space.build(spec, **shape)

    kwargs = dict(opts)
    if bn is not None:
        kwargs["bn"] = bn
    start = time.perf_counter()
    model_or_builder = builder if seeds > 1 else builder(0)
    result = compute(model_or_builder, batch, list(names), seeds=seeds, **kwargs)
    seconds = time.perf_counter() - start
    row: dict[str, Any] = {"spec": text}
    # params / FLOPs of the built network (from the scores themselves when they were asked for)
    row["params"] = result["params"] if "params" in names else int(space.params(spec, **shape))
    row["flops"] = result["flops"] if "flops" in names else int(space.flops(spec, **shape))
    row["seconds"] = round(seconds, 4)
    for name in names:
        row[name] = float(result.get(name, math.nan))
        if seeds > 1:
            row[f"{name}_std"] = float(result.get(f"{name}_std", math.nan))
    row["reasons"] = result.get("reasons") or {}
    return row


# ------------------------------------------------------------------------------------------------
# The benchmark
# ------------------------------------------------------------------------------------------------
@dataclass
class BenchmarkResult:
    """Rank quality of every score against every accuracy column of a truth CSV."""

    n: int
    seconds_per_cell: float
    default: str
    scores: dict[str, dict[str, dict[str, float]]]
    top10: dict[str, dict[str, float]] = field(default_factory=dict)
    directions: dict[str, str] = field(default_factory=dict)
    values: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    truth: Optional[Truth] = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        """Exactly ``{"n", "seconds_per_cell", "default", "scores": {s: {col: {τ, ρ}}}}``."""
        return {
            "n": int(self.n),
            "seconds_per_cell": float(self.seconds_per_cell),
            "default": self.default,
            "scores": {
                s: {
                    c: {"kendall": v["kendall"], "spearman": v["spearman"]} for c, v in cols.items()
                }
                for s, cols in self.scores.items()
            },
        }


def _as_float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def evaluate(
    rows: Sequence[Mapping[str, Any]],
    truth: Truth,
    names: Sequence[str],
    directions: Mapping[str, str],
    default: str = "default",
) -> BenchmarkResult:
    """Correlations, top-10 hit rates and mean seconds of scored rows aligned with ``truth``."""
    if len(rows) != len(truth):
        raise NasntkError(f"{len(rows)} scored rows for {len(truth)} truth cells")
    values = {nm: np.array([_as_float(r.get(nm)) for r in rows]) for nm in names}
    corr = correlations(values, truth.columns, directions)
    top10 = {
        nm: {
            col: top_k_hit_rate(orient(values[nm], directions.get(nm, "maximize")), acc)
            for col, acc in truth.columns.items()
        }
        for nm in names
    }
    secs = np.array([_as_float(r.get("seconds")) for r in rows])
    return BenchmarkResult(
        n=len(rows),
        seconds_per_cell=float(np.nanmean(secs)) if np.isfinite(secs).any() else math.nan,
        default=default if default in names else "",
        scores=corr,
        top10=top10,
        directions=dict(directions),
        values=values,
        truth=truth,
    )


def benchmark(
    space: Any = "nb201",
    *,
    truth: Union[str, os.PathLike],
    data: Any,
    limit: Optional[int] = None,
    scores: Optional[Sequence[str]] = None,
    n: int = 64,
    seeds: int = 1,
    bn: Optional[str] = None,
    cache: Optional[Union[str, os.PathLike]] = None,
    compute: Optional[Computer] = None,
    directions: Optional[Mapping[str, str]] = None,
    progress: Optional[Callable[[int, int], None]] = None,
    **opts: Any,
) -> BenchmarkResult:
    """Score the cells of a truth CSV and measure how well each score ranks them.

    ``cache`` is a resumable score CSV (as written by :func:`score_specs`): cells already scored
    there with the same configuration are not scored again. ``progress(done, total)`` is called
    after each cell. ``directions`` defaults to the registry's (``nasntk.proxies.get(name)``).
    """
    from nasntk.search_spaces import get as get_space

    if isinstance(space, str):
        space = get_space(space)
    tr = read_truth(truth, limit=limit)
    names = _score_names(scores) if compute is None else list(scores or [])
    if directions is None:
        from nasntk import proxies

        directions = {nm: proxies.get(nm).direction for nm in names}
    rows = []
    for row in score_specs(
        space,
        tr.archs,
        data=data,
        out=cache,
        scores=names,
        n=n,
        seeds=seeds,
        bn=bn,
        compute=compute,
        **opts,
    ):
        rows.append(row)
        if progress is not None:
            progress(len(rows), len(tr))
    return evaluate(rows, tr, names, directions)
