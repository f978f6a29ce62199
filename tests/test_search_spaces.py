"""Search spaces: registry, sampling, building, round trips, canonical specs, faithful timm builds.

NAS-Bench-201 specifics (cell strings, the benchmark's parameter counts, op semantics) are in
tests/test_nb201.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import optuna
import pytest
import timm
import torch

from nasntk.errors import NasntkError
from nasntk.search_spaces import SearchSpace, get, names, register
from nasntk.search_spaces.base import Field, FieldSpace
from nasntk.search_spaces.darts import DartsSpace
from nasntk.search_spaces.mobilenet import MobileNetSpace
from nasntk.search_spaces.nb101 import NB101Space
from nasntk.search_spaces.nb201 import NB201Space
from nasntk.search_spaces.regnet import RegNetSpace, block_widths, wa_choices
from nasntk.search_spaces.resnet import ResNetSpace
from nasntk.search_spaces.timm_zoo import TimmZooSpace, param_count
from nasntk.search_spaces.vit import ViTSpace

optuna.logging.set_verbosity(optuna.logging.WARNING)

TINY_TEMPLATE = ((1, (8,)), (2, (8, 16)), (2, (16, 24)))
TIMM_TINY = "test_resnet,test_efficientnet,test_vit"

#: Tiny configurations of every space (CPU-friendly), with the image size to test them at.
SPACES: dict[str, tuple[Callable[[], SearchSpace], int]] = {
    "nb201": (lambda: NB201Space(C=4, N=1), 16),
    "nb101": (lambda: NB101Space(stem_channels=8, num_stacks=2, num_cells=1), 16),
    "darts": (lambda: DartsSpace(C=4, layers=3), 16),
    "resnet": (lambda: ResNetSpace(max_blocks=2, widths=(8, 16)), 16),
    "regnet": (lambda: RegNetSpace(depth=(4, 6), w0=(8, 16)), 16),
    "mobilenet": (lambda: MobileNetSpace(template=TINY_TEMPLATE, widths=(0.5, 1.0)), 16),
    "vit": (lambda: ViTSpace(head_dims=(4, 8), depth=(1, 2)), 16),
    "timm": (lambda: TimmZooSpace(pattern=TIMM_TINY, max_params=1e6), 32),
}


@pytest.fixture(autouse=True)
def _no_disk_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NASNTK_CACHE", "")  # the timm zoo must not write into $HOME from tests


def _specs(space: SearchSpace, n: int, seed: int) -> list[dict]:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for _ in range(n):
        trial = study.ask()
        out.append(space.suggest(trial))
        study.tell(trial, 0.0)
    return out


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _timm_count(name: str) -> int:
    with torch.device("meta"):
        return _count(timm.create_model(name, pretrained=False))


# -- registry ------------------------------------------------------------------------------------
def test_registry() -> None:
    assert {"nb201", "nb101", "darts", "resnet", "regnet", "mobilenet", "vit", "timm"} <= set(
        names()
    )
    assert isinstance(get("vit"), ViTSpace)
    assert isinstance(get("nasntk.search_spaces.resnet:ResNetSpace"), ResNetSpace)
    assert get("regnet", depth=(4, 8)).depth == (4, 8)
    register("tiny_vit_test", ViTSpace(depth=(1, 1)))
    assert get("tiny_vit_test").depth == (1, 1)
    with pytest.raises(NasntkError, match="unknown search space"):
        get("no_such_space")
    with pytest.raises(NasntkError, match="unknown option.*no_such_option.*options are"):
        get("resnet", no_such_option=1)
    with pytest.raises(NasntkError, match=r"options are C \(default 16\), N \(default 5\)"):
        get("nb201", bogus=1)


# -- every space: sample, build, forward, round trips ---------------------------------------------
@pytest.mark.parametrize("name", list(SPACES))
def test_random_specs_build_forward_and_round_trip(name: str) -> None:
    make, img = SPACES[name]
    space = make()
    specs = _specs(space, 3, seed=list(SPACES).index(name))
    for i, spec in enumerate(specs):
        assert space.validate(spec) == spec  # suggest returns canonical specs
        assert json.loads(json.dumps(spec)) == spec
        text = space.format(spec)
        assert space.parse(text) == spec and space.format(space.parse(text)) == text
        assert space.parse_any(json.dumps(spec)) == spec
        assert space.key(spec) == space.key(json.loads(json.dumps(spec)))
        assert isinstance(space.describe(spec), str) and "\n" not in space.describe(spec)
        in_chans = 1 if i % 2 else 3
        torch.manual_seed(i)
        model = space.build(spec, num_classes=7, in_chans=in_chans, img_size=img)
        assert model(torch.randn(2, in_chans, img, img)).shape == (2, 7)
        assert space.params(spec, num_classes=7, in_chans=in_chans, img_size=img) == _count(model)
        assert space.flops(spec, num_classes=7, in_chans=in_chans, img_size=img) > 0
    assert space.dimensions and all(d.name and d.choices for d in space.dimensions)


@pytest.mark.parametrize("name", [n for n in SPACES if n != "timm"])
def test_sampling_is_seeded(name: str) -> None:
    space = SPACES[name][0]()
    first, again = _specs(space, 4, seed=3), _specs(space, 4, seed=3)
    assert first == again
    assert len({space.key(s) for s in _specs(space, 8, seed=4)}) > 1


# -- FixedTrial: the trial's parameters map onto the spec --------------------------------------------
def test_fixed_trials() -> None:
    resnet = ResNetSpace().suggest(
        optuna.trial.FixedTrial(
            {
                "block": "bottleneck",
                "layers_0": 1,
                "layers_1": 2,
                "layers_2": 3,
                "layers_3": 1,
                "width": 32,
                "stem": "deep_tiered",
                "avg_down": True,
            }  # fmt: skip
        )
    )
    assert resnet == {"block": "bottleneck", "layers": [1, 2, 3, 1], "width": 32,
                      "stem": "deep_tiered", "avg_down": True}  # fmt: skip
    vit = ViTSpace().suggest(
        optuna.trial.FixedTrial(
            {"heads": 4, "head_dim": 16, "patch": 2, "depth": 3, "mlp_ratio": 2.0, "pool": "avg"}
        )
    )
    assert vit == {"patch": 2, "dim": 64, "depth": 3, "heads": 4, "mlp_ratio": 2.0, "pool": "avg"}
    params = {"depth": 8, "w0": 16, "wm": 2.5, "wa_pos": 0.0, "group_size": 8,
              "bottle_ratio": 1.0, "se_ratio": 0.25}  # fmt: skip
    regnet = RegNetSpace().suggest(optuna.trial.FixedTrial(params))
    assert regnet["wa"] == wa_choices(8, 16, 2.5)[0] and regnet["se_ratio"] == 0.25
    mb_params = {"act": "swish", "width": 0.5}
    for i, (_, chans) in enumerate(TINY_TEMPLATE):
        mb_params.update({f"s{i}_block": "er", f"s{i}_kernel": 5, f"s{i}_exp": 4.0,
                          f"s{i}_se": i == 1, f"s{i}_repeats": 2, f"s{i}_channels": chans[-1]})  # fmt: skip
    mb = MobileNetSpace(template=TINY_TEMPLATE).suggest(optuna.trial.FixedTrial(mb_params))
    assert MobileNetSpace().format(mb) == (
        "er_r2_k5_s1_e4_c8,er_r2_k5_s2_e4_c16_se0.25,er_r2_k5_s2_e4_c24,"
        "act=swish,width=0.5,stem=16,head=0"
    )
    assert TimmZooSpace(pattern=TIMM_TINY, max_params=1e6).suggest(
        optuna.trial.FixedTrial({"model": "test_vit"})
    ) == {"model": "test_vit"}


# -- faithful builds: the spaces reproduce named timm models exactly --------------------------------
@pytest.mark.parametrize(
    ("space", "text", "timm_name"),
    [
        ("resnet", "block=basic,layers=2.2.2.2,width=64", "resnet18"),
        ("resnet", "block=bottleneck,layers=3.4.6.3,width=64,stem=deep,avg_down=1", "resnet50d"),
        ("resnet", "layers=1.1.1.1,stem=deep_tiered,avg_down=1", "resnet10t"),
        ("regnet", "depth=13,w0=24,wa=36.44,wm=2.49,group_size=8", "regnetx_002"),
        ("regnet", "depth=13,w0=24,wa=36.44,wm=2.49,group_size=8,se_ratio=0.25", "regnety_002"),
        (
            "mobilenet",
            "ds_r1_k3_s1_c16,ir_r2_k3_s2_e6_c24,ir_r3_k3_s2_e6_c32,ir_r4_k3_s2_e6_c64,"
            "ir_r3_k3_s1_e6_c96,ir_r3_k3_s2_e6_c160,ir_r1_k3_s1_e6_c320,act=relu6,stem=32,head=1280",
            "mobilenetv2_100",
        ),
        (
            "mobilenet",
            "ds_r1_k3_s1_c16_se,ir_r2_k3_s2_e6_c24_se,ir_r2_k5_s2_e6_c40_se,ir_r3_k3_s2_e6_c80_se,"
            "ir_r3_k5_s1_e6_c112_se,ir_r4_k5_s2_e6_c192_se,ir_r1_k3_s1_e6_c320_se,"
            "act=swish,stem=32,head=1280",
            "efficientnet_b0",
        ),
        ("vit", "patch=16,dim=192,depth=12,heads=3,mlp_ratio=4,pool=token", "vit_tiny_patch16_224"),
    ],
)
def test_specs_reproduce_named_timm_models(space: str, text: str, timm_name: str) -> None:
    sp = get(space)
    spec = sp.parse(text)
    assert sp.params(spec, num_classes=1000, img_size=224) == _timm_count(timm_name)


def test_vit_flops_match_hand_count() -> None:
    """16 tokens of dim 32, 2 blocks, 2 heads, MLP 4x; FLOPs = 2 x multiply-adds of every matmul."""
    spec = ViTSpace().parse("patch=4,dim=32,depth=2,heads=2,mlp_ratio=4,pool=avg")
    t, d = 16, 32
    per_block = (
        t * d * 3 * d + 2 * t * t * d + t * d * d + 2 * t * d * 4 * d
    )  # qkv, attn, proj, mlp
    macs = t * (4 * 4 * 1) * d + 2 * per_block + d * 3  # patch embed (1 channel), blocks, head
    assert ViTSpace().flops(spec, num_classes=3, in_chans=1, img_size=16) == 2 * macs


# -- canonical specs: equal architectures give equal specs / keys -----------------------------------
def test_equal_architectures_equal_specs() -> None:
    rs = ResNetSpace()
    assert rs.parse("width=64,block=basic") == rs.parse("block=basic,layers=2.2.2.2,width=64")
    assert rs.parse("avg_down=true") == rs.parse("avg_down=1") == rs.validate({"avg_down": True})
    mb = MobileNetSpace()
    # a depthwise-separable block has no expansion: the ratio is canonicalised away
    assert mb.parse("ds_r1_k3_s1_e6_c16") == mb.parse("ds_r1_k3_s1_c16")
    vit = ViTSpace()
    assert vit.parse("mlp_ratio=4,dim=64") == vit.parse("dim=64,mlp_ratio=4.0000001")


def test_keys_see_through_reparametrisations() -> None:
    mb = MobileNetSpace()
    a = mb.parse("ir_r1_k3_s1_e6_c16,ir_r1_k3_s2_e6_c32,stem=16,width=1.0")
    b = mb.parse("ir_r1_k3_s1_e6_c32,ir_r1_k3_s2_e6_c64,stem=32,width=0.5")  # same channels
    c = mb.parse("ir_r1_k3_s1_e6_c16,ir_r1_k3_s2_e6_c40,stem=16,width=1.0")
    assert a != b and mb.key(a) == mb.key(b) and mb.key(a) != mb.key(c)
    rg = RegNetSpace()
    choices = wa_choices(8, 16, 2.5)
    lo = next(c for c, nxt in zip(choices, choices[1:], strict=False) if nxt - c > 0.25)
    # wa strictly between two representatives gives the first one's layout: a different spec,
    # the same network
    assert block_widths(8, 16, lo, 2.5) == block_widths(8, 16, lo + 0.25, 2.5)
    a, b = (
        rg.parse(f"depth=8,w0=16,wa={lo},wm=2.5"),
        rg.parse(f"depth=8,w0=16,wa={lo + 0.25},wm=2.5"),
    )
    assert a != b and rg.key(a) == rg.key(b)
    other = wa_choices(8, 16, 2.5)
    assert len({rg.key(rg.parse(f"depth=8,w0=16,wa={wa},wm=2.5")) for wa in other}) == len(other)


def test_regnet_wa_choices_cover_the_default_ranges() -> None:
    """Every sampled (depth, w0, wm) has 4-stage wa's; each gives a distinct layout per timm."""
    for depth in range(6, 13):
        for w0 in (8, 16, 24, 32):
            for k in range(0, 21, 2):
                wm = round(2.0 + 0.05 * k, 3)
                choices = wa_choices(depth, w0, wm)
                layouts = [tuple(block_widths(depth, w0, wa, wm)) for wa in choices]
                assert choices and len(set(layouts)) == len(layouts)
                assert all(len(set(lay)) == 4 for lay in layouts)
                # the representative is the smallest grid wa: one step less changes the layout
                wa = choices[0]
                assert tuple(block_widths(depth, w0, wa - 0.25, wm)) != layouts[0]


