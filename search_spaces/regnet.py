"""RegNet design space through timm's ``RegNetCfg`` / ``RegNet``.

RegNet (Radosavovic et al., 2020) gives block ``i`` of a depth-``d`` network the width

    u_i = w0 + wa * i                                   (linear, i = 0..d-1)
    s_i = round(log(u_i / w0) / log(wm))                (stage index)
    w_i = 8 * round(w0 * wm**s_i / 8)                   (quantised, piecewise constant)

and blocks of equal width form a stage; each block is a bottleneck with group convs of
``group_size`` channels, bottleneck width ``w * bottle_ratio`` and optional squeeze-excite of
``se_ratio`` (RegNetY). timm's RegNet needs exactly 4 stages and ``w0 % 8 == 0``.

Spec fields (text form ``key=value,...``): ``depth``, ``w0``, ``wa``, ``wm``, ``group_size``,
``bottle_ratio``, ``se_ratio`` (timm's RegNetCfg names), e.g. RegNetX-200MF is
``depth=13,w0=24,wa=36.44,wm=2.49,group_size=8,bottle_ratio=1.0,se_ratio=0.0``.

Sampling (CPU-friendly by default): depth 6..12, w0 8..32 (step 8), wm 2.0..3.0 (step 0.05)
— so the widest stage has at most 32 * 3**3 = 864 channels — group size 8 | 16, bottleneck
ratio 0.5 | 1, SE 0 | 0.25. ``wa`` is drawn as a position ``wa_pos`` in [0, 1) in the list of the
distinct 4-stage networks that ``wa`` can give for the sampled (depth, w0, wm), and stored as the
smallest ``wa`` (on a 0.25 grid) that gives that network: every sample builds, and equal stage
layouts give equal specs. :meth:`RegNetSpace.key` hashes the built module tree, so specs typed
with different ``wa`` but the same network are also recognised as duplicates.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from timm.models.regnet import RegNet, RegNetCfg, generate_regnet
from torch import nn

from nasntk.errors import NasntkError
from nasntk.search_spaces.base import Field, FieldSpace, Spec, check_build_args, structure_key

WA_STEP = 0.25  # grid on which sampled wa values lie


def block_widths(depth: int, w0: int, wa: float, wm: float) -> list[int]:
    """Per-block widths, exactly as timm's ``generate_regnet`` computes them."""
    widths, _, _ = generate_regnet(wa, w0, wm, depth, 1)
    return widths


def wa_choices(depth: int, w0: int, wm: float) -> list[float]:
    """The smallest ``wa`` on the :data:`WA_STEP` grid for each distinct 4-stage layout.

    Vectorised over the grid with the same float32 arithmetic as ``generate_regnet``.
    The grid ends past ``w0 * (wm**3.5 - 1) / (depth - 1)``, beyond which every block index
    ``s_i`` of the last block rounds to 4 or more (a fifth stage).
    """
    if depth < 4:
        return []
    hi = w0 * (wm**3.5 - 1) / (depth - 1) + 1
    wa = torch.arange(1, math.ceil(hi / WA_STEP) + 1, dtype=torch.float64) * WA_STEP
    cont = torch.arange(depth, dtype=torch.float32)[None, :] * wa.float()[:, None] + w0
    exps = torch.round(torch.log(cont / w0) / math.log(wm))
    widths = (torch.round((w0 * torch.pow(wm, exps)) / 8) * 8).int()
    stages = 1 + (widths[:, 1:] != widths[:, :-1]).sum(dim=1)
    seen: set[tuple[int, ...]] = set()
    out = []
    for k in torch.nonzero(stages == 4).flatten().tolist():
        layout = tuple(widths[k].tolist())
        if layout not in seen:
            seen.add(layout)
            out.append(round(float(wa[k]), 2))
    return out


