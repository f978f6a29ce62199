"""The reference sample of a study: what an aggregate score's percentiles are taken against.

An aggregate (AZ-NAS, VKDNW_agg, TE-NAS, and any score with ``terms``) ranks each of its terms
over a population. In a search a trial's stored objective must never change once it completes,
must be the same for every worker and must survive resume, so the population is fixed when the
study is created: ``size`` architectures drawn from the space by a seeded random sampler
(within the budgets; duplicates and candidates that fail are skipped), built with the search's
initialisation seed and scored on the search's batch. Their scores — every per-candidate score
the search records and every aggregate's terms — are stored in the study (user attribute
``reference``); every trial's aggregate is then Σ_t log p_t against them
(:func:`nasntk.proxies.aggregate.percentile_aggregate`). A trial that draws a member's spec
reuses the member's scores (a spec is never scored twice).

Created once: the process that opens the study computes it when the study holds none, then
keeps whatever the study holds after writing (an earlier writer wins). The sample is a
deterministic function of the space, the budgets, the data, the seeds and ``size``, so two
workers that start together on one study compute the same values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna

from nasntk.study import record
from nasntk.study.models import model_builder

if TYPE_CHECKING:
    from nasntk.search_spaces import SearchSpace
    from nasntk.study.config import SearchConfig

__all__ = [
    "REFERENCE_ATTR",
    "Reference",
    "aggregate_terms",
    "ensure_reference",
    "reference_scores",
    "stored_reference",
]

REFERENCE_ATTR = "reference"
#: Seeds the reference's own random stream (with ``reference_seed``).
REFERENCE_STREAM = 0x5EF
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


@dataclass(frozen=True)
class Reference:
    """A study's reference sample: the members' keys and every score they were given."""

    keys: tuple[str, ...]
    values: dict[str, np.ndarray]  # score -> one value per member (nan where undefined)
    reasons: tuple[dict[str, str], ...]

    def result_of(self, key: str, names: Sequence[str]) -> dict[str, Any] | None:
        """A member's ``proxies.compute``-like result for ``names`` (its aggregates against the
        reference, itself included, like any other candidate), or None for a non-member or when
        a score is missing."""
        from nasntk import proxies
        from nasntk.proxies.aggregate import aggregate_value

        if key not in self.keys:
            return None
        i = self.keys.index(key)
        mine = {n: float(v[i]) for n, v in self.values.items()}
        out: dict[str, Any] = {}
        for name in names:
            p = proxies.get(name)
            if p.is_aggregate:
                if not all(t in mine for t in p.terms):
                    return None
                out[name] = aggregate_value(p, mine, self.values)
            elif name in mine:
                out[name] = mine[name]
            else:
                return None
        out["reasons"] = {k: v for k, v in self.reasons[i].items() if k in names}
        return out


def stored_reference(user_attrs: Mapping[str, Any]) -> Reference | None:
    """The study's reference sample, or None when it has none."""
    ref = user_attrs.get(REFERENCE_ATTR)
    if not isinstance(ref, Mapping) or not isinstance(ref.get("values"), Mapping):
        return None
    values = {
        t: np.array([float(record.decode_float(v)) for v in vs], dtype=np.float64)
        for t, vs in ref["values"].items()
    }
    keys = tuple(ref.get("keys") or ())
    reasons = tuple(ref.get("reasons") or ({} for _ in keys))
    return Reference(keys=keys, values=values, reasons=reasons)


def reference_scores(score_names: Sequence[str]) -> list[str]:
    """What a reference member is scored on: every per-candidate score asked for and every
    aggregate's terms (so that a trial of a member's spec reuses them, never scoring it twice).
    Measured scores (latency, memory) are not: they are measured by the worker that runs the
    trial, with its threads, never in the process that makes the study."""
    from nasntk import proxies

    plain = [
        n
        for n in score_names
        if n in proxies.names()
        and not proxies.get(n).is_aggregate
        and "measure" not in proxies.get(n).needs
    ]
    return list(dict.fromkeys([*plain, *aggregate_terms(score_names)]))


def sample_reference(
    config: SearchConfig, space: SearchSpace, shape: Mapping[str, int]
) -> dict[str, Any]:
    """Draw and score the reference sample (see the module docstring), each member exactly as
    a trial is scored; a JSON-able dict."""
    from nasntk import proxies

    names = reference_scores(config.score_names)
    batch = config.load_batch(config.n_kernel)
    # a stream of its own: the search's own first (random) trials must not be the same draws
    stream = int(
        np.random.SeedSequence([config.reference_seed, REFERENCE_STREAM]).generate_state(1)[0]
    )
    probe = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=stream))
    specs: list[str] = []
    keys: list[str] = []
    reasons: list[dict[str, str]] = []
    values: dict[str, list[float | str]] = {t: [] for t in names}
    for _ in range(config.reference_size * TRIES_PER_MEMBER):
        if len(specs) >= config.reference_size:
            break
        try:
            spec = space.validate(space.suggest(probe.ask()))
            key = space.key(spec)
            counts = {
                "params": float(space.params(spec, **shape)),
                "flops": float(space.flops(spec, **shape)),
            }
            if key in keys or not _within_budget(config, counts):
                continue
            make = model_builder(space, spec, shape)
            target = make if config.seeds > 1 else make(config.init_seed)
            res = proxies.compute(target, batch, names, known=counts, **config.score_options())
        except Exception:  # a failing candidate is not a member; the next draw replaces it
            continue
        specs.append(space.format(spec))
        keys.append(key)
        reasons.append({str(k): str(v) for k, v in (res.get("reasons") or {}).items()})
        for t in names:
            values[t].append(record.encode_float(float(res[t])))
    return {
        "size": len(specs),
        "seed": config.reference_seed,
        "specs": specs,
        "keys": keys,
        "values": values,
        "reasons": reasons,
    }


def _within_budget(config: SearchConfig, counts: Mapping[str, float]) -> bool:
    """Whether a candidate's params and FLOPs fit the search's budgets."""
    if config.max_params is not None and counts["params"] > config.max_params:
        return False
    return config.max_flops is None or counts["flops"] <= config.max_flops


def ensure_reference(
    study: optuna.Study, config: SearchConfig, space: SearchSpace, shape: Mapping[str, int]
) -> Reference | None:
    """The study's reference sample, created and stored first when an aggregate is scored and
    the study holds none; None when no aggregate is scored."""
    terms = aggregate_terms(config.score_names)
    if not terms:
        return None

    def usable(ref: Reference | None) -> bool:
        return ref is not None and all(t in ref.values for t in terms)

    have = stored_reference(study.user_attrs)
    if usable(have):
        return have
    made = sample_reference(config, space, shape)
    latest = stored_reference(study.user_attrs)  # another worker may have written it meanwhile
    if usable(latest):
        return latest
    study.set_user_attr(REFERENCE_ATTR, made)
    return stored_reference(study.user_attrs)
