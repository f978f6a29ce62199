"""Search spaces: a registry with a ``get`` facade (in the spirit of timm's ``create_model``).

Built-in spaces are registered lazily by import path so that importing the registry stays cheap.
Users plug in their own space in one of three ways:

- ``get("my_pkg.my_module:MySpace")`` (also accepted wherever the CLI takes ``--space``);
- a Python entry point in the group ``nasntk.search_spaces`` (``name = "pkg.mod:Class"``);
- :func:`register` at run time.
"""

from __future__ import annotations

import importlib
import inspect
from importlib.metadata import entry_points
from typing import Union

from nasntk.errors import NasntkError
from nasntk.search_spaces.base import Dimension, SearchSpace, Spec, option_defaults

__all__ = ["Dimension", "SearchSpace", "Spec", "get", "names", "option_defaults", "register"]

_BUILTIN: dict[str, str] = {
    "nb201": "nasntk.search_spaces.nb201:NB201Space",
    "nb101": "nasntk.search_spaces.nb101:NB101Space",
    "darts": "nasntk.search_spaces.darts:DartsSpace",
    "mobilenet": "nasntk.search_spaces.mobilenet:MobileNetSpace",
    "regnet": "nasntk.search_spaces.regnet:RegNetSpace",
    "resnet": "nasntk.search_spaces.resnet:ResNetSpace",
    "vit": "nasntk.search_spaces.vit:ViTSpace",
    "timm": "nasntk.search_spaces.timm_zoo:TimmZooSpace",
}
_REGISTERED: dict[str, Union[str, type[SearchSpace], SearchSpace]] = {}

ENTRY_POINT_GROUP = "nasntk.search_spaces"


def register(name: str, space: Union[str, type[SearchSpace], SearchSpace]) -> None:
    """Register a space under ``name`` (a class, an instance, or a ``"module:Class"`` path)."""
    _REGISTERED[name] = space


def _entry_points() -> dict[str, str]:
    try:
        eps = entry_points(group=ENTRY_POINT_GROUP)
    except Exception:  # pragma: no cover - broken metadata must not break the registry
        return {}
    return {ep.name: ep.value for ep in eps}


def names() -> list[str]:
    """Names of every known space: built-in, entry points, and registered at run time."""
    return sorted(set(_BUILTIN) | set(_entry_points()) | set(_REGISTERED))


def _load_path(path: str) -> object:
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise NasntkError(f"space path {path!r} must look like 'package.module:ClassName'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise NasntkError(
            f"cannot import module {module_name!r} for space {path!r}: {exc}"
        ) from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise NasntkError(f"module {module_name!r} has no attribute {attr!r}") from None


def _instantiate(obj: object, label: str, **kwargs: object) -> SearchSpace:
    if isinstance(obj, SearchSpace):
        if kwargs:
            raise NasntkError(f"space {label!r} is an instance; it takes no options")
        return obj
    if isinstance(obj, type) and issubclass(obj, SearchSpace):
        known = option_defaults(obj)
        unknown = sorted(set(kwargs) - set(known))
        if unknown and not _takes_any_keyword(obj):
            listed = ", ".join(f"{k} (default {v!r})" for k, v in known.items()) or "none"
            raise NasntkError(
                f"space {label!r}: unknown option(s) {', '.join(unknown)}; its options are {listed}"
            )
        try:
            return obj(**kwargs)
        except TypeError as exc:
            raise NasntkError(f"space {label!r}: bad options {sorted(kwargs)}: {exc}") from None
    raise NasntkError(
        f"{label!r} is not a nasntk SearchSpace (subclass nasntk.search_spaces.SearchSpace)"
    )


def _takes_any_keyword(space: type[SearchSpace]) -> bool:
    params = inspect.signature(space.__init__).parameters.values()
    return any(p.kind is p.VAR_KEYWORD for p in params)


def get(name: str, **kwargs: object) -> SearchSpace:
    """Return a space instance by registry name or by ``"module:Class"`` path.

    ``kwargs`` are passed to the space's constructor (e.g. ``pattern=`` for the timm zoo).
    """
    if not isinstance(name, str) or not name:
        raise NasntkError("space name must be a non-empty string")
    if name in _REGISTERED:
        obj = _REGISTERED[name]
        return _instantiate(_load_path(obj) if isinstance(obj, str) else obj, name, **kwargs)
    eps = _entry_points()
    if name in _BUILTIN or name in eps:
        return _instantiate(_load_path(_BUILTIN.get(name) or eps[name]), name, **kwargs)
    if ":" in name:
        return _instantiate(_load_path(name), name, **kwargs)
    raise NasntkError(f"unknown search space {name!r}; known: {', '.join(names())}")
