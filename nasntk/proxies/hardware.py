"""Measured hardware costs on the scoring device: forward latency and the memory of a training step.

Unlike every other score these are measurements, not functions of the weights: they depend on
the device, its load and the torch threads, and vary from run to run (experiments/README.md
§8 measures how much). Their ``needs`` include ``"measure"``; a search measures them once per
candidate, right after the build and before any kernel, so that ``--max-latency-ms`` and
``--max-train-memory-mb`` prune a candidate before it costs a pNTK.

``latency_ms``
    median time (ms) of one forward pass at batch 1, eval mode, ``torch.no_grad``: the CPU time
    of the calling thread on the CPU with one torch thread, else wall time
    (:func:`forward_latency_ms`).
``latency_batch_ms``
    the same for one forward pass of a batch of ``latency_batch`` images (default 32): the time
    of the whole batch, not per image.
``train_memory_mb``
    peak memory (MiB, 2²⁰ bytes) of one training step — forward, cross-entropy, backward, SGD
    with momentum 0.9 (the :mod:`nasntk.training` recipe) — on ``memory_batch`` images (default
    64), in train mode. See :func:`train_memory_bytes` for how it is measured on CUDA and
    counted on the CPU.

The images are the batch the scores see (its size, channels and resolution are the search's),
repeated cyclically when the batch asked for is larger than it. The options are score options
(:data:`nasntk.proxies.context.MEASURE_OPTIONS`): ``proxies.compute(..., latency_batch=8)``,
``nasntk search --latency-batch 8 --memory-batch 128``. The threads a latency is measured with
are torch's (``torch.get_num_threads()`` at the time); a search stores them with the batch sizes
in each trial's ``hardware`` record (:func:`facts`).
"""

from __future__ import annotations

import copy
import math
import statistics
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Union

import torch
import torch.nn.functional as F
from torch import nn

from nasntk.proxies.classic import forward_mode, logits
from nasntk.proxies.context import MEASURE_OPTIONS
from nasntk.proxies.registry import register

if TYPE_CHECKING:
    from nasntk.proxies.context import Context

__all__ = [
    "MEASURED",
    "clock",
    "facts",
    "forward_latency_ms",
    "repeat_to",
    "time_blocks",
    "train_memory_bytes",
]

HARDWARE = "hardware"
#: The scores of this family (a search measures them before any kernel).
MEASURED = ("latency_ms", "latency_batch_ms", "train_memory_mb")
#: Untimed forward passes before the timing (lazy allocations, oneDNN / cuDNN set-up).
WARMUP_PASSES = 3
#: Each timed block repeats the forward pass until it lasts at least this long (seconds), so that
#: a sub-millisecond network is not timed at the resolution of the clock and the call overhead.
MIN_BLOCK_S = 0.005
#: The optimizer of the measured training step (nasntk.training's SGD recipe).
SGD_LR, SGD_MOMENTUM = 0.05, 0.9
MIB = 2**20


def repeat_to(x: torch.Tensor, n: int) -> torch.Tensor:
    """``n`` rows of ``x``, cycling through its rows (the first ``n`` when it has enough)."""
    if x.shape[0] >= n:
        return x[:n]
    return x[torch.arange(n, device=x.device) % x.shape[0]]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_blocks(
    model: nn.Module, x: torch.Tensor, *, repeats: int = MEASURE_OPTIONS["latency_repeats"]
) -> list[tuple[float, float]]:
    """Seconds of one pass of ``model(x)`` in each of ``repeats`` timed blocks: (wall, CPU time
    of the calling thread), eval mode, ``torch.no_grad``, on ``x``'s device.

    After :data:`WARMUP_PASSES` untimed passes, each block runs ``k`` back-to-back passes, ``k``
    chosen from the last warm-up pass so that a block lasts at least :data:`MIN_BLOCK_S`; a
    block's values are its times divided by ``k``. On CUDA the device is synchronised around
    every block. The thread's CPU time (``time.thread_time``) leaves out the time the thread
    waited for a core; it is the latency only with one torch thread on the CPU.
    """
    device = x.device
    with forward_mode(model, "eval"), torch.no_grad():
        for _ in range(WARMUP_PASSES):
            _sync(device)
            t0 = time.perf_counter()
            model(x)
            _sync(device)
            last = time.perf_counter() - t0
        k = max(1, math.ceil(MIN_BLOCK_S / max(last, 1e-9)))
        out = []
        for _ in range(repeats):
            _sync(device)
            t0, c0 = time.perf_counter(), time.thread_time()
            for _ in range(k):
                model(x)
            _sync(device)
            out.append(((time.perf_counter() - t0) / k, (time.thread_time() - c0) / k))
    return out


