"""DARTS / NAS-Bench-301 space: genotype strings, faithful parameter counts, cells, sampling."""

from __future__ import annotations

import ast
import json
import random
import re

import optuna
import pytest
import torch
from shared_data import dev_csv, dev_rows

from nasntk.errors import NasntkError
from nasntk.search_spaces import get
from nasntk.search_spaces.base import SearchSpace
from nasntk.search_spaces.darts import (
    CELLS,
    OPS,
    DartsSpace,
    FactorizedReduce,
    count_params,
    format_genotype,
    make_op,
)
from nasntk.search_spaces.nb201 import AvgPool3x3

CSV = dev_csv("nb301")

ALL_SKIP = [["skip_connect", 0], ["skip_connect", 1], ["skip_connect", 0], ["skip_connect", 2]]
ALL_SKIP += [["skip_connect", 1], ["skip_connect", 3], ["skip_connect", 2], ["skip_connect", 4]]
#: reduce cell: node 2 = FR(s0) + FR(s1) (stride-2 skips), nodes 3..5 parameter-free pools
POOL_REDUCE = [["skip_connect", 0], ["skip_connect", 1], ["max_pool_3x3", 0], ["avg_pool_3x3", 2]]
POOL_REDUCE += [["avg_pool_3x3", 1], ["max_pool_3x3", 3], ["max_pool_3x3", 2], ["avg_pool_3x3", 4]]
SKIP_SPEC = {"normal": ALL_SKIP, "reduce": POOL_REDUCE}


@pytest.fixture(scope="module")
def space() -> DartsSpace:
    return DartsSpace()


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    return dev_rows("nb301")


def _random_spec(rng: random.Random) -> dict[str, list[list]]:
    spec = {}
    for cell in CELLS:
        pairs = []
        for node in range(2, 6):
            for src in rng.sample(range(node), 2):
                pairs.append([rng.choice(OPS), src])
        spec[cell] = pairs
    return spec


def _raw_cells(genotype: str) -> list[list[tuple[str, int]]]:
    """The two cells of a CSV genotype, pairs in the order written (an independent reader)."""
    return [ast.literal_eval(m) for m in re.findall(r"(?:normal|reduce)=(\[[^\]]*\])", genotype)]


def _real_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# -- genotype strings and canonical form -----------------------------------------------------------
def test_registry_and_text_round_trip(space: DartsSpace) -> None:
    assert isinstance(get("darts"), DartsSpace)
    rng = random.Random(0)
    for _ in range(50):
        spec = space.validate(_random_spec(rng))
        assert space.parse(space.format(spec)) == spec
        assert space.parse_any(json.dumps(spec)) == spec
        assert space.validate(spec) == spec


def test_csv_genotypes_round_trip(space: DartsSpace, rows: list[dict[str, str]]) -> None:
    assert len(rows) == 360
    for row in rows:
        text = row["genotype"]
        raw = _raw_cells(text)
        assert format_genotype(*raw) == text  # the writer reproduces the CSV string exactly
        spec = space.parse(text)
        assert space.parse(space.format(spec)) == spec
        # format writes the same pairs, each node's lower input first
        canon = [[tuple(p) for p in spec[cell]] for cell in CELLS]
        for got, want in zip(canon, raw, strict=True):
            for k in range(4):
                assert sorted(got[2 * k : 2 * k + 2]) == sorted(want[2 * k : 2 * k + 2])
                assert got[2 * k][1] < got[2 * k + 1][1]
        assert space.format(spec) == format_genotype(*canon)


def test_dev_data_nodes_read_two_distinct_inputs(rows: list[dict[str, str]]) -> None:
    """Why the space requires distinct inputs: no node of the 360 dev rows reads one state twice."""
    nodes = [cell[2 * k : 2 * k + 2] for row in rows for cell in _raw_cells(row["genotype"])
             for k in range(4)]  # fmt: skip
    assert len(nodes) == 360 * 2 * 4
    assert all(a[1] != b[1] for a, b in nodes)
    assert all("concat=[2, 3, 4, 5]" in row["genotype"] for row in rows)


