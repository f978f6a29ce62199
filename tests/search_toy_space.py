"""Tiny search spaces for the search tests (a helper module, not a test file).

``ToySpace``: an MLP family, depth in {1, 2} x width in {4, 8, 16} x act in {relu, tanh} (12
specs), cheap enough to score on N = 8..16 digits images in milliseconds.

Test hooks, through environment variables so that they also reach subprocesses and spawned
workers (the CLI uses ``--space search_toy_space:ToySpace`` with ``PYTHONPATH=tests``):

- ``TOY_SPACE_LOG=PATH``: every real (non-meta) build appends ``<pid> <spec key>`` to PATH, an
  independent record of which specs were built for scoring and how often.
- ``TOY_SPACE_HOLD=K:PATH``: the K-th real build of a process (logged first) creates PATH and
  then waits until a signal stops the process, so that a test can interrupt a search at a moment
  when a trial is surely inside its objective (no timing window).
- ``TOY_SPACE_PAUSE=K:DIR``: the K-th real build of a process creates ``DIR/paused.<pid>`` and
  waits until ``DIR/go`` exists, then goes on, so that a test can take the database away while
  a candidate is surely being scored (its results are then written during the outage).
- ``TOY_SPACE_BARRIER=N:DIR``: the first real build of a process marks DIR and waits until N
  processes have marked it, so that N searches surely run side by side (each has planned its
  share before any trial of the others completes).

``FlakySpace``: the same family, but depth 2 at width 16 raises in ``build`` and act "zero"
(an all-zero network) has a zero, singular kernel.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import torch
from torch import nn

from nasntk.errors import NasntkError
from nasntk.search_spaces import Dimension, SearchSpace, Spec

DEPTHS = (1, 2)
WIDTHS = (4, 8, 16)
ACTS = ("relu", "tanh")
#: Search options that make a toy trial take milliseconds: N = 12 digits images at 8x8.
N, IMG = 12, 8
TINY = {"n_kernel": N, "img_size": IMG}


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


class Zero(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 0.0


def _is_meta() -> bool:
    return torch.empty(0).device.type == "meta"


_BUILDS = [0]  # real builds in this process
_BARRIER_PASSED = [False]


def _barrier_if_asked() -> None:
    """``TOY_SPACE_BARRIER=N:DIR``: at the first real build, wait until N processes are here."""
    barrier = os.environ.get("TOY_SPACE_BARRIER", "")
    if not barrier or _BARRIER_PASSED[0]:
        return
    _BARRIER_PASSED[0] = True
    n, _, folder = barrier.partition(":")
    os.makedirs(folder, exist_ok=True)
    open(os.path.join(folder, str(os.getpid())), "w").close()
    deadline = time.monotonic() + 60
    while len(os.listdir(folder)) < int(n) and time.monotonic() < deadline:
        time.sleep(0.01)


def _kth_build(variable: str, counter: list[int]) -> str | None:
    """``VARIABLE=K:PATH``: PATH when this is the process's K-th real build (counted in
    ``counter``), else None."""
    value = os.environ.get(variable, "")
    if not value:
        return None
    k, _, path = value.partition(":")
    counter[0] += 1
    return path if counter[0] == int(k) else None


def _hold_if_asked() -> None:
    """``TOY_SPACE_HOLD=K:PATH``: at the K-th real build, say so through PATH and wait."""
    path = _kth_build("TOY_SPACE_HOLD", _BUILDS)
    if path is None:
        return
    with open(path + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.replace(path + ".tmp", path)  # appears whole: the test may signal as soon as it exists
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # a signal ends this wait (KeyboardInterrupt or death)
        time.sleep(0.01)
    raise RuntimeError("toy: held for 120 s and no signal came")


_PAUSE_BUILDS = [0]


def _pause_if_asked() -> None:
    """``TOY_SPACE_PAUSE=K:DIR``: at the K-th real build, say so in DIR and wait for DIR/go."""
    folder = _kth_build("TOY_SPACE_PAUSE", _PAUSE_BUILDS)
    if folder is None:
        return
    open(os.path.join(folder, f"paused.{os.getpid()}"), "w").close()
    deadline = time.monotonic() + 120
    while not os.path.exists(os.path.join(folder, "go")):
        if time.monotonic() > deadline:
            raise RuntimeError("toy: paused for 120 s and no go came")
        time.sleep(0.01)


class ToySpace(SearchSpace):
    """MLP: flatten -> [Linear(width) -> act] x depth -> Linear(num_classes)."""

    name = "toy"
    acts: tuple[str, ...] = ACTS
    dimensions = (
        Dimension("depth", "1 | 2", "hidden layers"),
        Dimension("width", "4 | 8 | 16", "units per hidden layer"),
        Dimension("act", "relu | tanh", "activation"),
    )

    def suggest(self, trial: Any) -> Spec:
        return {
            "depth": trial.suggest_categorical("depth", list(DEPTHS)),
            "width": trial.suggest_categorical("width", list(WIDTHS)),
            "act": trial.suggest_categorical("act", list(self.acts)),
        }

    def validate(self, spec: Any) -> Spec:
        if not isinstance(spec, dict):
            raise NasntkError(f"toy: spec must be a dict, got {type(spec).__name__}")
        unknown = set(spec) - {"depth", "width", "act"}
        if unknown:
            raise NasntkError(f"toy: unknown field(s) {sorted(unknown)}")
        try:
            depth, width, act = int(spec["depth"]), int(spec["width"]), str(spec["act"])
        except (KeyError, TypeError, ValueError) as exc:
            raise NasntkError(f"toy: malformed spec {spec!r}: {exc}") from None
        if depth not in DEPTHS or width not in WIDTHS or act not in self.acts:
            raise NasntkError(f"toy: spec out of range: {spec!r}")
        return {"depth": depth, "width": width, "act": act}

    def parse(self, text: str) -> Spec:
        parts = text.strip().split("-")
        if len(parts) != 3 or not parts[0].startswith("d") or not parts[1].startswith("w"):
            raise NasntkError(f"toy: text {text!r} must look like d2-w8-relu")
        try:
            return self.validate(
                {"depth": int(parts[0][1:]), "width": int(parts[1][1:]), "act": parts[2]}
            )
        except ValueError:
            raise NasntkError(f"toy: text {text!r} must look like d2-w8-relu") from None

    def format(self, spec: Spec) -> str:
        s = self.validate(spec)
        return f"d{s['depth']}-w{s['width']}-{s['act']}"

    def _act(self, name: str) -> nn.Module:
        return {"relu": nn.ReLU(), "tanh": nn.Tanh(), "zero": Zero()}[name]

    def build(
        self, spec: Spec, *, num_classes: int, in_chans: int = 3, img_size: int = 32
    ) -> nn.Module:
        spec = self.validate(spec)
        if not _is_meta():
            log = os.environ.get("TOY_SPACE_LOG")
            if log:  # logged before the hold: a logged, unscored build is one in flight
                with open(log, "a") as f:
                    f.write(
                        f"{os.getpid()} {json.dumps(spec, sort_keys=True, separators=(',', ':'))}\n"
                    )
            _barrier_if_asked()
            _hold_if_asked()
            _pause_if_asked()
        layers: list[nn.Module] = [nn.Flatten()]
        features = in_chans * img_size * img_size
        for _ in range(spec["depth"]):
            layers += [nn.Linear(features, spec["width"]), self._act(spec["act"])]
            features = spec["width"]
        layers.append(nn.Linear(features, num_classes))
        return nn.Sequential(*layers)


class FlakySpace(ToySpace):
    """ToySpace plus failures: depth 2 at width 16 cannot be built; act 'zero' has K = 0."""

    name = "flaky"
    acts = ("relu", "tanh", "zero")

    def build(
        self, spec: Spec, *, num_classes: int, in_chans: int = 3, img_size: int = 32
    ) -> nn.Module:
        s = self.validate(spec)
        if s["depth"] == 2 and s["width"] == 16:
            raise RuntimeError("toy: cannot build depth 2 at width 16")
        return super().build(s, num_classes=num_classes, in_chans=in_chans, img_size=img_size)


def expected_failure(spec: Spec) -> str | None:
    """The failure FlakySpace should produce for a spec, by construction (None = scores fine)."""
    if spec["depth"] == 2 and spec["width"] == 16:
        return "build"
    if spec["act"] == "zero":
        return "non-finite"
    return None
