"""Scoring many specs into a resumable CSV (``nasntk score``; the cache of ``nasntk benchmark``).

:func:`score_specs` scores a list of specs of one search space on one image batch and streams a
row per spec (text form, every score, params, FLOPs, seconds). With ``out=`` the rows go to a CSV
that is *resumable*: for a spec already there with the same configuration (data, image size, n,
seeds, bn, options, the space's non-default options) only the scores it still lacks are computed
(none if it has them all), and each new row is appended and flushed as soon as it is done, so an
interrupted run loses nothing.
"""

from __future__ import annotations

import csv
import inspect
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Optional, Union

from nasntk.errors import NasntkError
from nasntk.groundtruth import as_float

#: Columns every row of :func:`score_specs` carries besides the scores (data, img_size, n, seeds,
#: bn and opts are the configuration: a cached row is reused only when they all match; an empty
#: img_size is the data's own size, as in files written before the option).
META_COLUMNS = ("spec", "data", "img_size", "n", "seeds", "bn", "opts", "params", "flops",
                "seconds")  # fmt: skip

Computer = Callable[..., dict]


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
    data: str,
    n: int,
    seeds: int,
    bn: Optional[str],
    opts: Mapping[str, Any],
    img_size: Optional[int] = None,
) -> dict[str, str]:
    extra = json.dumps(dict(opts), sort_keys=True, default=str) if opts else ""
    size = "" if img_size is None else str(int(img_size))
    return {"data": str(data), "img_size": size, "n": str(n), "seeds": str(seeds),
            "bn": bn or "", "opts": extra}  # fmt: skip


def read_cache(
    path: Union[str, os.PathLike], config: Optional[Mapping[str, str]] = None
) -> dict[str, dict[str, Any]]:
    """Per spec, its rows of a score CSV merged (:func:`merge_rows`); ``{}`` if there is none.
    With ``config`` only rows of that configuration count (data, img_size, n, seeds, bn, opts)."""
    return merge_rows(read_rows(path), config or {})


def merge_rows(
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
        m["seconds"] = round(m["seconds"] + as_float(row.get("seconds")), 4)
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


def score_names(names: Optional[Sequence[str]]) -> list[str]:
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
    img_size: Optional[int] = None,
    **opts: Any,
) -> Iterator[dict[str, Any]]:
    """Score every spec (text form or dict) of ``space``; yield one row per spec, in order.

    A row holds ``spec`` (text form), the configuration (``data``, ``img_size`` — empty for the
    data's own size, ``n``, ``seeds``, ``bn``, ``opts`` — the extra scoring options as JSON),
    ``params`` and ``flops`` (of the network built for the data's classes and image size),
    ``seconds`` (wall time of building + scoring), each score, ``<score>_std`` when ``seeds > 1``
    and ``reasons`` (JSON: why a score is non-finite). With ``out``, a spec's earlier rows of the
    same configuration are merged (:func:`merge_rows`) and only its missing scores are computed;
    values read back from the CSV are strings.

    ``data`` is a source string (``nasntk.data.load``) or an already-loaded batch; ``img_size``
    resizes a source's images to that side length (``--img-size`` of ``nasntk search``: the
    networks are built and scored at it; default: the source's own size); ``compute`` is the
    scoring function (defaults to :func:`nasntk.proxies.compute`); ``opts`` go to it.
    """
    from nasntk.data import check_img_size
    from nasntk.search_spaces import get as get_space

    check_img_size(img_size)
    if img_size is not None and not isinstance(data, str):
        raise NasntkError("--img-size resizes a data source; a loaded batch keeps its own size")

    if isinstance(space, str):
        space = get_space(space)
    if n < 2:
        raise NasntkError(f"n must be at least 2, got {n}")
    if seeds < 1:
        raise NasntkError(f"seeds must be at least 1, got {seeds}")
    names = score_names(scores) if compute is None else list(scores or [])
    compute = compute or _compute_default()
    bn = bn if bn is not None else _default_bn(compute)
    texts = _parse_specs(space, specs)

    source = data if isinstance(data, str) else getattr(data, "source", "batch")
    space_opts = space.options() if hasattr(space, "options") else {}
    config = _config(
        source, n, seeds, bn, {**opts, **({"space": space_opts} if space_opts else {})}, img_size
    )
    cached: dict[str, dict[str, Any]] = {}
    appender: Optional[_Appender] = None
    if out is not None:
        out = Path(out)
        cached = read_cache(out, config)
        std_cols = [f"{nm}_std" for nm in names] if seeds > 1 else []
        columns = dict.fromkeys([*META_COLUMNS, *names, *std_cols, "reasons"])
        appender = _Appender(out, list(columns))

    batch = None
    try:
        for text, spec in texts:
            done = cached.get(text, {})
            missing = [nm for nm in names if nm not in done]
            if not missing:
                yield done
                continue
            if batch is None:
                batch = _load_batch(data, n, None, img_size)
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