def test_swapping_a_nodes_pairs_gives_the_same_key(space: DartsSpace) -> None:
    rng = random.Random(1)
    for _ in range(20):
        spec = _random_spec(rng)
        cell, k = rng.choice(CELLS), rng.randrange(4)
        swapped = {c: [list(p) for p in spec[c]] for c in CELLS}
        swapped[cell][2 * k], swapped[cell][2 * k + 1] = spec[cell][2 * k + 1], spec[cell][2 * k]
        assert space.key(swapped) == space.key(spec)
        assert space.validate(swapped) == space.validate(spec)
        assert space.format(swapped) == space.format(spec)
    # tuples (as in a Genotype) are accepted; the canonical spec is lists (JSON-friendly)
    as_tuples = {c: [tuple(p) for p in ALL_SKIP] for c in CELLS}
    assert space.validate(as_tuples)["normal"] == ALL_SKIP


def test_parse_accepts_range_concat_and_json(space: DartsSpace) -> None:
    text = space.format(SKIP_SPEC)
    assert space.parse(text.replace("[2, 3, 4, 5]", "range(2, 6)")) == SKIP_SPEC
    assert space.parse(json.dumps(SKIP_SPEC)) == SKIP_SPEC
    assert space.validate(text) == SKIP_SPEC


@pytest.mark.parametrize(
    ("bad", "what"),
    [
        ({"normal": ALL_SKIP}, "missing field 'reduce'"),
        ({**SKIP_SPEC, "C": 16}, r"unknown field\(s\) \['C'\]"),
        ({"normal": ALL_SKIP[:6], "reduce": POOL_REDUCE}, "field 'normal' must be a list of 8"),
        ({"normal": ALL_SKIP, "reduce": [["conv", 0]] + POOL_REDUCE[1:]}, "unknown op 'conv'"),
        ({"normal": [["skip_connect", 0], ["skip_connect", 2]] + ALL_SKIP[2:], "reduce": ALL_SKIP},
         r"'normal\[1\]' \(node 2\): input must be an integer in 0..1"),
        ({"normal": ALL_SKIP[:7] + [["skip_connect", 5]], "reduce": ALL_SKIP}, r"in 0..4"),
        ({"normal": ALL_SKIP, "reduce": ALL_SKIP[:2] + [["skip_connect", 1]] * 2 + ALL_SKIP[4:]},
         "node 3.*both read input 1"),
        ({"normal": ALL_SKIP[:1] + [["skip_connect", True]] + ALL_SKIP[2:], "reduce": ALL_SKIP},
         "got True"),
        ({"normal": [["skip_connect"]] + ALL_SKIP[1:], "reduce": ALL_SKIP}, "pair"),
        ([ALL_SKIP, ALL_SKIP], "must be a dict"),
    ],
)  # fmt: skip
def test_malformed_specs_name_the_field(space: DartsSpace, bad: object, what: str) -> None:
    with pytest.raises(NasntkError, match=what):
        space.validate(bad)


