"""The search's promise, checked the same way by the in-process, CLI and PostgreSQL tests.

*Nothing lost*: no trial is left RUNNING or WAITING, the counted trials are the ones asked for,
and every interrupted trial's candidate was queued again exactly once. *No spec scored twice*:
among the trials that scored (not reusing an earlier outcome, not interrupted, not pruned by a
budget) every spec appears once, each duplicate points to an earlier scored trial of the same
spec and carries its values, and — when the toy space's independent build log is given — no
spec was built for scoring more often than once plus the times its trials were interrupted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from optuna.trial import FrozenTrial, TrialState

from nasntk.study import record
from nasntk.study.record import Prune


def builds(path: Path) -> Counter:
    """Spec JSON -> real builds, from the toy space's ``TOY_SPACE_LOG`` (``<pid> <spec>``)."""
    if not path.exists():
        return Counter()
    return Counter(line.split(" ", 1)[1].strip() for line in path.read_text().splitlines())


def _scored(t: FrozenTrial) -> bool:
    return (
        record.SPEC in t.user_attrs
        and not record.is_duplicate(t)
        and not record.interrupted(t)
        and record.prune(t) is not Prune.OVER_BUDGET
        and t.state != TrialState.RUNNING
    )


def assert_nothing_lost(trials: Sequence[FrozenTrial], counted: int | None = None) -> None:
    """No trial left running; ``counted`` trials count; each interrupted one retried once."""
    states = Counter(t.state for t in trials)
    assert not states[TrialState.RUNNING] and not states[TrialState.WAITING], states
    if counted is not None:
        assert sum(record.counted(t) for t in trials) == counted, states
    for t in trials:
        if record.interrupted(t) and t.params:
            retries = [u for u in trials if u.user_attrs.get(record.RETRY_OF) == t.number]
            assert len(retries) == 1, f"trial {t.number} retried {len(retries)} times"
            assert retries[0].params == t.params


def assert_no_spec_scored_twice(
    trials: Sequence[FrozenTrial], built: Counter | None = None
) -> None:
    """Every spec scored once; duplicates reuse an earlier scored trial; the build log agrees."""
    by_number = {t.number: t for t in trials}
    specs = Counter(t.user_attrs[record.SPEC] for t in trials if _scored(t))
    assert not specs or max(specs.values()) == 1, [s for s, c in specs.items() if c > 1]
    for t in trials:
        if record.is_duplicate(t):
            original = by_number[int(t.user_attrs[record.DUPLICATE_OF])]
            assert original.number < t.number and _scored(original)
            assert original.user_attrs[record.SPEC] == t.user_attrs[record.SPEC]
            if t.state == TrialState.COMPLETE:
                assert t.values == original.values
    if built is not None:
        again = Counter(t.user_attrs.get(record.SPEC) for t in trials if record.interrupted(t))
        for spec, n in built.items():
            assert n <= 1 + again[spec], f"{spec} built {n} times"
        complete = {
            t.user_attrs[record.SPEC]
            for t in trials
            if _scored(t) and t.state == TrialState.COMPLETE
        }
        assert complete <= set(built), "a scored spec is missing from the build log"


def assert_search_invariant(
    trials: Sequence[FrozenTrial], *, counted: int | None = None, built: Counter | None = None
) -> None:
    """Nothing lost, no spec scored twice (see the module docstring)."""
    assert_nothing_lost(trials, counted)
    assert_no_spec_scored_twice(trials, built)
