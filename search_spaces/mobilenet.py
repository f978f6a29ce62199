"""MobileNet / EfficientNet-style space through timm's EfficientNet builder (arch-def strings).

The network is timm's ``EfficientNet``: a 3x3/2 stem conv, a sequence of stages, an optional
1x1 head conv, global average pool and a linear classifier. Each stage is one timm arch-def
block string ``<type>_r<repeats>_k<kernel>_s<stride>_e<exp>_c<channels>[_se0.25]`` with

    type      ds (depthwise-separable: dw kxk -> pw 1x1) | ir (inverted residual: pw expand ->
              dw kxk -> pw linear, MobileNetV2) | er (edge residual: full kxk expand conv -> pw
              linear, EfficientNetV2/EdgeTPU)
    kernel    3 | 5 | 7            depthwise (ds, ir) or expansion (er) kernel
    exp       expansion ratio      ignored by ds (stored as 1)
    se        squeeze-excite on/off (ratio 0.25 of the block input, timm's default)
    repeats   blocks in the stage  (the first one strides)
    channels  output channels      before the width multiplier

Global fields: ``act`` (relu | relu6 | hard_swish | swish, the activation of every block),
``width`` (channel multiplier, channels rounded to multiples of 8 as in timm), ``stem``
(stem channels, scaled by ``width``) and ``head`` (1x1 head conv channels, 0 = none).

Spec: ``{"stages": [{"block", "kernel", "exp", "se", "repeats", "channels", "stride"}, ...],
"act", "width", "stem", "head"}``. Text form: the stage block strings and ``key=value`` globals,
comma-separated, e.g. ``ds_r1_k3_s1_c16,ir_r2_k5_s2_e6_c24_se0.25,act=relu,width=1.0,stem=16,head=0``.
Sampling keeps the stage strides and per-stage channel choices of a template (constructor
option ``template``; default 5 stages, strides 1, 2, 2, 2, 1 — total stride 16 with the stem).
Convolutions pad, so every image size (8..224) builds.
"""

from __future__ import annotations

import re
from functools import partial
from typing import Any

from timm.layers import get_act_layer
from timm.models._efficientnet_builder import decode_arch_def, round_channels
from timm.models.efficientnet import EfficientNet
from torch import nn

from nasntk.errors import NasntkError
from nasntk.search_spaces.base import (
    Dimension,
    Field,
    SearchSpace,
    Spec,
    check_build_args,
    parse_kv,
    structure_key,
)

BLOCKS = ("ds", "ir", "er")
ACTS = ("relu", "relu6", "hard_swish", "swish")
SE_RATIO = 0.25
MAX_STAGES = 8

STAGE_FIELDS = (
    Field("block", "str", "ir", "ds | ir | er block type", choices=BLOCKS),
    Field("kernel", "int", 3, "kernel size", choices=(3, 5, 7)),
    Field("exp", "float", 6.0, "expansion ratio (ds: 1)", low=1.0, high=8.0, digits=2),
    Field("se", "bool", False, "squeeze-excite on/off"),
    Field("repeats", "int", 1, "blocks in the stage", low=1, high=16),
    Field("channels", "int", None, "output channels (before width)", low=8, high=2048),
    Field("stride", "int", 1, "stride of the first block", choices=(1, 2)),
)
GLOBAL_FIELDS = (
    Field("act", "str", "relu", "activation of every block", choices=ACTS),
    Field("width", "float", 1.0, "channel multiplier", low=0.1, high=4.0, digits=3),
    Field("stem", "int", 16, "stem channels (before width)", low=8, high=256),
    Field("head", "int", 0, "1x1 head conv channels before width (0: none)", low=0, high=4096),
)
#: Default sampling template: (stride, output-channel choices) per stage.
TEMPLATE: tuple[tuple[int, tuple[int, ...]], ...] = (
    (1, (8, 16)),
    (2, (16, 24)),
    (2, (24, 32, 40)),
    (2, (48, 64, 80)),
    (1, (64, 96, 112)),
)
_TOKEN = re.compile(r"^(r|k|s|e|c|se)(\d+(?:\.\d+)?)?$")