# -- malformed specs name the field ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "bad", "field"),
    [
        ("resnet", {"block": "basic", "layers": [2, 2, 2]}, "'layers'"),
        ("resnet", {"block": "dense"}, "'block'"),
        ("resnet", {"width": 3}, "'width'"),
        ("resnet", {"layers": [2, 2, "x", 2]}, r"'layers'\[2\]"),
        ("resnet", {"depth": 3}, "'depth'"),
        ("resnet", "stem=deepest", "'stem'"),
        ("resnet", "avg_down=maybe", "'avg_down'"),
        ("resnet", "width", "key=value"),
        ("regnet", {"w0": 20}, "'w0'"),
        ("regnet", {"wa": 1.0}, "'wa'"),
        ("regnet", {"wm": 1.0}, "'wm'"),
        ("regnet", {"se_ratio": float("nan")}, "'se_ratio'"),
        ("mobilenet", {"stages": []}, "'stages'"),
        ("mobilenet", {"stages": [{"block": "ir"}]}, "'channels'"),
        ("mobilenet", {"stages": [{"channels": 16, "kernel": 4}]}, "'kernel'"),
        ("mobilenet", {"stages": [{"channels": 16}], "act": "gelu"}, "'act'"),
        ("mobilenet", "ir_r1_k3_q2_c16", "'q2'"),
        ("mobilenet", "ir_r1_k3_s3_c16", "'stride'"),
        ("vit", {"dim": 64, "heads": 3}, "'heads'"),
        ("vit", {"pool": "max"}, "'pool'"),
        ("vit", {"patch": 0}, "'patch'"),
        ("timm", {"model": "no_such_net"}, "'model'"),
        ("timm", {"name": "resnet18"}, "'name'"),
    ],
)
def test_malformed_specs_name_the_field(name: str, bad: object, field: str) -> None:
    space = get(name)
    with pytest.raises(NasntkError, match=field):
        space.validate(bad)