def clock(device: Union[str, torch.device]) -> str:
    """The clock a latency is read from on ``device`` with the current torch threads:
    ``"thread cpu"`` on the CPU with one torch thread, else ``"wall"``."""
    if torch.device(device).type == "cpu" and torch.get_num_threads() == 1:
        return "thread cpu"
    return "wall"


def forward_latency_ms(
    model: nn.Module, x: torch.Tensor, *, repeats: int = MEASURE_OPTIONS["latency_repeats"]
) -> float:
    """Median time (ms) of one pass of ``model(x)`` over the :func:`time_blocks`, eval mode,
    ``torch.no_grad``, on ``x``'s device, read from :func:`clock`.

    On the CPU with one torch thread (a search's workers) the clock is the calling thread's CPU
    time: the time the pass computes on a core it has to itself, which is what a deployment on
    a dedicated core sees; the wall clock adds the time the thread waited while other
    processes had the core, and on a shared machine that waiting, not the network, decides
    the ranking (experiments/README.md §8: with two busy neighbours the wall clock's run-to-run
    spread is 1.7–2.7×, the thread's CPU time 1.1–1.35×). With several threads, or on CUDA,
    the wall clock. The median, not the mean: the slow blocks are other processes.
    """
    col = 1 if clock(x.device) == "thread cpu" else 0
    blocks = time_blocks(model, x, repeats=repeats)
    return 1e3 * statistics.median(b[col] for b in blocks)


def _storages(tensors: Iterator[torch.Tensor]) -> dict[int, int]:
    """{storage address: bytes} of tensors (a storage shared by several counted once)."""
    out = {}
    for t in tensors:
        s = t.untyped_storage()
        out[s.data_ptr()] = s.nbytes()
    return out


def _saved_activation_bytes(model: nn.Module, x: torch.Tensor, exclude: set[int]) -> int:
    """Bytes of the distinct storages autograd saves for backward in ``model(x)`` (train mode),
    storages in ``exclude`` (parameters, buffers, the input) left out."""
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        if s.data_ptr() not in exclude and s.data_ptr() != 0:
            saved[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), torch.enable_grad():
        model(x)
    return sum(saved.values())


