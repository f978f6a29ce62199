"""Where a network's blocks are, and their outputs on a batch (for AZ-NAS's block-wise terms).

A network may say where its blocks are with a method ``block_names() -> list[str]`` (the cell
spaces do: the stem, then every cell, as AZ-NAS reads NAS-Bench-201). Otherwise the generic rule
of :func:`find_blocks` applies to any torch model: the outermost modules with parameters that are
items of a plain ``nn.Sequential`` / ``nn.ModuleList`` / ``nn.ModuleDict`` (nested plain
containers are looked through), in the order the forward pass calls them — ResNet's residual
blocks, EfficientNet's inverted residuals, ViT's transformer blocks, a cell network's cells. When
that finds fewer than two, the modules of timm's ``feature_info`` (its stages) are used.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from nasntk.spectral import ScoreUndefined

__all__ = ["block_outputs", "find_blocks"]

_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


def _is_plain_container(m: nn.Module) -> bool:
    return type(m) in _CONTAINERS


def _has_params(m: nn.Module) -> bool:
    return any(True for _ in m.parameters())


def _items(container: nn.Module, prefix: str) -> list[tuple[str, nn.Module]]:
    """The items of a plain container, nested plain containers looked through."""
    out = []
    for name, child in container.named_children():
        full = f"{prefix}.{name}" if prefix else name
        out += _items(child, full) if _is_plain_container(child) else [(full, child)]
    return out


def _candidates(module: nn.Module, prefix: str = "") -> list[tuple[str, nn.Module]]:
    """Outermost parameterised items of plain containers at or under ``module``."""
    out: list[tuple[str, nn.Module]] = []
    if _is_plain_container(module):
        for name, item in _items(module, prefix):
            out += [(name, item)] if _has_params(item) else _candidates(item, name)
        return out
    for name, child in module.named_children():
        out += _candidates(child, f"{prefix}.{name}" if prefix else name)
    return out


def find_blocks(model: nn.Module, x: torch.Tensor) -> list[str]:
    """Names of the modules whose outputs are ``model``'s blocks, in forward order (see the
    module docstring); the network's own ``block_names()`` when it has one."""
    own = getattr(model, "block_names", None)
    if callable(own):
        return list(own())
    found = dict(_candidates(model))
    if len(found) < 2:
        info = getattr(model, "feature_info", None)
        names = [f.get("module") for f in getattr(info, "info", info) or [] if isinstance(f, dict)]
        modules = dict(model.named_modules())
        found = {n: modules[n] for n in names if n in modules}
    order: list[str] = []
    handles = [
        m.register_forward_hook(lambda _m, _i, _o, n=n: order.append(n) if n not in order else None)
        for n, m in found.items()
    ]
    from nasntk.proxies.classic import forward_mode

    try:
        with forward_mode(model, "eval"), torch.no_grad():
            model(x[:1])
    finally:
        for h in handles:
            h.remove()
    return order


def block_outputs(
    model: nn.Module, names: Sequence[str], run: Callable[[], object]
) -> list[torch.Tensor]:
    """The outputs of the named modules (3-D or 4-D tensors with the batch first) captured while
    ``run()`` calls the model, in call order, still in the autograd graph."""
    modules = dict(model.named_modules())
    missing = [n for n in names if n not in modules]
    if missing:
        raise ScoreUndefined(f"no module named {', '.join(missing)} in the model", float("nan"))
    outs: list[torch.Tensor] = []

    def keep(_m: nn.Module, _i: object, out: object) -> None:
        if isinstance(out, (tuple, list)) and out:
            out = out[0]
        if isinstance(out, torch.Tensor) and out.dim() in (3, 4):
            outs.append(out)

    handles = [modules[n].register_forward_hook(keep) for n in names]
    try:
        run()
    finally:
        for h in handles:
            h.remove()
    return outs
