# ruff: noqa: I001
"""A registry of named training-free scores, and the functions that compute them.

    from nasntk import proxies
    proxies.names()                          # every registered score, in registration order
    proxies.get("pntk_cond").direction       # "minimize"
    proxies.compute(model, batch, ["pntk_cond", "zico", "az_nas"], bn="frozen")
    proxies.score({"arch": ...}, space="nb201", data="cifar10", n=64, seeds=3)

One module per family, as timm keeps one file per model family:

    registry    Proxy, register, names, get: what a score is called, its direction and needs
    context     one model at one initialisation on one batch; what the scores share, once
    pntk        pNTK scores (condition number, kernel regression, flatness, slowest mode, ...)
    classic     NASLib-era baselines: params, flops, naswot, synflow, snip, grad_norm, jacob_cov
    zico        ZiCo (Li et al., ICLR 2023)
    meco        MeCo (Jiang et al., NeurIPS 2023)
    swap        SWAP and its regularised form (Peng et al., ICLR 2024)
    aznas       AZ-NAS's four terms and aggregate (Lee & Ham, CVPR 2024); blocks: where they are
    vkdnw       VKDNW (Dvořák et al., CVPR 2025)
    tenas       TE-NAS (Chen et al., ICLR 2021)
    hardware    measured on the device: latency_ms, latency_batch_ms, train_memory_mb
    aggregate   rank / percentile aggregation of several terms
    default     the default score
    scoring     compute() and score()

A score that is undefined for a model (singular or non-finite kernel, two inputs with the same
ReLU pattern, ...) is reported as the worst value of its direction (+inf when minimised, −inf when
maximised) — or nan when it does not apply (no ReLU at all, too few outputs, an aggregate without
a population) — with a one-line reason in ``result["reasons"][name]``; it never raises.
"""

# The families register in this order (`nasntk scores` lists them so): imports not sorted.
from nasntk.proxies import pntk as _pntk_scores  # noqa: F401
from nasntk.proxies import classic as _classic  # noqa: F401
from nasntk.proxies import zico as _zico  # noqa: F401
from nasntk.proxies import meco as _meco  # noqa: F401
from nasntk.proxies import swap as _swap  # noqa: F401
from nasntk.proxies import aznas as _aznas  # noqa: F401
from nasntk.proxies import vkdnw as _vkdnw  # noqa: F401
from nasntk.proxies import tenas as _tenas  # noqa: F401
from nasntk.proxies import default as _default  # noqa: F401
from nasntk.proxies import hardware as _hardware  # noqa: F401
from nasntk.proxies.scoring import KERNEL_OPTIONS, compute, score, value_of
from nasntk.proxies.context import MEASURE_OPTIONS, SCORE_OPTIONS, Context, check_measure_options
from nasntk.proxies.default import default_score
from nasntk.proxies.registry import DEFAULT, DIRECTIONS, Proxy, describe, get, names, register

__all__ = [
    "DEFAULT",
    "DIRECTIONS",
    "KERNEL_OPTIONS",
    "MEASURE_OPTIONS",
    "SCORE_OPTIONS",
    "Context",
    "Proxy",
    "check_measure_options",
    "compute",
    "default_score",
    "describe",
    "get",
    "names",
    "register",
    "score",
    "value_of",
]
