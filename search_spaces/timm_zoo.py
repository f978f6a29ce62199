"""The timm model zoo as a search space: one categorical over registered model names.

Candidates are ``timm.list_models(pattern, exclude_filters=exclude)`` whose parameter count
(built on the meta device with ``num_classes`` classes and 3 input channels: no memory, no
arithmetic) lies in ``[min_params, max_params]``. Counting every model of timm takes a few
minutes on one CPU core, so counts are cached in memory and on disk (a JSON file per timm
version in ``$NASNTK_CACHE``, default ``~/.cache/nasntk``; set ``NASNTK_CACHE=`` to disable).

Spec ``{"model": "<timm name>"}`` (a pretrained tag such as ``.a1_in1k`` is dropped: weights are
never loaded); text form: the model name. Building uses ``timm.create_model(name,
pretrained=False, num_classes=..., in_chans=...)`` (plus ``img_size=`` for models with a fixed
input size such as ViTs) and then runs one image through the network in eval mode; a model that
cannot be built for, or cannot run at, the data's channels and resolution raises
:class:`NasntkError` saying why, which the search records as a failed trial.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import timm
import torch
from timm.models import get_pretrained_cfg, is_model, split_model_name_tag
from torch import nn

from nasntk.errors import NasntkError
from nasntk.search_spaces.base import Dimension, SearchSpace, Spec, check_build_args

_COUNTS: dict[str, int | str] = {}  # "name|num_classes|in_chans" -> params, or why it failed


def _cache_file() -> Path | None:
    root = os.environ.get("NASNTK_CACHE", str(Path.home() / ".cache" / "nasntk"))
    return Path(root) / f"timm_params-{timm.__version__}.json" if root else None


def _load_cache() -> None:
    path = _cache_file()
    if path is not None and path.exists():
        try:
            _COUNTS.update(
                {k: v for k, v in json.loads(path.read_text()).items() if k not in _COUNTS}
            )
        except (OSError, ValueError):
            pass  # a broken cache is only a slower start


def _save_cache() -> None:
    path = _cache_file()
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(_COUNTS, sort_keys=True))
        tmp.replace(path)
    except OSError:
        pass  # read-only home: counts stay in memory


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip().splitlines()[0]
    return text if len(text) <= 200 else text[:197] + "..."


def param_count(name: str, *, num_classes: int = 10, in_chans: int = 3) -> int | str:
    """Parameters of timm model ``name`` (built on the meta device), or a one-line reason it fails."""
    key = f"{name}|{num_classes}|{in_chans}"
    if key not in _COUNTS:
        try:
            with torch.device("meta"):
                model = timm.create_model(
                    name, pretrained=False, num_classes=num_classes, in_chans=in_chans
                )
            _COUNTS[key] = sum(p.numel() for p in model.parameters())
        except Exception as exc:  # any model that cannot be built is excluded, with the reason
            _COUNTS[key] = _one_line(exc)
    return _COUNTS[key]


class TimmZooSpace(SearchSpace):
    """Registered timm models, filtered by name pattern and parameter budget.

    Options: ``pattern`` (fnmatch wildcard(s), comma-separated, default ``*``), ``exclude``
    (wildcards to drop), ``max_params`` (5,000,000), ``min_params`` (0), ``num_classes`` (10, for
    counting). Sampled: ``model`` (categorical over :attr:`candidates`). After the candidates are
    computed, :attr:`excluded` maps each model left out to why (over budget, or cannot be built).
    """

    name = "timm"

    def __init__(
        self,
        pattern: str = "*",
        exclude: str = "",
        max_params: float | None = 5_000_000,
        min_params: float = 0,
        num_classes: int = 10,
    ) -> None:
        self.pattern = [p.strip() for p in str(pattern).split(",") if p.strip()] or ["*"]
        self.exclude = [p.strip() for p in str(exclude).split(",") if p.strip()]
        self.max_params = None if max_params is None else float(max_params)
        self.min_params, self.num_classes = float(min_params), int(num_classes)
        self._candidates: list[str] | None = None
        self.excluded: dict[str, str] = {}
        budget = (
            f"{min_params:g}..{max_params:g}" if max_params is not None else f">= {min_params:g}"
        )
        self.dimensions = (
            Dimension(
                "model",
                f"timm models matching {','.join(self.pattern)!r}"
                + (f" except {','.join(self.exclude)!r}" if self.exclude else "")
                + f" with {budget} parameters",
                "a registered timm architecture, built untrained",
            ),
        )

    @property
    def candidates(self) -> list[str]:
        """Model names within the pattern and the budget (computed once, then cached)."""
        if self._candidates is None:
            names = timm.list_models(self.pattern, exclude_filters=self.exclude or "")
            _load_cache()
            known = len(_COUNTS)
            out = []
            for name in names:
                n = param_count(name, num_classes=self.num_classes)
                if isinstance(n, str):
                    self.excluded[name] = f"cannot be built: {n}"
                elif n < self.min_params or (self.max_params is not None and n > self.max_params):
                    self.excluded[name] = f"{n:,} parameters, outside the budget"
                else:
                    out.append(name)
            if len(_COUNTS) > known:
                _save_cache()
            self._candidates = out
        return self._candidates

    def suggest(self, trial: Any) -> Spec:
        if not self.candidates:
            raise NasntkError(
                f"timm: no model matches {','.join(self.pattern)!r} within the parameter budget "
                f"({len(self.excluded)} matched but were excluded)"
            )
        return {"model": trial.suggest_categorical("model", self.candidates)}

    def validate(self, spec: Any) -> Spec:
        if isinstance(spec, str):
            return self.parse(spec)
        if not isinstance(spec, dict):
            raise NasntkError(
                f"timm: spec must be a dict like {{'model': 'resnet18'}}, got {spec!r}"
            )
        extra = sorted(set(spec) - {"model"})
        if extra:
            raise NasntkError(f"timm: unknown field(s) {extra} in spec; expected only 'model'")
        name = spec.get("model")
        if not isinstance(name, str) or not name:
            raise NasntkError(f"timm: field 'model' must be a timm model name, got {name!r}")
        name = split_model_name_tag(name.strip())[0]
        if not is_model(name):
            raise NasntkError(f"timm: field 'model' is {name!r}, not a registered timm model")
        return {"model": name}

    def parse(self, text: str) -> Spec:
        text = text.strip()
        if text.startswith("{"):
            return self.parse_any(text)
        if text.startswith("model="):
            text = text[len("model=") :]
        return self.validate({"model": text})

    def format(self, spec: Spec) -> str:
        return self.validate(spec)["model"]

    def build(
        self, spec: Spec, *, num_classes: int, in_chans: int = 3, img_size: int = 32
    ) -> nn.Module:
        return self._create(spec, num_classes, in_chans, img_size)[0]

    def rebuild(
        self, spec: Spec, *, num_classes: int = 10, in_chans: int = 3, img_size: int = 32
    ) -> dict[str, Any]:
        """``timm.create_model`` with the arguments :meth:`build` used."""
        name = self.validate(spec)["model"]
        kwargs = {"pretrained": False, "num_classes": num_classes, "in_chans": in_chans}
        kwargs.update(self._create(spec, num_classes, in_chans, img_size)[1])
        args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        code = f"import timm\nmodel = timm.create_model({name!r}, {args})\n"
        return {"code": code, "model_name": name, "kwargs": kwargs}

    def _create(
        self, spec: Spec, num_classes: int, in_chans: int, img_size: int
    ) -> tuple[nn.Module, dict[str, int]]:
        """The model and the extra ``create_model`` arguments that made it run at this size."""
        name = self.validate(spec)["model"]
        check_build_args(self.name, num_classes, in_chans, img_size)
        where = f"timm: {name} at {in_chans}x{img_size}x{img_size}"
        cfg = get_pretrained_cfg(name)
        # fixed-input-size models (ViTs, ...) take img_size; others get it only if they fail
        fixed = cfg is not None and cfg.fixed_input_size
        attempts: list[dict[str, int]] = (
            [{"img_size": img_size}] if fixed else [{}, {"img_size": img_size}]
        )
        reason = ""
        for extra in attempts:
            try:
                model = timm.create_model(
                    name, pretrained=False, num_classes=num_classes, in_chans=in_chans, **extra
                )
            except Exception as exc:
                reason = reason or f"cannot be built: {_one_line(exc)}"
                continue
            why = _dry_run(model, in_chans, img_size, num_classes)
            if why is None:
                return model, extra
            reason = reason or f"cannot run: {why}"
        raise NasntkError(f"{where} {reason}")


def _dry_run(model: nn.Module, in_chans: int, img_size: int, num_classes: int) -> str | None:
    """Run one image through ``model`` in eval mode; ``None`` if it gives [1, classes] logits."""
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    training = model.training
    try:
        model.eval()
        with torch.no_grad():
            out = model(torch.zeros(1, in_chans, img_size, img_size, device=device))
    except Exception as exc:
        return _one_line(exc)
    finally:
        model.train(training)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (1, num_classes):
        return f"output is not [1, num_classes] logits (got {getattr(out, 'shape', type(out))})"
    return None