# -- sizes: channels, resolutions, and clear refusals ------------------------------------------------
@pytest.mark.parametrize("name", ["resnet", "regnet", "mobilenet", "vit"])
def test_builds_at_8_and_meta_at_224(name: str) -> None:
    make, _ = SPACES[name]
    space = make()
    spec = _specs(space, 1, seed=7)[0]
    if name == "vit":
        spec = {**spec, "patch": 4}
    model = space.build(spec, num_classes=3, in_chans=1, img_size=8)
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 3)
    if name == "vit":
        spec = {**spec, "patch": 16}
    assert space.flops(spec, num_classes=1000, img_size=224) > space.flops(
        spec, img_size=32 if name != "vit" else 16
    )


def test_unbuildable_sizes_are_refused_clearly() -> None:
    with pytest.raises(NasntkError, match="not divisible by patch size 8"):
        ViTSpace().build({"patch": 8}, num_classes=10, img_size=12)
    with pytest.raises(NasntkError, match="in_chans"):
        ResNetSpace().build({}, num_classes=10, in_chans=0)
    with pytest.raises(NasntkError, match="test_vit at 1x8x8 cannot"):
        TimmZooSpace(pattern="test_vit").build(
            {"model": "test_vit"}, num_classes=3, in_chans=1, img_size=8
        )


