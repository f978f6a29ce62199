"""NAS-Bench-101 space: faithful parameter counts, pruning, hashing, text form, sampling."""

from __future__ import annotations

import itertools
import json
import random

import optuna
import pytest
import torch
from shared_data import dev_csv, dev_rows
from torch import nn

from nasntk.errors import NasntkError
from nasntk.search_spaces import get
from nasntk.search_spaces.base import SearchSpace
from nasntk.search_spaces.nb101 import (
    EDGE_NAMES,
    EDGES,
    EXAMPLE,
    OP_NAMES,
    OPS,
    Cell,
    NB101Space,
    num_edges,
    prune,
    vertex_channels,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)

CSV = dev_csv("nb101")

C3, C1, MP = "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3"
#: A cell and its module hash as stored in NAS-Bench-101 (from NASLib's tests).
KNOWN = f"0110110000010000010000000100000001000000010000000|input,{MP},{C3},{C1},{C1},{C3},output"
KNOWN_HASH = "ff940d27cbe9ed0a639a68a9c3f87283"
TINY = {"stem_channels": 8, "num_stacks": 2, "num_cells": 1}


@pytest.fixture(scope="module")
def space() -> NB101Space:
    return NB101Space()


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    return dev_rows("nb101")


def _text(row: dict[str, str]) -> str:
    return f"{row['matrix']}|{row['ops']}"


def _real_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _relabel(matrix: list[list[int]], ops: list[str], perm: tuple[int, ...]) -> dict | None:
    """The spec with interior vertex v renamed perm[v - 1]; None if not upper triangular."""
    n = len(matrix)
    new = [0, *perm, n - 1]
    if any(matrix[i][j] and new[i] >= new[j] for i in range(n) for j in range(n)):
        return None
    m = [[0] * n for _ in range(n)]
    o = [""] * n
    for i in range(n):
        o[new[i]] = ops[i]
        for j in range(n):
            m[new[i]][new[j]] = matrix[i][j]
    return {"matrix": m, "ops": o}


# -- text form and validation --------------------------------------------------------------------
def test_registry_and_round_trip(space: NB101Space) -> None:
    assert isinstance(get("nb101"), NB101Space)
    spec = space.parse(EXAMPLE)
    assert len(spec["matrix"]) == 7 and spec["ops"][0] == "input"
    assert space.format(spec) == EXAMPLE
    assert space.parse(space.format(spec)) == spec
    assert space.parse_any(json.dumps(spec)) == spec
    flat = {"matrix": EXAMPLE.split("|")[0], "ops": spec["ops"]}
    assert space.validate(flat) == spec  # the matrix may be a flat 0/1 string


def test_dev_rows_round_trip(space: NB101Space, rows: list[dict[str, str]]) -> None:
    assert len(rows) == 250
    for row in rows:
        spec = space.parse(_text(row))
        assert space.format(spec) == _text(row)
        assert space.parse(space.format(spec)) == spec
        assert space.parse_any(json.dumps(spec)) == spec


def _full(edges: list[tuple[int, int]], ops: list[str] | None = None) -> dict:
    n = 7
    m = [[0] * n for _ in range(n)]
    for i, j in edges:
        m[i][j] = 1
    return {"matrix": m, "ops": ops or ["input", C3, C3, C1, MP, C3, "output"]}


@pytest.mark.parametrize(
    ("bad", "what"),
    [
        ({"matrix": "0100", "ops": ["input", "conv5x5", "output"]}, "'ops'"),
        (
            {"matrix": "010001000", "ops": ["input", "conv5x5", "output"]},
            r"'ops\[1\]' is 'conv5x5'",
        ),
        ({"matrix": "010001000", "ops": ["input", C3, C3]}, r"'ops\[2\]' must be 'output'"),
        ({"matrix": "010001000", "ops": [C3, C3, "output"]}, r"'ops\[0\]' must be 'input'"),
        ({"matrix": "011001100", "ops": ["input", C3, "output"]}, r"'matrix\[2\]\[0\]'.*upper"),
        ({"matrix": "110001000", "ops": ["input", C3, "output"]}, r"'matrix\[0\]\[0\]'.*upper"),
        ({"matrix": "010000000", "ops": ["input", C3, "output"]}, "cannot be reached"),
        (_full(list(EDGES)), "21 edges.*at most 9"),
        ({"matrix": "0" * 64, "ops": ["input"] + [C3] * 6 + ["output"]}, "8 vertices"),
        ({"matrix": "01000", "ops": ["input", "output"]}, "n\\*n characters"),
        ({"matrix": [[0, 2], [0, 0]], "ops": ["input", "output"]}, r"'matrix\[0\]\[1\]'.*0 or 1"),
        ({"matrix": [[0, 1], [0]], "ops": ["input", "output"]}, "square"),
        ({"ops": ["input", "output"]}, "missing field 'matrix'"),
        ({"matrix": "0100", "ops": ["input", "output"], "C": 8}, "unknown field"),
        ("0100input,output", "expected '<n\\*n chars"),
        ([[0, 1], [0, 0]], "must be a dict"),
    ],
)
def test_bad_specs_raise_naming_the_field(space: NB101Space, bad: object, what: str) -> None:
    with pytest.raises(NasntkError, match=what):
        space.validate(bad)


