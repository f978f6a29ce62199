"""The search-space contract: what the search needs from a space, and nothing more.

A *spec* is a plain, JSON-serialisable dict that fully describes one architecture. Specs are
canonical: two specs describe the same network iff they compare equal (so the search can skip
duplicates by comparing ``json.dumps(spec, sort_keys=True)``).

Every space also has a compact *text form* users type on the command line
(``space.parse(text) -> spec`` and ``space.format(spec) -> text``; ``parse(format(s)) == s``).
"""

from __future__ import annotations

import abc
import hashlib
import inspect
import json
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from nasntk.errors import NasntkError

Spec = dict[str, Any]


def check_build_args(space: str, num_classes: Any, in_chans: Any, img_size: Any) -> None:
    """Raise :class:`NasntkError` unless the build sizes are positive integers."""
    for field, v in (("num_classes", num_classes), ("in_chans", in_chans), ("img_size", img_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise NasntkError(f"{space}: {field} must be a positive integer, got {v!r}")


@dataclass(frozen=True)
class Dimension:
    """One documented dimension of a space: its name, its choices or range, and what it means."""

    name: str
    choices: str
    help: str = ""


class SearchSpace(abc.ABC):
    """Abstract base of a search space (tiny on purpose, like optuna's ``BaseSampler``).

    Subclasses set :attr:`name` and :attr:`dimensions` and implement :meth:`suggest`,
    :meth:`build`, :meth:`validate`, :meth:`parse` and :meth:`format`.
    """

    name: str = ""
    #: Documented dimensions (shown by ``nasntk spaces``).
    dimensions: tuple[Dimension, ...] = ()

    # -- what the search calls -------------------------------------------------------------
    @abc.abstractmethod
    def suggest(self, trial: Any) -> Spec:
        """Sample a canonical spec with an Optuna trial (``trial.suggest_*``)."""

    @abc.abstractmethod
    def build(
        self, spec: Spec, *, num_classes: int, in_chans: int = 3, img_size: int = 32
    ) -> nn.Module:
        """Build the untrained network (``pretrained=False``, nothing downloaded).

        Raises :class:`NasntkError` when the family cannot be built for these sizes.
        """

    @abc.abstractmethod
    def validate(self, spec: Any) -> Spec:
        """Return the canonical form of ``spec`` or raise :class:`NasntkError` naming the bad field."""

    @abc.abstractmethod
    def parse(self, text: str) -> Spec:
        """Parse the compact text form (or a JSON object) into a canonical spec."""

    @abc.abstractmethod
    def format(self, spec: Spec) -> str:
        """The compact text form of a spec; ``parse(format(spec)) == spec``."""

    # -- conveniences with sensible defaults -------------------------------------------------
    def options(self) -> dict[str, Any]:
        """The constructor options of this instance that differ from the space's defaults (e.g.
        a narrower proxy network); ``{}`` for the default network. Scores computed on different
        options are different results, so score caches record them. (Default: ``{}``; spaces
        whose options are stored as attributes of the same name return
        :meth:`changed_options`.)"""
        return {}

    def changed_options(self) -> dict[str, Any]:
        """The constructor options whose attribute (same name) differs from its default."""
        return {
            k: getattr(self, k)
            for k, default in option_defaults(type(self)).items()
            if hasattr(self, k) and getattr(self, k) != default
        }

    def rebuild(
        self, spec: Spec, *, num_classes: int = 10, in_chans: int = 3, img_size: int = 32
    ) -> dict[str, Any] | None:
        """How to get this network without nasntk, or ``None`` where there is no such way.

        ``{"code": <Python source that builds the untrained network with timm alone, binding
        it to the name ``model``>, ...}`` for the timm spaces; for the benchmark cell spaces
        ``{"benchmark": <name>, ...}`` with the cell in the benchmark's own standard form.
        """
        return None

    def cell_graph(self, spec: Spec) -> list[tuple[str, list[str], list[tuple[int, int, str]]]]:
        """The cell(s) of a cell space as drawable graphs: ``[(title, node labels, edges (i, j,
        op))]`` in topological order (:mod:`nasntk.cellsvg`); ``[]`` for other spaces."""
        return []

    def describe(self, spec: Spec) -> str:
        """One line for tables (defaults to the text form)."""
        return self.format(spec)

    def key(self, spec: Spec) -> str:
        """A canonical string key of a spec: equal architectures give equal keys."""
        return json.dumps(self.validate(spec), sort_keys=True, separators=(",", ":"))

    def parse_any(self, text: str) -> Spec:
        """Parse ``text`` as JSON when it looks like an object, else as the compact text form."""
        text = text.strip()
        if text.startswith("{"):
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                raise NasntkError(f"{self.name}: spec is not valid JSON: {exc.msg}") from None
            return self.validate(obj)
        return self.parse(text)

    def params(
        self, spec: Spec, *, num_classes: int = 10, in_chans: int = 3, img_size: int = 32
    ) -> int:
        """Number of trainable parameters of the built network (built on the meta device)."""
        with torch.device("meta"):
            model = self.build(spec, num_classes=num_classes, in_chans=in_chans, img_size=img_size)
        return sum(p.numel() for p in model.parameters() if p.requires_grad)

    def flops(
        self, spec: Spec, *, num_classes: int = 10, in_chans: int = 3, img_size: int = 32
    ) -> int:
        """FLOPs of one forward pass on one image, from ``torch.utils.flop_counter``.

        Counted on the meta device (no real arithmetic), so this is cheap even for large networks.
        Parameters are counted as constants (``requires_grad`` off): the counter's module tracker
        cannot follow a parameter passed between modules inside a tuple (timm's PiT).
        """
        from torch.utils.flop_counter import FlopCounterMode

        with torch.device("meta"):
            model = self.build(spec, num_classes=num_classes, in_chans=in_chans, img_size=img_size)
            model.eval().requires_grad_(False)
            x = torch.empty(1, in_chans, img_size, img_size)
            counter = FlopCounterMode(display=False)
            with counter, torch.no_grad():
                model(x)
        return int(counter.get_total_flops())


def option_defaults(space: type[SearchSpace]) -> dict[str, Any]:
    """The constructor options of a space class and their defaults (``nasntk spaces`` shows them)."""
    params = inspect.signature(space.__init__).parameters.values()
    return {
        p.name: p.default
        for p in params
        if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }


def structure_key(space: SearchSpace, spec: Spec) -> str:
    """A key that is equal iff two specs build the same module tree.

    The network is built on the meta device at the default sizes; its ``repr`` (every layer with
    its channels, kernels, groups, strides and activations) and every parameter's name and shape
    are hashed. Spaces where different specs can give the same network (e.g. RegNet's ``wa``, a
    width multiplier) use it as :meth:`SearchSpace.key`.
    """
    with torch.device("meta"):
        model = space.build(spec, num_classes=10, in_chans=3, img_size=32)
    shapes = [(name, tuple(p.shape)) for name, p in model.named_parameters()]
    text = repr(model) + repr(shapes)
    return f"{space.name}:" + hashlib.sha1(text.encode()).hexdigest()


# ------------------------------------------------------------------------------------------------
# Tools for spaces whose spec is a flat record of typed fields (``key=value,key=value`` text form)
# ------------------------------------------------------------------------------------------------
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclass(frozen=True)
class Field:
    """One typed field of a flat spec (like a field of a timm config dataclass).

    ``kind`` is ``"int"``, ``"float"``, ``"bool"``, ``"str"`` or ``"ints"`` (a list of ints, typed
    ``2.2.2.2`` in the text form). Numbers must lie in ``[low, high]`` (each element, for
    ``"ints"``); ``"str"`` values must be one of ``choices``; ``"ints"`` lengths lie in ``length``;
    floats are rounded to ``digits`` decimals so that specs compare exactly.
    """

    name: str
    kind: str
    default: Any
    help: str = ""
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] | None = None
    length: tuple[int, int] | None = None
    digits: int = 4

    def dimension(self) -> Dimension:
        """The documented dimension of this field (full valid range, default)."""
        if self.choices is not None:
            rng = " | ".join(str(c) for c in self.choices)
        elif self.kind == "bool":
            rng = "0 | 1"
        elif self.kind == "ints":
            lo, hi = self.length or (1, None)
            count = str(lo) if lo == hi else f"{lo}..{hi}"
            rng = f"{count} values in [{self.low}, {self.high}], typed a.b.c"
        else:
            rng = f"[{self.low}, {self.high}]"
        default = "required" if self.default is None else f"default {self.text(self.default)}"
        return Dimension(self.name, f"{rng} ({default})", self.help)

    def text(self, value: Any) -> str:
        """The value as typed in the text form."""
        if self.kind == "bool":
            return "1" if value else "0"
        if self.kind == "ints":
            return ".".join(str(v) for v in value)
        return str(value)

    def coerce(self, space: str, value: Any) -> Any:
        """The canonical value, or :class:`NasntkError` naming the field."""
        where = f"{space}: field {self.name!r}"
        if isinstance(value, str) and self.kind != "str":
            value = self._from_text(where, value.strip())
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise NasntkError(f"{where} must be a boolean (0/1), got {value!r}")
            return value
        if self.kind == "str":
            if value not in (self.choices or ()):
                raise NasntkError(
                    f"{where} is {value!r}; choose from {', '.join(map(str, self.choices or ()))}"
                )
            return value
        if self.kind == "ints":
            if not isinstance(value, (list, tuple)):
                raise NasntkError(f"{where} must be a list of integers, got {value!r}")
            lo, hi = self.length or (1, 1 << 30)
            if not lo <= len(value) <= hi:
                raise NasntkError(f"{where} must have {lo}..{hi} values, got {len(value)}")
            return [self._number(f"{where}[{i}]", v, int) for i, v in enumerate(value)]
        return self._number(where, value, int if self.kind == "int" else float)

    def _number(self, where: str, value: Any, typ: type) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise NasntkError(f"{where} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise NasntkError(f"{where} must be a finite number, got {value!r}")
        if typ is int:
            if isinstance(value, float) and not value.is_integer():
                raise NasntkError(f"{where} must be an integer, got {value!r}")
            value = int(value)
        else:
            value = round(float(value), self.digits)
        if self.choices is not None and self.kind != "ints" and value not in self.choices:
            raise NasntkError(
                f"{where} is {value!r}; choose from {', '.join(map(str, self.choices))}"
            )
        if (self.low is not None and value < self.low) or (
            self.high is not None and value > self.high
        ):
            raise NasntkError(f"{where} is {value!r}; must lie in [{self.low}, {self.high}]")
        return value

    def _from_text(self, where: str, text: str) -> Any:
        try:
            if self.kind == "bool":
                if text.lower() in _TRUE + _FALSE:
                    return text.lower() in _TRUE
                raise ValueError
            if self.kind == "ints":
                return [int(t) for t in text.split(".")]
            return int(text) if self.kind == "int" else float(text)
        except ValueError:
            raise NasntkError(f"{where}: cannot read {text!r} as {self.kind}") from None


def parse_kv(space: str, text: str) -> dict[str, str]:
    """Split ``key=value,key=value`` into a dict of raw strings (duplicates are an error)."""
    out: dict[str, str] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or not key:
            raise NasntkError(f"{space}: cannot read {part.strip()!r}; expected key=value")
        if key in out:
            raise NasntkError(f"{space}: field {key!r} given twice")
        out[key] = value.strip()
    return out


class FieldSpace(SearchSpace):
    """A space whose spec is a flat record of :class:`Field` values.

    Provides :meth:`validate` (missing fields take their defaults; unknown fields, wrong types
    and out-of-range values are rejected naming the field; :meth:`check` adds cross-field rules),
    :meth:`parse` / :meth:`format` for the ``key=value,key=value`` text form, and
    :attr:`dimensions` from the fields. Subclasses implement :meth:`suggest` and :meth:`build`.
    """

    fields: tuple[Field, ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "fields" in cls.__dict__ and "dimensions" not in cls.__dict__:
            cls.dimensions = tuple(f.dimension() for f in cls.fields)

    def check(self, spec: Spec) -> None:
        """Cross-field rules; raise :class:`NasntkError` naming the field (default: none)."""

    def validate(self, spec: Any) -> Spec:
        if isinstance(spec, str):
            return self.parse(spec)
        if not isinstance(spec, dict):
            raise NasntkError(f"{self.name}: spec must be a dict of fields, got {spec!r}")
        known = {f.name for f in self.fields}
        extra = sorted(set(spec) - known)
        if extra:
            raise NasntkError(
                f"{self.name}: unknown field(s) {', '.join(map(repr, extra))}; "
                f"fields are {', '.join(f.name for f in self.fields)}"
            )
        out = {f.name: f.coerce(self.name, spec.get(f.name, f.default)) for f in self.fields}
        self.check(out)
        return out

    def parse(self, text: str) -> Spec:
        text = text.strip()
        if text.startswith("{"):
            return self.parse_any(text)
        return self.validate(parse_kv(self.name, text))

    def format(self, spec: Spec) -> str:
        spec = self.validate(spec)
        return ",".join(f"{f.name}={f.text(spec[f.name])}" for f in self.fields)


def cell_network_blocks(net: Any) -> list[str]:
    """The blocks of a cell network (``stem`` then the items of ``cells``): the stem and every
    cell or reduction block with parameters, as AZ-NAS reads NAS-Bench-201 (its parameter-free
    max-pool downsamplings, in NAS-Bench-101, are not blocks)."""
    return ["stem"] + [
        f"cells.{i}" for i, cell in enumerate(net.cells) if any(True for _ in cell.parameters())
    ]