# -- the timm zoo ------------------------------------------------------------------------------------
def test_timm_zoo_budget_and_names() -> None:
    budget = 400_000
    space = TimmZooSpace(pattern="test_resnet,test_vit*,test_efficientnet", max_params=budget)
    assert space.candidates
    for name in space.candidates:
        assert _count(timm.create_model(name, num_classes=10)) <= budget
    over = [n for n, why in space.excluded.items() if "budget" in why]
    assert over and all(_count(timm.create_model(n, num_classes=10)) > budget for n in over)
    assert set(space.candidates) | set(space.excluded) == set(
        timm.list_models(["test_resnet", "test_vit*", "test_efficientnet"])
    )
    assert space.validate({"model": "resnet18.a1_in1k"}) == {"model": "resnet18"}
    assert space.parse("model=test_vit") == space.parse("test_vit") == {"model": "test_vit"}
    assert param_count("test_vit", num_classes=10) == _count(
        timm.create_model("test_vit", num_classes=10)
    )
    empty = TimmZooSpace(pattern="test_vit", max_params=10)
    with pytest.raises(NasntkError, match="no model matches"):
        empty.suggest(optuna.trial.FixedTrial({"model": "test_vit"}))


# -- the FieldSpace helper used by the flat spaces ---------------------------------------------------
class _Toy(FieldSpace):
    name = "toy"
    fields = (
        Field("n", "int", 2, low=1, high=4),
        Field("xs", "ints", [1], low=0, high=9, length=(1, 3)),
        Field("f", "float", 0.5, low=0, high=1, digits=2),
        Field("on", "bool", False),
    )

    def suggest(self, trial: object) -> dict:  # pragma: no cover - not exercised
        return {}

    def build(self, spec: dict, **kw: object) -> torch.nn.Module:  # pragma: no cover
        return torch.nn.Identity()