def block_string(stage: Spec) -> str:
    """The timm arch-def string of one (canonical) stage."""
    s = f"{stage['block']}_r{stage['repeats']}_k{stage['kernel']}_s{stage['stride']}"
    if stage["block"] != "ds":
        s += f"_e{stage['exp']:g}"
    s += f"_c{stage['channels']}"
    return s + (f"_se{SE_RATIO:g}" if stage["se"] else "")


def parse_block_string(text: str, where: str) -> dict[str, Any]:
    """The stage fields of one block string (values still raw; validated by the space)."""
    parts = text.strip().split("_")
    out: dict[str, Any] = {"block": parts[0]}
    names = {"r": "repeats", "k": "kernel", "s": "stride", "e": "exp", "c": "channels"}
    for tok in parts[1:]:
        m = _TOKEN.match(tok)
        if not m:
            raise NasntkError(
                f"{where}: cannot read {tok!r} in {text!r} (r<n>, k<n>, s<n>, e<x>, c<n>, se)"
            )
        key, val = m.groups()
        if key == "se":
            if val is not None and float(val) not in (0.0, SE_RATIO):
                raise NasntkError(
                    f"{where}: field 'se' must be se (= se{SE_RATIO:g}) or se0, got {tok!r}"
                )
            out["se"] = val is None or float(val) > 0
        elif val is None:
            raise NasntkError(f"{where}: {tok!r} in {text!r} needs a number")
        else:
            out[names[key]] = val
    return out