def test_malformed_genotype_strings(space: DartsSpace) -> None:
    good = space.format(SKIP_SPEC)
    cases = [
        (good.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=[4, 5]"), "normal_concat"),
        (good.replace("reduce_concat=[2, 3, 4, 5]", "reduce_concat=range(3, 6)"), "reduce_concat"),
        (good.replace("Genotype", "Genome"), "cannot read the genotype"),
        ("sep_conv_3x3", "cannot read the genotype"),
        (good.replace("('skip_connect', 0)", "(skip_connect, 0)", 1), "cannot read normal="),
        (good.replace("('skip_connect', 1)", "('conv_7x7', 1)", 1), "unknown op 'conv_7x7'"),
    ]
    for text, what in cases:
        with pytest.raises(NasntkError, match=re.escape(what)):
            space.parse(text)
    with pytest.raises(NasntkError, match="not valid JSON"):
        space.parse("{normal: 1}")


# -- the faithful parameter count ------------------------------------------------------------------
def test_hand_count_of_skip_and_pool_cells(space: DartsSpace) -> None:
    """Only the stem, the preprocessing, the stride-2 skips (FactorizedReduce) and the classifier
    have parameters (C=32: cells at 32, 32, R64, 64, 64, R128, 128, 128; BN affine = 2 per channel).
    """
    stem = 3 * 96 * 9 + 2 * 96
    preprocess = [  # (c_pp + c_p) * c + 2 BNs * 2c, cell by cell
        (96 + 96) * 32 + 4 * 32,
        (96 + 128) * 32 + 4 * 32,
        (128 + 128) * 64 + 4 * 64,  # reduction
        (128 + 256) * 64 + 4 * 64,  # preprocess0 is a FactorizedReduce (same count as a 1x1)
        (256 + 256) * 64 + 4 * 64,
        (256 + 256) * 128 + 4 * 128,  # reduction
        (256 + 512) * 128 + 4 * 128,
        (512 + 512) * 128 + 4 * 128,
    ]
    reduce_skips = 2 * 64 * 64 + 2 * 128 * 128  # two FR(c, c), non-affine BN, per reduction
    classifier = 512 * 10 + 10
    want = stem + sum(preprocess) + reduce_skips + classifier
    assert want == 433_386
    assert space.params(SKIP_SPEC) == want
    assert _real_count(space.build(SKIP_SPEC, num_classes=10)) == want


def test_closed_form_matches_real_builds() -> None:
    rng = random.Random(2)
    for kw in (
        {},
        {"C": 8, "layers": 5, "num_classes": 3, "in_chans": 1},
        {"C": 5, "layers": 3},
        {"C": 16, "layers": 6, "auxiliary": True, "num_classes": 100},
    ):
        opts = {k: kw.pop(k) for k in ("C", "layers", "auxiliary") if k in kw}
        spec = _random_spec(rng)
        model = DartsSpace(**opts).build(spec, img_size=32, **{"num_classes": 10, **kw})
        want = _real_count(model)
        assert DartsSpace(**opts).params(spec, **kw) == want
        canon = DartsSpace().validate(spec)
        cells = [[tuple(p) for p in canon[c]] for c in CELLS]
        assert count_params(*cells, **opts, **kw) == want
    # the generic meta-device count of the base class agrees with the override
    spec = _random_spec(rng)
    assert SearchSpace.params(DartsSpace(), spec) == DartsSpace().params(spec)


def test_params_equal_csv_for_every_row(space: DartsSpace, rows: list[dict[str, str]]) -> None:
    """NASLib's params_m is this network at C=32, 8 cells, without the auxiliary head."""
    got = {int(r["index"]): space.params(space.parse(r["genotype"])) for r in rows}
    want = {int(r["index"]): round(float(r["params_m"]) * 1e6) for r in rows}
    assert got == want
    aux = DartsSpace(auxiliary=True)
    head = aux.params(SKIP_SPEC) - space.params(SKIP_SPEC)
    assert head == 512 * 128 + 256 + 128 * 768 * 4 + 1536 + 768 * 10 + 10  # not in params_m


def test_closed_form_flops_match_the_flop_counter() -> None:
    rng = random.Random(5)
    for opts, kw in (
        ({}, {}),
        ({"C": 8, "layers": 5}, {"num_classes": 3, "in_chans": 1, "img_size": 16}),
        ({"C": 6, "layers": 4, "auxiliary": True}, {"img_size": 40}),  # aux head: not run
    ):
        spec = _random_spec(rng)
        assert DartsSpace(**opts).flops(spec, **kw) == SearchSpace.flops(
            DartsSpace(**opts), spec, **kw
        )


def _elementwise_counts(model: torch.nn.Module, img_size: int = 32) -> int:
    """NASLib's non-MAC terms: elements into BNs (x2 if affine), ReLUs and the global pool, and
    9 per output element of a 3x3 pool, over one forward pass on one image."""
    total = 0

    def hook(mod: torch.nn.Module, inp: tuple[torch.Tensor], out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(mod, torch.nn.BatchNorm2d):
            total += inp[0].numel() * (2 if mod.affine else 1)
        elif isinstance(mod, (torch.nn.ReLU, torch.nn.AdaptiveAvgPool2d)):
            total += inp[0].numel()
        elif isinstance(mod, (torch.nn.MaxPool2d, torch.nn.AvgPool2d)):
            total += 9 * out.numel()

    handles = [mod.register_forward_hook(hook) for mod in model.modules()]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, img_size, img_size))
    for h in handles:
        h.remove()
    return total


