"""The search-space contract: what the search needs from a space, and nothing more.

A *spec* is a plain, JSON-serialisable dict that fully describes one architecture. Specs are
canonical: two specs describe the same network iff they compare equal (so the search can skip
duplicates by comparing ``json.dumps(spec, sort_keys=True)``).

Every space also has a compact *text form* users type on the command line
(``space.parse(text) -> spec`` and ``space.format(spec) -> text``; ``parse(format(s)) == s``).
"""

from __future__ import annotations

import abc
import json
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from nasntk.errors import NasntkError

Spec = dict[str, Any]


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
    def build(self, spec: Spec, *, num_classes: int, in_chans: int = 3, img_size: int = 32) -> nn.Module:
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

    def params(self, spec: Spec, *, num_classes: int = 10, in_chans: int = 3, img_size: int = 32) -> int:
        """Number of trainable parameters of the built network (built on the meta device)."""
        with torch.device("meta"):
            model = self.build(spec, num_classes=num_classes, in_chans=in_chans, img_size=img_size)
        return sum(p.numel() for p in model.parameters() if p.requires_grad)

    def flops(self, spec: Spec, *, num_classes: int = 10, in_chans: int = 3, img_size: int = 32) -> int:
        """FLOPs of one forward pass on one image, from ``torch.utils.flop_counter``.

        Counted on the meta device (no real arithmetic), so this is cheap even for large networks.
        """
        from torch.utils.flop_counter import FlopCounterMode

        with torch.device("meta"):
            model = self.build(spec, num_classes=num_classes, in_chans=in_chans, img_size=img_size)
            model.eval()
            x = torch.empty(1, in_chans, img_size, img_size)
            counter = FlopCounterMode(display=False)
            with counter, torch.no_grad():
                model(x)
        return int(counter.get_total_flops())