class MobileNetSpace(SearchSpace):
    """MobileNet/EfficientNet stages via timm arch-def strings (see the module docstring).

    Options: ``template`` (per stage: stride and channel choices), ``max_repeats`` (2),
    ``exps`` (3, 4, 6), ``acts`` (all four), ``widths`` (0.5, 0.75, 1.0), ``stem`` (16),
    ``head`` (0). Sampled per stage ``i``: ``s<i>_block``, ``s<i>_kernel``, ``s<i>_exp``,
    ``s<i>_se``, ``s<i>_repeats``, ``s<i>_channels``; globally ``act`` and ``width``.
    """

    name = "mobilenet"
    dimensions = tuple(
        Dimension(f"stages[i].{d.name}", d.choices, d.help)
        for d in (f.dimension() for f in STAGE_FIELDS)
    ) + tuple(f.dimension() for f in GLOBAL_FIELDS)

    def __init__(
        self,
        template: tuple[tuple[int, tuple[int, ...]], ...] = TEMPLATE,
        max_repeats: int = 2,
        exps: tuple[float, ...] = (3.0, 4.0, 6.0),
        acts: tuple[str, ...] = ACTS,
        widths: tuple[float, ...] = (0.5, 0.75, 1.0),
        stem: int = 16,
        head: int = 0,
    ) -> None:
        if not 1 <= len(template) <= MAX_STAGES:
            raise NasntkError(f"mobilenet: option template must have 1..{MAX_STAGES} stages")
        self.template = tuple((int(s), tuple(int(c) for c in cs)) for s, cs in template)
        self.max_repeats, self.exps, self.acts = max_repeats, tuple(exps), tuple(acts)
        self.widths, self.stem, self.head = tuple(widths), stem, head
        self.validate(self._spec([{"channels": cs[0], "stride": s} for s, cs in self.template]))

    def _spec(self, stages: list[dict[str, Any]], **globals_: Any) -> Spec:
        return {"stages": stages, "act": "relu", "width": 1.0, "stem": self.stem,
                "head": self.head, **globals_}  # fmt: skip

    def suggest(self, trial: Any) -> Spec:
        stages = []
        for i, (stride, channels) in enumerate(self.template):
            stages.append(
                {
                    "block": trial.suggest_categorical(f"s{i}_block", list(BLOCKS)),
                    "kernel": trial.suggest_categorical(f"s{i}_kernel", [3, 5, 7]),
                    "exp": trial.suggest_categorical(f"s{i}_exp", list(self.exps)),
                    "se": trial.suggest_categorical(f"s{i}_se", [False, True]),
                    "repeats": trial.suggest_int(f"s{i}_repeats", 1, self.max_repeats),
                    "channels": trial.suggest_categorical(f"s{i}_channels", list(channels)),
                    "stride": stride,
                }
            )
        act = trial.suggest_categorical("act", list(self.acts))
        width = trial.suggest_categorical("width", list(self.widths))
        return self.validate(self._spec(stages, act=act, width=width))

    def validate(self, spec: Any) -> Spec:
        if isinstance(spec, str):
            return self.parse(spec)
        if not isinstance(spec, dict):
            raise NasntkError(f"mobilenet: spec must be a dict, got {spec!r}")
        known = {"stages"} | {f.name for f in GLOBAL_FIELDS}
        extra = sorted(set(spec) - known)
        if extra:
            raise NasntkError(f"mobilenet: unknown field(s) {extra}; fields are {sorted(known)}")
        stages = spec.get("stages")
        if not isinstance(stages, (list, tuple)) or not 1 <= len(stages) <= MAX_STAGES:
            raise NasntkError(f"mobilenet: field 'stages' must be a list of 1..{MAX_STAGES} stages")
        out_stages = []
        for i, stage in enumerate(stages):
            where = f"mobilenet: stages[{i}]"
            if not isinstance(stage, dict):
                raise NasntkError(f"{where} must be a dict of stage fields, got {stage!r}")
            extra = sorted(set(stage) - {f.name for f in STAGE_FIELDS})
            if extra:
                raise NasntkError(f"{where}: unknown field(s) {extra}")
            if "channels" not in stage:
                raise NasntkError(f"{where}: field 'channels' is missing")
            s = {f.name: f.coerce(where, stage.get(f.name, f.default)) for f in STAGE_FIELDS}
            if s["block"] == "ds":
                s["exp"] = 1.0  # a depthwise-separable block has no expansion
            out_stages.append(s)
        out: Spec = {"stages": out_stages}
        for f in GLOBAL_FIELDS:
            out[f.name] = f.coerce("mobilenet", spec.get(f.name, f.default))
        return out

    def parse(self, text: str) -> Spec:
        text = text.strip()
        if text.startswith("{"):
            return self.parse_any(text)
        stages, globals_ = [], []
        for part in (p.strip() for p in text.split(",")):
            if "=" in part:
                globals_.append(part)
            elif part:
                stages.append(parse_block_string(part, f"mobilenet: stages[{len(stages)}]"))
        return self.validate({"stages": stages, **parse_kv(self.name, ",".join(globals_))})

    def format(self, spec: Spec) -> str:
        s = self.validate(spec)
        parts = [block_string(st) for st in s["stages"]]
        parts += [f"{f.name}={f.text(s[f.name])}" for f in GLOBAL_FIELDS]
        return ",".join(parts)

    def build(
        self, spec: Spec, *, num_classes: int, in_chans: int = 3, img_size: int = 32
    ) -> nn.Module:
        s = self.validate(spec)
        check_build_args(self.name, num_classes, in_chans, img_size)
        round_chs = partial(round_channels, multiplier=s["width"], divisor=8)
        return EfficientNet(
            block_args=decode_arch_def([[block_string(st)] for st in s["stages"]]),
            num_features=round_chs(s["head"]) if s["head"] else 0,
            stem_size=s["stem"],
            round_chs_fn=round_chs,
            act_layer=get_act_layer(s["act"]),
            num_classes=num_classes,
            in_chans=in_chans,
        )

    def rebuild(
        self, spec: Spec, *, num_classes: int = 10, in_chans: int = 3, img_size: int = 32
    ) -> dict[str, Any]:
        s = self.validate(spec)
        arch = [[block_string(st)] for st in s["stages"]]
        head = f"round_chs({s['head']!r})" if s["head"] else "0"
        code = (
            "from functools import partial\n"
            "from timm.layers import get_act_layer\n"
            "from timm.models._efficientnet_builder import decode_arch_def, round_channels\n"
            "from timm.models.efficientnet import EfficientNet\n"
            f"round_chs = partial(round_channels, multiplier={s['width']!r}, divisor=8)\n"
            f"model = EfficientNet(block_args=decode_arch_def({arch!r}), num_features={head}, "
            f"stem_size={s['stem']!r}, round_chs_fn=round_chs, "
            f"act_layer=get_act_layer({s['act']!r}), num_classes={num_classes!r}, "
            f"in_chans={in_chans!r})\n"
        )
        return {"code": code}

    def key(self, spec: Spec) -> str:
        return structure_key(self, self.validate(spec))

    def describe(self, spec: Spec) -> str:
        s = self.validate(spec)
        return " ".join(block_string(st) for st in s["stages"]) + f" {s['act']} x{s['width']:g}"