def test_edges_are_counted_after_pruning(space: NB101Space) -> None:
    # 10 edges, but vertex 5 is a dead end: pruned, the cell has 8 edges and is valid
    spec = _full([(0, 1), (0, 2), (0, 3), (1, 4), (2, 4), (3, 4), (4, 6), (1, 5), (2, 5), (3, 5)])
    assert num_edges(spec["matrix"]) == 10
    assert space.validate(spec) == spec
    assert num_edges(space.pruned(spec)["matrix"]) == 7
    assert space.pruned(spec)["ops"] == ["input", C3, C3, C1, MP, "output"]


def test_bad_options_and_sizes() -> None:
    for bad in ({"stem_channels": 0}, {"num_stacks": 1.5}, {"num_cells": True}):
        with pytest.raises(NasntkError, match=next(iter(bad))):
            NB101Space(**bad)  # type: ignore[arg-type]
    with pytest.raises(NasntkError, match="multiple of 4"):
        NB101Space().build(EXAMPLE, num_classes=10, img_size=30)
    with pytest.raises(NasntkError, match="num_classes"):
        NB101Space().params(EXAMPLE, num_classes=0)
    # three vertices feed the output: two channels cannot be split over them
    with pytest.raises(NasntkError, match="larger stem_channels"):
        NB101Space(stem_channels=2).params(EXAMPLE)


# -- the faithful parameter count ------------------------------------------------------------------
def test_hand_counted_cells(space: NB101Space) -> None:
    """input -> conv3x3 -> output (and input -> output alone), counted by hand."""
    widths = [(128, 128)] * 3 + [(128, 256)] + [(256, 256)] * 2 + [(256, 512)] + [(512, 512)] * 2
    stem, head = 9 * 3 * 128 + 2 * 128, 512 * 10 + 10

    def proj(a: int, b: int) -> int:  # Conv1x1(a -> b) + BN(b)
        return a * b + 2 * b

    def conv3(c: int) -> int:  # Conv3x3(c -> c) + BN(c)
        return 9 * c * c + 2 * c

    one_conv = {"matrix": "010001000", "ops": ["input", C3, "output"]}
    assert space.params(one_conv) == stem + sum(proj(a, b) + conv3(b) for a, b in widths) + head
    assert space.params(one_conv) == 10_177_674
    with_skip = {"matrix": "011001000", "ops": ["input", C3, "output"]}
    assert space.params(with_skip) == space.params(one_conv) + sum(proj(a, b) for a, b in widths)
    alone = {"matrix": "0100", "ops": ["input", "output"]}
    assert space.params(alone) == stem + sum(proj(a, b) for a, b in widths) + head == 882_570
    # a max-pool costs nothing: the same count as the lone projection
    assert space.params({"matrix": "010001000", "ops": ["input", MP, "output"]}) == 882_570

    tiny = NB101Space(**TINY)
    for spec in (one_conv, with_skip, alone):
        model = tiny.build(spec, num_classes=5, img_size=8)
        assert _real_count(model) == tiny.params(spec, num_classes=5, img_size=8)
        assert model(torch.randn(2, 3, 8, 8)).shape == (2, 5)


def test_params_match_every_dev_row(space: NB101Space, rows: list[dict[str, str]]) -> None:
    for row in rows:
        assert space.params(_text(row)) == round(float(row["params_m"]) * 1e6), row["index"]
    # the closed form is the built network's count (meta device), checked on every 5th row
    for row in rows[::5]:
        assert SearchSpace.params(space, _text(row)) == space.params(_text(row)), row["index"]


def test_closed_forms_match_real_builds(rows: list[dict[str, str]]) -> None:
    tiny = NB101Space(**TINY)
    for row in rows[:12]:
        model = tiny.build(_text(row), num_classes=3, in_chans=2, img_size=4)
        assert _real_count(model) == tiny.params(_text(row), num_classes=3, in_chans=2)
        assert model(torch.randn(1, 2, 4, 4)).shape == (1, 3)
    proxy = NB101Space(stem_channels=16, num_stacks=3, num_cells=1)
    for row in rows[:3]:
        for img in (16, 32):
            assert proxy.flops(_text(row), img_size=img) == SearchSpace.flops(
                proxy, _text(row), img_size=img
            )


