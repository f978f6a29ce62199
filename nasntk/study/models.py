"""Spaces and networks: resolve a space reference, build a spec's network, rebuild a row's.

Every network of a search is built the same way — :func:`seeded_build`: ``torch.manual_seed(seed)``
then ``space.build(spec, num_classes=…, in_chans=…, img_size=…)`` for the shape of the batch it
will see (:func:`shape_of`) — so that :func:`build` gives back exactly the network that was
scored, and validation trains exactly that network.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Union

from nasntk.errors import NasntkError
from nasntk.networks import model_builder, seeded_build, shape_of
from nasntk.study import record

if TYPE_CHECKING:  # the spaces import torch
    from nasntk.search_spaces import SearchSpace

__all__ = [
    "build",
    "cell_drawings",
    "model_builder",
    "rebuild_info",
    "resolve_space",
    "seeded_build",
    "shape_of",
]

SpaceLike = Union[str, "SearchSpace"]
#: The input of a network when nothing says otherwise: CIFAR-like.
DEFAULT_SHAPE = {record.NUM_CLASSES: 10, record.IN_CHANS: 3, record.IMG_SIZE: 32}


def resolve_space(ref: SpaceLike, options: Mapping[str, Any]) -> tuple[SearchSpace, str]:
    """The space instance and the reference stored with trials (a name or ``module:Class``)."""
    from nasntk.search_spaces import SearchSpace
    from nasntk.search_spaces import get as get_space
    from nasntk.search_spaces import names as space_names

    if isinstance(ref, SearchSpace):
        if options:
            raise NasntkError("space options are only accepted with a space name")
        name = ref.name
        if name and name in space_names():
            try:
                same = type(get_space(name)) is type(ref)
            except NasntkError:
                same = False
            if same:
                return ref, name
        return ref, f"{type(ref).__module__}:{type(ref).__qualname__}"
    if not isinstance(ref, str):
        raise NasntkError(f"space must be a name or a SearchSpace, got {type(ref).__name__}")
    return get_space(ref, **dict(options)), ref


def release_memory() -> None:
    """Free what a failed candidate left behind (Python garbage, the CUDA cache)."""
    gc.collect()
    with contextlib.suppress(Exception):
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _shape(row: Mapping[str, Any], given: Mapping[str, int | None], data: str | None) -> dict:
    """The input shape: the arguments, else the row, else the data source, else CIFAR-like."""
    shape = dict(given)
    for k in shape:
        if shape[k] is None and row.get(k) is not None:
            shape[k] = int(row[k])
    source = data or row.get(record.DATA)
    if any(v is None for v in shape.values()) and source:
        from nasntk import data as data_mod

        info = data_mod.info(str(source))
        for k in shape:
            if shape[k] is None:
                shape[k] = int(info[k])
    return {k: int(v if v is not None else DEFAULT_SHAPE[k]) for k, v in shape.items()}


def _row_space_spec(row: Mapping[str, Any]) -> tuple[SearchSpace, Any, dict[str, int]]:
    """The space, the validated spec and the input shape of a leaderboard row."""
    space_ref = row.get(record.SPACE)
    if space_ref is None:
        raise NasntkError("the row has no 'space' field")
    options = row.get(record.SPACE_OPTIONS) or {}
    space_obj, _ = resolve_space(space_ref, options)
    spec = space_obj.validate(dict(row[record.SPEC]))
    none = {record.NUM_CLASSES: None, record.IN_CHANS: None, record.IMG_SIZE: None}
    return space_obj, spec, _shape(row, none, None)


def rebuild_info(row: Mapping[str, Any]) -> dict[str, Any] | None:
    """How to get a row's network without nasntk (:meth:`SearchSpace.rebuild`): timm code for
    the timm spaces, the benchmark's standard form for cell spaces; ``None`` otherwise."""
    space_obj, spec, shape = _row_space_spec(row)
    return space_obj.rebuild(spec, **shape)


def cell_drawings(row: Mapping[str, Any]) -> list[str]:
    """SVG drawings of a row's cell(s) for cell spaces (:meth:`SearchSpace.cell_graph`)."""
    from nasntk.cellsvg import svg

    space_obj, spec, _ = _row_space_spec(row)
    return [svg(nodes, edges, title) for title, nodes, edges in space_obj.cell_graph(spec)]


def build(
    spec_or_row: Mapping[str, Any] | str,
    *,
    space: SpaceLike | None = None,
    num_classes: int | None = None,
    in_chans: int | None = None,
    img_size: int | None = None,
    data: str | None = None,
    seed: int | None = None,
) -> Any:
    """Rebuild the untrained model of a leaderboard row, an exported JSON, or a spec.

    ``spec_or_row`` is a row (``{"space": …, "spec": …, …}`` from :func:`nasntk.leaderboard.rows`
    or ``nasntk export``), trial user attributes, a spec dict, or a spec's text form (then
    ``space`` is needed). The input size comes from the arguments, else the row
    (``num_classes``, ``in_chans``, ``img_size``), else the row's data source, else CIFAR-like
    defaults (10, 3, 32).
    """
    row: dict[str, Any] = {}
    spec: Any = spec_or_row
    if isinstance(spec_or_row, Mapping) and record.SPEC in spec_or_row:
        row = dict(spec_or_row)
        spec = row[record.SPEC]
    space_ref = space if space is not None else row.get(record.SPACE)
    if space_ref is None:
        raise NasntkError("build: name the space (space=…) or pass a row with a 'space' field")
    options = row.get(record.SPACE_OPTIONS) or {}
    space_obj, _ = resolve_space(space_ref, options if isinstance(space_ref, str) else {})
    if isinstance(spec, str):
        spec = space_obj.parse_any(spec)
    elif isinstance(spec, Mapping):
        spec = space_obj.validate(dict(spec))
    else:
        raise NasntkError(f"build: spec must be a dict or a string, got {type(spec).__name__}")
    given = {record.NUM_CLASSES: num_classes, record.IN_CHANS: in_chans, record.IMG_SIZE: img_size}
    return seeded_build(space_obj, spec, _shape(row, given, data), seed)