def _cuda_step_peak(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    """Peak bytes allocated on ``x``'s CUDA device by a copy of ``model`` and the batch during
    its second training step (the first creates the momentum buffers)."""
    device = x.device
    _sync(device)
    before = torch.cuda.memory_allocated(device)
    net = copy.deepcopy(model).train()
    xb, yb = x.clone(), y.clone()
    trainable = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.SGD(trainable, lr=SGD_LR, momentum=SGD_MOMENTUM) if trainable else None
    peak = 0
    for step in range(2):
        if step == 1:
            _sync(device)
            torch.cuda.reset_peak_memory_stats(device)
        loss = F.cross_entropy(logits(net(xb)), yb)
        if loss.requires_grad:
            loss.backward()
        if opt is not None:
            opt.step()
            opt.zero_grad(set_to_none=True)
        _sync(device)
        peak = torch.cuda.max_memory_allocated(device)
    del net, opt, xb, yb
    return int(peak - before)


def train_memory_bytes(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    """Peak memory (bytes) of one training step of ``model`` on the batch ``x``, ``y``.

    The model is not changed: the step runs on a deep copy, in train mode (BatchNorm on batch
    statistics, dropout on), with SGD (momentum 0.9) as the optimizer.

    * On CUDA, measured: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``
      over the second of two steps (the momentum buffers exist from the first on, as in
      training), minus what was allocated before the copy was made — so it holds the copy's
      parameters and buffers, the batch, the activations, the gradients, the momentum and every
      transient buffer of the kernels.
    * On the CPU, counted from one real forward pass (no backward is run)::

          M = P + G + S + X + A

      P: bytes of the parameters and buffers; G: of the gradients (one per trainable
      parameter); S: of the optimizer state (SGD momentum: one buffer per trainable parameter);
      X: of the input batch; A: of the activations autograd saves for the backward, summed
      over the distinct storages the ``saved_tensors_hooks`` pack hook sees during the forward
      pass, parameters, buffers and the input excluded (they are in P and X). The loss's own
      O(batch × classes) tensors and the backward's transient gradients of activations are not
      in A, so M is a little below a CUDA peak of the same step; the terms that grow with the
      batch, X and A, are exact.
    """
    if x.device.type == "cuda":
        return _cuda_step_peak(model, x, y)
    net = copy.deepcopy(model).train()
    tensors = [*net.parameters(), *net.buffers()]
    weights = sum(t.numel() * t.element_size() for t in tensors)
    trainable = sum(p.numel() * p.element_size() for p in net.parameters() if p.requires_grad)
    exclude = set(_storages(iter([*tensors, x])))
    activations = _saved_activation_bytes(net, x, exclude)
    return weights + 2 * trainable + x.numel() * x.element_size() + activations


def facts(device: Union[str, torch.device], options: Mapping[str, Any]) -> dict[str, Any]:
    """What a measurement depends on, as a search stores it with each trial (``hardware``):
    the device, the torch threads now, the latency and memory batches, the timed blocks."""
    dev = torch.device(device)
    opts = {**MEASURE_OPTIONS, **{k: v for k, v in options.items() if k in MEASURE_OPTIONS}}
    return {
        "device": str(dev) if dev.type != "cuda" else torch.cuda.get_device_name(dev),
        "threads": torch.get_num_threads(),
        "latency_batch": int(opts["latency_batch"]),
        "latency_repeats": int(opts["latency_repeats"]),
        "latency_clock": clock(dev),
        "memory_batch": int(opts["memory_batch"]),
        "memory": "cuda peak" if dev.type == "cuda" else "counted (P+G+S+X+A)",
    }


# ------------------------------------------------------------------------------------------------
# Registration
# ------------------------------------------------------------------------------------------------
def _latency(ctx: Context, batch: int) -> float:
    x = repeat_to(ctx.x, batch)
    return forward_latency_ms(ctx.model, x, repeats=int(ctx.measure["latency_repeats"]))


@register(
    "latency_ms",
    direction="minimize",
    needs=("measure", "forward"),
    help="measured forward time at batch 1 (ms): median of timed blocks after warm-up, "
    "eval mode, no_grad, on the scoring device with the current torch threads (1 thread on "
    "the CPU: the thread's CPU time; else wall time)",
    family=HARDWARE,
    reference="as FBNet, ProxylessNAS, Once-for-All, HW-NAS-Bench measure it",
)
def _latency_ms(ctx: Context) -> float:
    return _latency(ctx, 1)


@register(
    "latency_batch_ms",
    direction="minimize",
    needs=("measure", "forward"),
    help="measured forward time of one batch of latency_batch images (default 32; ms, "
    "the whole batch), as latency_ms",
    family=HARDWARE,
)
def _latency_batch_ms(ctx: Context) -> float:
    return _latency(ctx, int(ctx.measure["latency_batch"]))


@register(
    "train_memory_mb",
    direction="minimize",
    needs=("measure", "grad", "labels"),
    help="peak memory of one SGD training step on memory_batch images (default 64; MiB): "
    "CUDA max_memory_allocated, CPU params+grads+momentum+input+saved activations",
    family=HARDWARE,
)
def _train_memory_mb(ctx: Context) -> float:
    n = int(ctx.measure["memory_batch"])
    x, y = repeat_to(ctx.x, n), repeat_to(ctx.y, n)
    return train_memory_bytes(ctx.model, x, y.to(x.device)) / MIB
