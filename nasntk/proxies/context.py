"""One model at one initialisation on one batch: what several scores share, computed once.

The context caches the pNTK K (N×N, float64, one per BatchNorm mode), its spectrum, its centred
spectrum, the kernel-regression result, the cross-entropy gradients and whatever a score family
stores with :meth:`Context.cached` — so asking for every pNTK score costs one kernel, and every
AZ-NAS term one forward pass. Failures (:class:`ScoreUndefined`) are cached too, so a singular
kernel is computed and diagnosed once for all the scores that use it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Optional, Union

import numpy as np
import torch
from torch import nn

from nasntk import spectral
from nasntk.errors import NasntkError
from nasntk.spectral import ScoreUndefined

__all__ = ["MEASURE_OPTIONS", "SCORE_OPTIONS", "Context", "check_measure_options"]

#: Options of the measured scores (:mod:`nasntk.proxies.hardware`), with their defaults: the batch
#: of ``latency_batch_ms``, the timed blocks of a latency, the batch of ``train_memory_mb``.
MEASURE_OPTIONS: dict[str, int] = {"latency_batch": 32, "latency_repeats": 5, "memory_batch": 64}
#: Options of :func:`nasntk.proxies.compute` read by the scores, with their defaults.
SCORE_OPTIONS: dict[str, Any] = {"train_frac": 0.5, "ridge": 1e-3, **MEASURE_OPTIONS}


def check_measure_options(options: Mapping[str, Any]) -> None:
    """NasntkError unless each of :data:`MEASURE_OPTIONS` in ``options`` is a positive integer."""
    for key in MEASURE_OPTIONS:
        value = options.get(key, 1)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise NasntkError(f"{key} must be a positive integer, got {value!r}")


def _has_batchnorm(model: nn.Module) -> bool:
    from nasntk.kernels.prepare import batchnorms

    return bool(batchnorms(model))


def _pntk(model: nn.Module, x: torch.Tensor, **opts: Any) -> torch.Tensor:
    from nasntk.kernels import pntk

    return pntk(model, x, **opts)


class Context:
    """One model at one initialisation on one batch: what the scores share, computed lazily once.

    ``kernel_fn(model, x, bn=, dtype=, device=, **kernel_opts)`` defaults to
    ``nasntk.kernels.pntk``. ``reference`` maps a score name to its values on a reference sample
    of candidates (a study's, see :mod:`nasntk.proxies.aggregate`): aggregates turn each of their
    terms into a percentile against it. ``blocks`` optionally names the modules whose outputs are
    the network's blocks (AZ-NAS); by default they are found by a generic rule. ``known`` gives
    scores the caller has already counted (e.g. ``{"params": …, "flops": …}`` from the space).
    ``measure`` overrides :data:`MEASURE_OPTIONS` (the batches of the measured scores).
    """

    def __init__(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        num_classes: int,
        *,
        bn: str = "frozen",
        device: Union[str, torch.device] = "cpu",
        kernel_opts: Optional[dict[str, Any]] = None,
        train_frac: float = SCORE_OPTIONS["train_frac"],
        ridge: float = SCORE_OPTIONS["ridge"],
        kernel_fn: Optional[Callable[..., torch.Tensor]] = None,
        reference: Optional[Mapping[str, np.ndarray]] = None,
        blocks: Optional[list[str]] = None,
        known: Optional[Mapping[str, float]] = None,
        measure: Optional[Mapping[str, int]] = None,
    ) -> None:
        self.model, self.x, self.y, self.num_classes = model, x, y, int(num_classes)
        self.bn, self.device = bn, device
        self.kernel_opts = dict(kernel_opts or {})
        self.train_frac, self.ridge = float(train_frac), float(ridge)
        self.kernel_fn = kernel_fn or _pntk
        self.reference = dict(reference or {})
        self.blocks = blocks
        self.measure = {**MEASURE_OPTIONS, **(measure or {})}
        # scores computed so far in this context; ``known`` ones (a space's exact params / FLOPs
        # counts, already made for the budget check) are not computed again
        self.values: dict[str, float] = {k: float(v) for k, v in (known or {}).items()}
        self.reasons: dict[str, str] = {}  # why a computed score is undefined
        self._memo: dict[str, Any] = {}

    def cached(self, key: str, make: Callable[[], Any]) -> Any:
        """``make()`` once per context under ``key``; a ScoreUndefined it raises is kept too."""
        if key not in self._memo:
            try:
                self._memo[key] = make()
            except ScoreUndefined as exc:
                self._memo[key] = exc
        value = self._memo[key]
        if isinstance(value, ScoreUndefined):
            raise value
        return value

    def kernel(self, bn: Optional[str] = None) -> np.ndarray:
        """The pNTK of the batch, N×N float64 (non-finite entries → ScoreUndefined), with
        BatchNorm in mode ``bn`` (default: the context's). One kernel per mode, computed once;
        without BatchNorm layers every mode gives the context's kernel."""
        mode = bn or self.bn
        if mode != self.bn and not _has_batchnorm(self.model):
            mode = self.bn

        def make() -> np.ndarray:
            k = self.kernel_fn(
                self.model,
                self.x,
                bn=mode,
                dtype=torch.float64,
                device=self.device,
                **self.kernel_opts,
            )
            return spectral.as_matrix(k)

        return self.cached("kernel" if mode == self.bn else f"kernel_{mode}", make)

    def eigenvalues(self, bn: Optional[str] = None) -> np.ndarray:
        """Eigenvalues of :meth:`kernel` in mode ``bn``, float64, ascending."""
        mode = bn or self.bn
        return self.cached(f"eigs_{mode}", lambda: spectral.eigenvalues(self.kernel(mode)))

    def centered_eigenvalues(self) -> np.ndarray:
        return self.cached("ceigs", lambda: spectral.centered_eigenvalues(self.kernel()))

    def loss_gradients(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(W, ∂L/∂W) of the cross-entropy, shared by snip and grad_norm."""
        from nasntk.proxies import classic

        return self.cached(
            "loss_grads", lambda: classic.loss_gradients(self.model, self.x, self.y, self.bn)
        )

    def regression(self) -> dict[str, float]:
        return self.cached(
            "krr",
            lambda: spectral.kernel_regression_scores(
                self.kernel(),
                self.y,
                self.num_classes,
                train_frac=self.train_frac,
                ridge=self.ridge,
            ),
        )

    def live_params(self) -> float:
        """:func:`nasntk.proxies.classic.live_params` of the model, once."""
        from nasntk.proxies import classic

        return self.cached("live_params", lambda: classic.live_params(self.model, self.x))