def test_flops_m_is_naslibs_count_of_this_network(
    space: DartsSpace, rows: list[dict[str, str]]
) -> None:
    """flops_m = MACs + the element-wise terms + 8,704 (a constant of the head): this checks the
    BN after each pool and every ReLU, which the parameter count cannot see."""
    for row in rows[:4]:
        spec = space.parse(row["genotype"])
        model = space.build(spec, num_classes=10)
        got = space.flops(spec) // 2 + _elementwise_counts(model) + 8704
        assert got == round(float(row["flops_m"]) * 1e6), row["index"]


def test_options_lists_what_differs_from_the_benchmark_network() -> None:
    assert DartsSpace().options() == {}
    assert DartsSpace(C=8, layers=5).options() == {"C": 8, "layers": 5}
    assert DartsSpace(auxiliary=True).options() == {"auxiliary": True}


# -- op and cell semantics -------------------------------------------------------------------------
def test_all_skip_normal_cell_concatenates_node_sums() -> None:
    """Nodes: n2 = s0 + s1, n3 = s0 + n2, n4 = s1 + n3, n5 = n2 + n4; output cat(n2..n5)."""
    torch.manual_seed(0)
    model = DartsSpace(C=4, layers=3).build(SKIP_SPEC, num_classes=2, img_size=8).eval()
    cell = model.cells[0]
    assert not cell.reduction and all(isinstance(e, torch.nn.Identity) for e in cell.edges)
    h0, h1 = torch.randn(2, 12, 8, 8), torch.randn(2, 12, 8, 8)
    s0, s1 = cell.preprocess0(h0), cell.preprocess1(h1)
    n2 = s0 + s1
    n3 = s0 + n2
    n4 = s1 + n3
    n5 = n2 + n4
    torch.testing.assert_close(cell(h0, h1), torch.cat([n2, n3, n4, n5], dim=1))
    # preprocessing is ReLU -> 1x1 conv -> BN (eval: running stats 0/1)
    conv = cell.preprocess1[1]
    ref = torch.nn.functional.conv2d(h1.relu(), conv.weight) / (1 + 1e-5) ** 0.5
    torch.testing.assert_close(s1, ref)


def test_reduction_cell_strides_only_the_edges_from_the_inputs() -> None:
    model = DartsSpace(C=4, layers=3).build(SKIP_SPEC, num_classes=2, img_size=8)
    red = model.cells[1]
    assert red.reduction
    assert isinstance(red.edges[0], FactorizedReduce)  # skip from s0, stride 2
    assert isinstance(red.edges[3][0], AvgPool3x3)  # avg pool from node 2, stride 1
    assert red.edges[2][0].stride == 2  # max pool from s0
    assert isinstance(model.cells[2].preprocess0, FactorizedReduce)  # after a reduction
    out = red(torch.randn(2, 12, 8, 8), torch.randn(2, 16, 8, 8))
    assert out.shape == (2, 32, 4, 4)


def test_pool_ops_exclude_padding_then_normalise() -> None:
    x = torch.full((1, 4, 6, 6), 3.0)
    scale = 3.0 / (1 + 1e-5) ** 0.5  # eval BN without affine parameters
    for stride in (1, 2):
        op = make_op("avg_pool_3x3", 4, stride).eval()
        y = op(x)
        assert y.shape[-1] == 6 // stride
        torch.testing.assert_close(y, torch.full_like(y, scale))
        assert not any(True for _ in op.parameters())
    z = torch.randn(2, 4, 6, 6)
    ref = torch.nn.AvgPool2d(3, 1, 1, count_include_pad=False)(z) / (1 + 1e-5) ** 0.5
    torch.testing.assert_close(make_op("avg_pool_3x3", 4, 1).eval()(z), ref)