def _default_bn(compute: Computer) -> Optional[str]:
    """The BatchNorm mode the scoring function uses by default (recorded with every row)."""
    param = inspect.signature(compute).parameters.get("bn")
    return param.default if param is not None and isinstance(param.default, str) else None


def _parse_specs(
    space: Any, specs: Iterable[Union[str, Mapping[str, Any]]]
) -> list[tuple[str, Mapping[str, Any]]]:
    """(text form, canonical spec) of every spec; blank lines and ``#`` comments are skipped."""
    out = []
    for s in specs:
        if isinstance(s, str):
            if not s.strip() or s.lstrip().startswith("#"):
                continue
            spec = space.parse_any(s)
        else:
            spec = space.validate(dict(s))
        out.append((space.format(spec), spec))
    return out


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
    """One row. A candidate that cannot be built or scored (an error, out of memory) is a row of
    nan scores with the reason under ``reasons["error"]``, never the end of the run."""
    from nasntk.networks import model_builder, shape_of

    shape = shape_of(batch)
    builder = model_builder(space, spec, shape)
    kwargs = dict(opts)
    if bn is not None:
        kwargs["bn"] = bn
    start = time.perf_counter()
    model: Any = None
    counted: dict[str, float] = {}
    reasons: dict[str, str] = {}
    try:
        model = builder if seeds > 1 else builder(0)
        # params / FLOPs of the built network, by the space's exact count: the scores of those
        # names take them as they are (a search has them from its budget check)
        for key, count in (("params", space.params), ("flops", space.flops)):
            counted[key] = _count(key, count, spec, shape, model, batch, reasons)
        known = {k: v for k, v in counted.items() if math.isfinite(v)}
        if _takes_known(compute):
            kwargs["known"] = known
        result = compute(model, batch, list(names), seeds=seeds, **kwargs)
    except Exception as exc:  # one candidate never ends the run: its row says why
        result = {"reasons": {"error": _failure(exc)}}
    seconds = time.perf_counter() - start
    reasons.update(result.get("reasons") or {})
    row: dict[str, Any] = {"spec": text}
    for key, count in (("params", space.params), ("flops", space.flops)):
        if key not in counted:  # the build failed before the counts
            counted[key] = _count(key, count, spec, shape, model, batch, reasons)
        row[key] = counted[key]
    row["seconds"] = round(seconds, 4)
    for name in names:
        row[name] = float(result.get(name, math.nan))
        if seeds > 1:
            row[f"{name}_std"] = float(result.get(f"{name}_std", math.nan))
    row["reasons"] = reasons
    return row


def _takes_known(compute: Computer) -> bool:
    """Whether the scoring function accepts counts already made (``known=``)."""
    return "known" in inspect.signature(compute).parameters


def _failure(exc: BaseException) -> str:
    """A candidate's failure on one line: out of memory, the user-facing error, or the type."""
    from nasntk.errors import one_line

    text = str(exc).lower()
    if isinstance(exc, MemoryError) or "out of memory" in text or "can't allocate memory" in text:
        return "out of memory"
    return (
        one_line(exc) if isinstance(exc, NasntkError) else f"{type(exc).__name__}: {one_line(exc)}"
    )


def _count(
    key: str,
    count: Callable[..., int],
    spec: Mapping[str, Any],
    shape: Mapping[str, int],
    model: Any,
    batch: Any,
    reasons: dict[str, str],
) -> float:
    """The space's count of ``key`` (params or FLOPs, on the meta device or in closed form);
    where that fails, the count on the real network (FLOPs on one real image), said in
    ``reasons``; nan when neither works."""
    try:
        return int(count(spec, **shape))
    except Exception as exc:
        first = _failure(exc)
    if hasattr(model, "parameters"):  # a built network (not a builder, not a failure)
        try:
            from nasntk.proxies import classic

            value = classic.params(model) if key == "params" else classic.flops(model, batch.x)
            reasons[key] = f"counted on the real network (the space's count failed: {first})"
            return value
        except Exception as exc:
            first = f"{first}; on the real network: {_failure(exc)}"
    reasons[key] = f"not counted: {first}"
    return math.nan