def test_field_space_text_form() -> None:
    toy = _Toy()
    spec = toy.parse("n=3, xs=4.5.6, f=0.123, on=yes")
    assert spec == {"n": 3, "xs": [4, 5, 6], "f": 0.12, "on": True}
    assert toy.format(spec) == "n=3,xs=4.5.6,f=0.12,on=1"
    assert [d.name for d in toy.dimensions] == ["n", "xs", "f", "on"]
    for text, what in [("n=5", "'n'"), ("n=1,n=2", "twice"), ("xs=1.2.3.4", "'xs'"),
                       ("n=2.5", "'n'"), ("on=2", "'on'"), ("m=1", "'m'")]:  # fmt: skip
        with pytest.raises(NasntkError, match=what):
            toy.parse(text)


@pytest.mark.parametrize("name", ["resnet", "regnet", "mobilenet", "vit", "timm"])
def test_rebuild_code_gives_the_same_network_without_nasntk(name: str) -> None:
    """The exported code, run with timm alone, builds the network nasntk builds: the same
    parameters (names and shapes), and — given nasntk's weights — the same function."""
    make, size = SPACES[name]
    space = make()
    for spec in _specs(space, 3, seed=5):
        shape = {"num_classes": 7, "in_chans": 3, "img_size": size}
        ours = space.build(spec, **shape).eval()
        code = space.rebuild(spec, **shape)["code"]
        assert "nasntk" not in code
        scope: dict = {}
        exec(code, scope)  # noqa: S102 - the code under test
        theirs = scope["model"].eval()
        a, b = ours.state_dict(), theirs.state_dict()
        assert {k: v.shape for k, v in a.items()} == {k: v.shape for k, v in b.items()}
        theirs.load_state_dict(a)
        x = torch.randn(2, 3, size, size)
        with torch.no_grad():
            assert torch.allclose(ours(x), theirs(x), atol=1e-6)


def test_rebuild_of_cell_spaces_is_the_benchmarks_own_form() -> None:
    from nasntk.search_spaces.darts import parse_genotype
    from nasntk.search_spaces.nb201 import parse_arch

    for name in ("nb201", "nb101", "darts"):
        space = SPACES[name][0]()
        for spec in _specs(space, 3, seed=2):
            info = space.rebuild(spec)
            assert "code" not in info and info["benchmark"].startswith("NAS-Bench")
            if name == "nb201":
                assert parse_arch(info["arch_str"]) == spec["ops"]
            elif name == "nb101":
                same = space.validate({"matrix": info["matrix"], "ops": info["ops"]})
                assert "nb101:" + info["module_hash"] == space.key(same) == space.key(spec)
            else:
                assert space.parse(info["genotype"]) == space.validate(spec)
                assert parse_genotype(info["genotype"])


def test_flops_of_a_model_passing_a_parameter_between_modules() -> None:
    """timm's PiT hands its class token (a parameter) to the next module inside a tuple, which
    torch's FLOP counter could not follow ('Expected gradient function to be set'); both counts
    hold parameters as constants, and the real count leaves requires_grad as it found it."""
    from nasntk.proxies import classic as baselines

    space = TimmZooSpace(pattern="pit_ti_224", max_params=5e6)
    spec = {"model": "pit_ti_224"}
    meta = space.flops(spec, num_classes=10, in_chans=3, img_size=32)
    model = space.build(spec, num_classes=10, in_chans=3, img_size=32)
    real = baselines.flops(model, torch.randn(2, 3, 32, 32))
    assert meta > 1e7 and real > 1e7
    assert abs(meta - real) / real < 0.01  # the meta and the real count agree (attention aside)
    assert all(p.requires_grad for p in model.parameters())