class RegNetSpace(FieldSpace):
    """RegNet (timm ``RegNetCfg``): depth, w0, wa, wm, group size, bottleneck ratio, SE ratio.

    Text form ``depth=13,w0=24,wa=36.44,wm=2.49,group_size=8,bottle_ratio=1.0,se_ratio=0.0``.
    Sampling ranges are constructor options: ``depth=(6, 12)``, ``w0=(8, 32)``,
    ``wm=(2.0, 3.0)``, ``group_sizes=(8, 16)``, ``bottle_ratios=(0.5, 1.0)``,
    ``se_ratios=(0.0, 0.25)``. ``zero_init_last`` (True, timm's default) zeroes the last BN of
    each block. The stem (32 channels, 3x3/2) and 4 stride-2 stages reduce the resolution 32x;
    convolutions pad, so any image size (8..224) builds.
    """

    name = "regnet"
    fields = (
        Field("depth", "int", 13, "number of blocks", low=4, high=64),
        Field("w0", "int", 24, "initial width (multiple of 8)", low=8, high=1024),
        Field("wa", "float", 36.44, "width slope per block", low=0.0, high=4096.0, digits=2),
        Field("wm", "float", 2.49, "width multiplier between stages", low=1.01, high=8.0, digits=3),
        Field("group_size", "int", 8, "channels per group of the 3x3 group conv", low=1, high=1024),
        Field("bottle_ratio", "float", 1.0, "bottleneck width / block width", low=0.25, high=4.0),
        Field("se_ratio", "float", 0.0, "squeeze-excite ratio (0 = none, RegNetX)", low=0, high=1),
    )

    def __init__(
        self,
        depth: tuple[int, int] = (6, 12),
        w0: tuple[int, int] = (8, 32),
        wm: tuple[float, float] = (2.0, 3.0),
        group_sizes: tuple[int, ...] = (8, 16),
        bottle_ratios: tuple[float, ...] = (0.5, 1.0),
        se_ratios: tuple[float, ...] = (0.0, 0.25),
        zero_init_last: bool = True,
    ) -> None:
        if not (4 <= depth[0] <= depth[1]):
            raise NasntkError(
                f"regnet: option depth must be a range (lo, hi) with 4 <= lo <= hi, got {depth!r}"
            )
        if not (8 <= w0[0] <= w0[1]) or w0[0] % 8 or w0[1] % 8:
            raise NasntkError(f"regnet: option w0 must be a range of multiples of 8, got {w0!r}")
        if not (2.0 <= wm[0] <= wm[1]):
            raise NasntkError(f"regnet: option wm must be a range with 2.0 <= lo <= hi, got {wm!r}")
        self.depth, self.w0, self.wm = tuple(depth), tuple(w0), tuple(wm)
        self.group_sizes, self.bottle_ratios = tuple(group_sizes), tuple(bottle_ratios)
        self.se_ratios, self.zero_init_last = tuple(se_ratios), zero_init_last

    def suggest(self, trial: Any) -> Spec:
        depth = trial.suggest_int("depth", *self.depth)
        w0 = trial.suggest_int("w0", *self.w0, step=8)
        wm = round(trial.suggest_float("wm", *self.wm, step=0.05), 3)
        choices = wa_choices(depth, w0, wm)
        if not choices:  # cannot happen for wm >= 2, depth >= 4 (tested); guard anyway
            raise NasntkError(f"regnet: no wa gives 4 stages for depth={depth}, w0={w0}, wm={wm}")
        pos = trial.suggest_float("wa_pos", 0.0, 1.0)
        wa = choices[min(int(pos * len(choices)), len(choices) - 1)]
        return self.validate(
            {
                "depth": depth,
                "w0": w0,
                "wa": wa,
                "wm": wm,
                "group_size": trial.suggest_categorical("group_size", list(self.group_sizes)),
                "bottle_ratio": trial.suggest_categorical("bottle_ratio", list(self.bottle_ratios)),
                "se_ratio": trial.suggest_categorical("se_ratio", list(self.se_ratios)),
            }
        )

    def check(self, spec: Spec) -> None:
        if spec["w0"] % 8:
            raise NasntkError(f"regnet: field 'w0' is {spec['w0']}; must be a multiple of 8")
        n = len(set(block_widths(spec["depth"], spec["w0"], spec["wa"], spec["wm"])))
        if n != 4:
            raise NasntkError(
                f"regnet: field 'wa' (with depth, w0, wm) gives {n} stages; timm's RegNet needs "
                f"exactly 4 (a larger wa or smaller wm adds stages)"
            )

    #: The spec fields that are timm ``RegNetCfg`` fields of the same name.
    CFG_FIELDS = ("depth", "w0", "wa", "wm", "group_size", "bottle_ratio", "se_ratio")

    def build(
        self, spec: Spec, *, num_classes: int, in_chans: int = 3, img_size: int = 32
    ) -> nn.Module:
        s = self.validate(spec)
        check_build_args(self.name, num_classes, in_chans, img_size)
        cfg = RegNetCfg(**{k: s[k] for k in self.CFG_FIELDS})
        return RegNet(
            cfg, in_chans=in_chans, num_classes=num_classes, zero_init_last=self.zero_init_last
        )

    def rebuild(
        self, spec: Spec, *, num_classes: int = 10, in_chans: int = 3, img_size: int = 32
    ) -> dict[str, Any]:
        s = self.validate(spec)
        cfg = ", ".join(f"{k}={s[k]!r}" for k in self.CFG_FIELDS)
        code = (
            "from timm.models.regnet import RegNet, RegNetCfg\n"
            f"model = RegNet(RegNetCfg({cfg}), in_chans={in_chans!r}, num_classes={num_classes!r}, "
            f"zero_init_last={self.zero_init_last!r})\n"
        )
        return {"code": code}

    def key(self, spec: Spec) -> str:
        return structure_key(self, self.validate(spec))

    def describe(self, spec: Spec) -> str:
        s = self.validate(spec)
        widths = block_widths(s["depth"], s["w0"], s["wa"], s["wm"])
        stages = "-".join(f"{w}x{widths.count(w)}" for w in sorted(set(widths)))
        se = f" se{s['se_ratio']}" if s["se_ratio"] else ""
        return f"regnet {stages} g{s['group_size']} b{s['bottle_ratio']}{se}"