# -- sampling and mutation -------------------------------------------------------------------------
def test_suggest_with_optuna_reaches_every_choice(space: DartsSpace) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    specs, seen = [], {d.name: set() for d in space.dimensions}
    for _ in range(100):
        trial = study.ask()
        specs.append(space.suggest(trial))
        for name, value in trial.params.items():
            seen[name].add(value)
        study.tell(trial, 0.0)
    assert all(space.validate(s) == s for s in specs)
    assert len({space.key(s) for s in specs}) == 100
    assert len(space.dimensions) == 24
    for d in space.dimensions:
        assert seen[d.name] == set(d.choices.split(" | ")), d.name
    fixed = {d.name: d.choices.split(" | ")[-1] for d in space.dimensions}
    spec = space.suggest(optuna.trial.FixedTrial(fixed))
    assert spec["normal"][-2:] == [["dil_conv_5x5", 3], ["dil_conv_5x5", 4]]


def test_mutate_changes_exactly_one_edge(space: DartsSpace) -> None:
    rng = random.Random(3)
    for _ in range(100):
        spec = space.validate(_random_spec(rng))
        child = space.mutate(spec, rng)
        assert space.validate(child) == child and child != spec
        changed = 0
        for cell in CELLS:
            for k in range(4):
                a = {tuple(p) for p in spec[cell][2 * k : 2 * k + 2]}
                b = {tuple(p) for p in child[cell][2 * k : 2 * k + 2]}
                changed += len(a - b)
        assert changed == 1


# -- building --------------------------------------------------------------------------------------
def test_default_network_forward(space: DartsSpace) -> None:
    model = space.build(_random_spec(random.Random(4)), num_classes=10)
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)


@pytest.mark.parametrize(("in_chans", "img_size"), [(1, 8), (3, 16), (3, 32)])
def test_proxy_networks_forward(in_chans: int, img_size: int) -> None:
    spec = _random_spec(random.Random(img_size))
    space = DartsSpace(C=8, layers=5)
    model = space.build(spec, num_classes=5, in_chans=in_chans, img_size=img_size)
    assert model(torch.randn(2, in_chans, img_size, img_size)).shape == (2, 5)
    assert space.flops(spec, num_classes=5, in_chans=in_chans, img_size=img_size) > 0


def test_auxiliary_head_is_read_by_forward_with_aux() -> None:
    model = DartsSpace(C=4, layers=3, auxiliary=True).build(SKIP_SPEC, num_classes=7)
    x = torch.randn(2, 3, 32, 32)
    logits, aux = model.forward_with_aux(x)
    assert logits.shape == aux.shape == (2, 7)
    torch.testing.assert_close(model(x), logits)
    assert DartsSpace(C=4, layers=3).build(SKIP_SPEC, num_classes=7).forward_with_aux(x)[1] is None


def test_bad_sizes_and_options_raise(space: DartsSpace) -> None:
    with pytest.raises(NasntkError, match="multiple of 4"):
        space.build(SKIP_SPEC, num_classes=10, img_size=30)
    with pytest.raises(NasntkError, match="num_classes"):
        space.params(SKIP_SPEC, num_classes=0)
    with pytest.raises(NasntkError, match="auxiliary head needs"):
        DartsSpace(auxiliary=True).build(SKIP_SPEC, num_classes=10, img_size=64)
    for kw, what in (({"C": 0}, "option C"), ({"layers": 2}, "option layers"),
                     ({"C": 8.0}, "option C"), ({"auxiliary": 1}, "option auxiliary")):  # fmt: skip
        with pytest.raises(NasntkError, match=what):
            DartsSpace(**kw)
