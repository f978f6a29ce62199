"""The reference sample of a study: what an aggregate score's percentiles are taken against.

An aggregate (AZ-NAS, VKDNW_agg, TE-NAS, and any score with ``terms``) ranks each of its terms
over a population. In a search a trial's stored objective must never change once it completes,
must be the same for every worker and must survive resume, so the population is fixed when the
study is created: ``size`` architectures drawn from the space by a seeded random sampler
(within the budgets; duplicates and candidates that fail are skipped), built with the search's
initialisation seed and scored on the search's batch. Their term values are stored in the study
(user attribute ``reference``); every trial's aggregate is then Σ_t log p_t against them
(:func:`nasntk.proxies.aggregate.percentile_aggregate`).

Created once: the process that opens the study computes it when the study holds none, then
keeps whatever the study holds after writing (an earlier writer wins). The sample is a
deterministic function of the space, the budgets, the data, the seeds and ``size``, so two
workers that start together on one study compute the same values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna

from nasntk.study.models import model_builder

if TYPE_CHECKING:
    from nasntk.search_spaces import SearchSpace
    from nasntk.study.config import SearchConfig

__all__ = ["REFERENCE_ATTR", "aggregate_terms", "ensure_reference", "stored_reference"]

REFERENCE_ATTR = "reference"
#: Random draws tried per reference member (budgets and failures skip some).
TRIES_PER_MEMBER = 8


def aggregate_terms(score_names: Sequence[str]) -> list[str]:
    """The terms of every aggregate among ``score_names`` (empty when there is none)."""
    from nasntk import proxies

    terms: list[str] = []
    for name in score_names:
        if name in proxies.names():
            terms += [t for t in proxies.get(name).terms if t not in terms]
    return terms


def stored_reference(user_attrs: Mapping[str, Any]) -> dict[str, np.ndarray] | None:
    """``{term: values}`` of the study's reference sample, or None when it has none."""
    ref = user_attrs.get(REFERENCE_ATTR)
    if not isinstance(ref, Mapping) or not isinstance(ref.get("values"), Mapping):
        return None
    return {
        t: np.array([math.nan if v is None else float(v) for v in vs], dtype=np.float64)
        for t, vs in ref["values"].items()
    }


def sample_reference(
    config: SearchConfig, space: SearchSpace, shape: Mapping[str, int], terms: Sequence[str]
) -> dict[str, Any]:
    """Draw and score the reference sample (see the module docstring); a JSON-able dict."""
    from nasntk import data as data_mod
    from nasntk import proxies

    batch = data_mod.load(
        config.data, config.n_kernel, seed=config.data_seed, img_size=config.img_size
    )
    probe = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=config.reference_seed))
    opts = dict(config.proxy_options)
    if config.bn is not None:
        opts["bn"] = config.bn
    specs: list[str] = []
    keys: set[str] = set()
    values: dict[str, list[float | None]] = {t: [] for t in terms}
    for _ in range(config.reference_size * TRIES_PER_MEMBER):
        if len(specs) >= config.reference_size:
            break
        try:
            spec = space.validate(space.suggest(probe.ask()))
            key = space.key(spec)
            if key in keys or not _within_budget(config, space, spec, shape):
                continue
            keys.add(key)
            model = model_builder(space, spec, shape)(config.init_seed)
            res = proxies.compute(
                model, batch, list(terms), device=config.device, seed=config.init_seed, **opts
            )
        except Exception:  # a failing candidate is not a member; the next draw replaces it
            continue
        specs.append(space.format(spec))
        for t in terms:
            v = float(res[t])
            values[t].append(v if math.isfinite(v) else None)
    return {"size": len(specs), "seed": config.reference_seed, "specs": specs, "values": values}


def _within_budget(
    config: SearchConfig, space: SearchSpace, spec: Mapping[str, Any], shape: Mapping[str, int]
) -> bool:
    if config.max_params is not None and space.params(spec, **shape) > config.max_params:
        return False
    return config.max_flops is None or space.flops(spec, **shape) <= config.max_flops


def ensure_reference(
    study: optuna.Study, config: SearchConfig, space: SearchSpace, shape: Mapping[str, int]
) -> dict[str, np.ndarray] | None:
    """The study's reference sample, created and stored first when an aggregate is scored and
    the study holds none; None when no aggregate is scored."""
    terms = aggregate_terms(config.score_names)
    if not terms:
        return None
    have = stored_reference(study.user_attrs)
    if have is not None and all(t in have for t in terms):
        return have
    made = sample_reference(config, space, shape, terms)
    latest = stored_reference(study.user_attrs)  # another worker may have written it meanwhile
    if latest is not None and all(t in latest for t in terms):
        return latest
    study.set_user_attr(REFERENCE_ATTR, made)
    return stored_reference(study.user_attrs)
