"""Building a spec's network for the batch it will see: one way for every caller.

Every network nasntk scores, searches, rebuilds or trains is made by :func:`seeded_build`:
``torch.manual_seed(seed)`` then ``space.build(spec, num_classes=…, in_chans=…, img_size=…)`` for
the shape of its batch (:func:`shape_of`), so that a rebuilt leaderboard row is exactly the
network that was scored. torch is imported only when a network is built.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the spaces import torch
    from nasntk.search_spaces import SearchSpace

__all__ = ["model_builder", "seeded_build", "shape_of"]


def shape_of(batch: Any) -> dict[str, int]:
    """``{"num_classes", "in_chans", "img_size"}`` of a loaded batch (what networks are built for)."""
    return {
        "num_classes": int(batch.num_classes),
        "in_chans": int(batch.x.shape[1]),
        "img_size": int(batch.x.shape[-1]),
    }


def seeded_build(space: SearchSpace, spec: Any, shape: Mapping[str, int], seed: int | None) -> Any:
    """The untrained network of ``spec`` for inputs of ``shape``, initialised from ``seed``:
    ``torch.manual_seed(seed)`` then ``space.build(spec, **shape)`` — how every scored, searched
    and rebuilt network is made, so that a rebuild gives back exactly the network scored."""
    if seed is not None:
        import torch

        torch.manual_seed(seed)
    return space.build(spec, **shape)


def model_builder(space: SearchSpace, spec: Any, shape: Mapping[str, int]) -> Callable[[int], Any]:
    """``seed -> network`` (what :func:`nasntk.proxies.compute` takes to average over seeds)."""

    def make(seed: int) -> Any:
        return seeded_build(space, spec, shape, seed)

    return make