def _naslib_extra(space: NB101Space, spec: str) -> int:
    """tensorwatch's counts beyond the multiply-adds: 3 per BN-ReLU output element (BN 2, ReLU 1),
    9 per maxpool3x3 output element, 1 per input element of a 2x2 downsampling pool."""
    extra = 0

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal extra
        if isinstance(module, nn.BatchNorm2d):
            extra += 3 * output.numel()
        elif isinstance(module, nn.MaxPool2d):
            extra += 9 * output.numel() if module.kernel_size == 3 else inputs[0].numel()

    with torch.device("meta"):
        model = space.build(spec, num_classes=10)
        for m in model.modules():
            m.register_forward_hook(hook)
        model(torch.empty(1, 3, 32, 32))
    return extra


def test_flops_relation_to_naslib(space: NB101Space, rows: list[dict[str, str]]) -> None:
    """flops_m (NASLib, tensorwatch) = our FLOPs / 2 (multiply-adds) + the elementwise counts."""
    for row in rows[:6]:
        spec = _text(row)
        want = round(float(row["flops_m"]) * 1e6)
        assert space.flops(spec) // 2 + _naslib_extra(space, spec) == want, row["index"]


# -- cell semantics ---------------------------------------------------------------------------------
def test_output_channel_split_and_concatenation() -> None:
    # vertices 2, 3, 4 feed the output; vertex 1 feeds 2, 3 and 4 (it takes the max of theirs)
    m = [[0] * 6 for _ in range(6)]
    for i, j in ((0, 1), (1, 2), (1, 3), (1, 4), (0, 4), (2, 5), (3, 5), (4, 5)):
        m[i][j] = 1
    assert vertex_channels(128, 128, m) == [128, 43, 43, 43, 42, 128]
    assert vertex_channels(128, 256, m) == [128, 86, 86, 85, 85, 256]
    assert vertex_channels(256, 512, m) == [256, 171, 171, 171, 170, 512]

    cell = Cell(m, ["input", C1, C3, C1, MP, "output"], c_in=6, c_out=8).eval()
    assert cell.channels == [6, 3, 3, 3, 2, 8]
    assert sorted(cell.projections) == ["1", "4"]
    assert cell.projections["4"][0].weight.shape == (2, 6, 1, 1)
    outs: dict[int, torch.Tensor] = {}
    for t, op in enumerate(cell.vertex_ops, start=1):
        op.register_forward_hook(lambda mod, i, o, t=t: outs.__setitem__(t, o))
    x = torch.randn(2, 6, 5, 5)
    with torch.no_grad():
        y = cell(x)
        # vertex 4 (2 channels) sums vertex 1 truncated to 2 channels and the input's projection
        v4 = cell.vertex_ops[3](outs[1][:, :2] + cell.projections["4"](x))
    assert y.shape == (2, 8, 5, 5)
    # the output is the concatenation of vertices 2, 3, 4 in vertex order
    assert torch.equal(y, torch.cat([outs[2], outs[3], outs[4]], dim=1))
    assert torch.equal(outs[4], v4)


def test_input_to_output_projection_is_added() -> None:
    m = [[0, 1, 1], [0, 0, 1], [0, 0, 0]]
    cell = Cell(m, ["input", MP, "output"], c_in=4, c_out=4).eval()
    x = torch.randn(1, 4, 3, 3)
    with torch.no_grad():
        y = cell(x)
        want = cell.vertex_ops[0](cell.projections["1"](x)) + cell.projections["2"](x)
    assert torch.allclose(y, want)


# -- keys ---------------------------------------------------------------------------------------------
def test_key_is_the_benchmark_hash(space: NB101Space) -> None:
    assert space.key(KNOWN) == f"nb101:{KNOWN_HASH}"


def test_key_merges_isomorphic_and_pruned_specs(
    space: NB101Space, rows: list[dict[str, str]]
) -> None:
    rng = random.Random(0)
    for row in rows[:60]:
        spec = space.parse(_text(row))
        key = space.key(spec)
        # pruned-away vertices do not matter
        assert space.key(space.describe(spec)) == key
        assert space.describe(spec) == space.format(space.pruned(spec))
        # nor does the numbering of the interior vertices
        pruned = space.pruned(spec)
        perms = list(itertools.permutations(range(1, len(pruned["ops"]) - 1)))
        for perm in rng.sample(perms, min(10, len(perms))):
            other = _relabel(pruned["matrix"], pruned["ops"], perm)
            if other is not None:
                assert space.key(other) == key
    # dropping a live edge, or changing a live op, changes the network and the key
    spec = space.parse(KNOWN)
    spec["matrix"][0][5] = 0
    assert space.key(spec) != space.key(KNOWN)
    spec = space.parse(KNOWN)
    spec["ops"][2] = C1
    assert space.key(spec) != space.key(KNOWN)
    # dead-end vertices (1 -> 2 -> nowhere, 3 unreachable) change the spec, not the key
    dead = {"matrix": "0100000101000000000100000", "ops": ["input", C3, C1, MP, "output"]}
    assert space.key(dead) == space.key({"matrix": "010001000", "ops": ["input", C3, "output"]})


def _canonical(spec: dict) -> tuple:
    """A brute-force canonical form of a pruned labelled DAG (min over interior relabelings)."""
    m, ops = spec["matrix"], spec["ops"]
    n = len(ops)
    best = None
    for perm in itertools.permutations(range(1, n - 1)):
        new = [0, *perm, n - 1]
        labels = [""] * n
        for v in range(n):
            labels[new[v]] = ops[v]
        edges = sorted((new[i], new[j]) for i in range(n) for j in range(n) if m[i][j])
        form = (tuple(labels), tuple(edges))
        best = form if best is None or form < best else best
    return best  # type: ignore[return-value]


def test_keys_separate_exactly_the_non_isomorphic_dev_cells(
    space: NB101Space, rows: list[dict[str, str]]
) -> None:
    by_key: dict[str, set] = {}
    for row in rows:
        spec = space.parse(_text(row))
        by_key.setdefault(space.key(spec), set()).add(_canonical(space.pruned(spec)))
    assert all(len(forms) == 1 for forms in by_key.values())  # equal key => isomorphic
    forms = [next(iter(f)) for f in by_key.values()]
    assert len(set(forms)) == len(forms)  # isomorphic => equal key
    assert len(by_key) == 163


# -- sampling and mutation ---------------------------------------------------------------------------
def test_suggest_gives_valid_specs() -> None:
    space = NB101Space()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    sizes = set()
    for _ in range(200):
        trial = study.ask()
        spec = space.suggest(trial)
        study.tell(trial, 0.0)
        assert space.validate(spec) == spec and len(spec["ops"]) == 7
        sizes.add(len(space.pruned(spec)["ops"]))
    assert sizes >= {2, 3, 4, 5, 6}
    assert {d.name for d in space.dimensions} == set(OP_NAMES) | set(EDGE_NAMES)


def _params_of(spec: dict) -> dict:
    params = {f"op_{t}": spec["ops"][t] for t in range(1, 6)}
    params.update({f"edge_{i}_{j}": spec["matrix"][i][j] for i, j in EDGES})
    return params


def test_suggest_returns_valid_specs_unchanged(
    space: NB101Space, rows: list[dict[str, str]]
) -> None:
    for row in rows:
        spec = space.parse(_text(row))
        assert space.suggest(optuna.trial.FixedTrial(_params_of(spec))) == spec


def test_suggest_repairs_invalid_draws(space: NB101Space) -> None:
    ops = ["input", C3, C1, MP, C3, C1, "output"]
    dense = _params_of(_full(list(EDGES), ops))
    spec = space.suggest(optuna.trial.FixedTrial(dense))
    assert spec == space.suggest(optuna.trial.FixedTrial(dense))  # deterministic
    assert 1 <= num_edges(space.pruned(spec)["matrix"]) <= 9
    assert prune(spec["matrix"], spec["ops"]) is not None
    empty = _params_of(_full([(1, 2), (2, 6)], ops))  # output unreachable from the input
    spec = space.suggest(optuna.trial.FixedTrial(empty))
    assert spec == _full([(0, 6), (1, 2), (2, 6)], ops)
    assert space.describe(spec) == "0100|input,output"


def test_mutate(space: NB101Space, rows: list[dict[str, str]]) -> None:
    rng = random.Random(0)
    for row in rows[:30]:
        spec = space.parse(_text(row))
        child = space.mutate(spec, rng)
        assert space.validate(child) == child
        assert space.key(child) != space.key(spec)
        diff = sum(a != b for a, b in zip(child["ops"], spec["ops"], strict=True)) + sum(
            a != b
            for ra, rb in zip(child["matrix"], spec["matrix"], strict=True)
            for a, b in zip(ra, rb, strict=True)
        )
        assert diff == 1
    # the lone input -> output cell: no single change alters the network; still a new spec
    alone = {"matrix": "0100", "ops": ["input", "output"]}
    child = space.mutate(alone, rng)
    assert space.validate(child) == child and len(child["ops"]) == 7
    assert space.key(child) == space.key(alone)
    assert all(op in OPS for op in child["ops"][1:-1])
