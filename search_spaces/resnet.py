"""ResNet family through timm's ``ResNet`` class.

A spec is a flat record (text form ``key=value,key=value``)::

    block     basic | bottleneck     residual block (bottleneck outputs 4x the stage width)
    layers    e.g. 2.2.2.2           blocks in each of the 4 stages (timm's ResNet has 4); stage i
                                     has width * 2**i channels and stride 2 (stage 1: stride 1)
    width     8..512                 base width of stage 1 (timm ``channels=(w, 2w, 4w, 8w)``)
    stem      plain | deep | deep_tiered
                                     plain: timm's '' stem, one 7x7/2 conv with 64 channels
                                     (timm fixes it at 64); deep: 3x3 convs w/2, w/2, w;
                                     deep_tiered: 3x3 convs 3*(w/2 // 4), w/2, w (stem_width w/2)
    avg_down  0 | 1                  shortcut downsampling by AvgPool2d(2) + 1x1 conv (ResNet-D)
                                     instead of a strided 1x1 conv

e.g. ``block=basic,layers=2.2.2.2,width=64,stem=plain,avg_down=0`` is resnet18. The stem and
the stages reduce the resolution 32x; convolutions pad, so any image size (8..224) builds.
"""

from __future__ import annotations

from typing import Any

from timm.models.resnet import BasicBlock, Bottleneck, ResNet
from torch import nn

from nasntk.errors import NasntkError
from nasntk.search_spaces.base import Field, FieldSpace, Spec, check_build_args

STEMS = {"plain": "", "deep": "deep", "deep_tiered": "deep_tiered"}


class ResNetSpace(FieldSpace):
    """timm ResNets: block type, blocks per stage, base width, stem type, avg-pool downsampling.

    Text form ``block=basic,layers=2.2.2.2,width=32,stem=deep,avg_down=1`` (missing fields take
    the defaults of resnet18). Sampling (options): block type, 1..``max_blocks`` (3) blocks per
    stage, a width from ``widths`` (8, 16, 32), every stem, avg_down on/off. Option
    ``zero_init_last`` (True, timm's default) zeroes the last BN of each residual branch.
    """

    name = "resnet"
    fields = (
        Field("block", "str", "basic", "residual block type", choices=("basic", "bottleneck")),
        Field("layers", "ints", [2, 2, 2, 2], "blocks per stage", low=1, high=64, length=(4, 4)),
        Field("width", "int", 64, "channels of stage 1 (doubling per stage)", low=8, high=512),
        Field("stem", "str", "plain", "stem type (plain = timm '')", choices=tuple(STEMS)),
        Field("avg_down", "bool", False, "avg-pool + 1x1 conv shortcut downsampling (ResNet-D)"),
    )

    def __init__(
        self,
        max_blocks: int = 3,
        widths: tuple[int, ...] = (8, 16, 32),
        zero_init_last: bool = True,
    ) -> None:
        if not 1 <= max_blocks <= 64:
            raise NasntkError(f"resnet: option max_blocks must be 1..64, got {max_blocks!r}")
        width = next(f for f in self.fields if f.name == "width")
        for w in widths:
            width.coerce("resnet: option widths", w)
        self.max_blocks = max_blocks
        self.widths, self.zero_init_last = tuple(widths), zero_init_last

    def suggest(self, trial: Any) -> Spec:
        return self.validate(
            {
                "block": trial.suggest_categorical("block", ["basic", "bottleneck"]),
                "layers": [trial.suggest_int(f"layers_{i}", 1, self.max_blocks) for i in range(4)],
                "width": trial.suggest_categorical("width", list(self.widths)),
                "stem": trial.suggest_categorical("stem", list(STEMS)),
                "avg_down": trial.suggest_categorical("avg_down", [False, True]),
            }
        )

    def _arguments(self, spec: Spec, num_classes: int, in_chans: int) -> dict[str, Any]:
        """timm ``ResNet``'s arguments for a valid spec, but the block class (``build`` passes
        the class, ``rebuild`` writes its name)."""
        w = spec["width"]
        return dict(layers=tuple(spec["layers"]), channels=(w, 2 * w, 4 * w, 8 * w),
                    stem_width=w // 2, stem_type=STEMS[spec["stem"]], avg_down=spec["avg_down"],
                    num_classes=num_classes, in_chans=in_chans,
                    zero_init_last=self.zero_init_last)  # fmt: skip

    def build(
        self, spec: Spec, *, num_classes: int, in_chans: int = 3, img_size: int = 32
    ) -> nn.Module:
        spec = self.validate(spec)
        check_build_args(self.name, num_classes, in_chans, img_size)
        block = BasicBlock if spec["block"] == "basic" else Bottleneck
        return ResNet(block=block, **self._arguments(spec, num_classes, in_chans))

    def rebuild(
        self, spec: Spec, *, num_classes: int = 10, in_chans: int = 3, img_size: int = 32
    ) -> dict[str, Any]:
        s = self.validate(spec)
        block = "BasicBlock" if s["block"] == "basic" else "Bottleneck"
        args = ", ".join(f"{k}={v!r}" for k, v in self._arguments(s, num_classes, in_chans).items())
        code = f"from timm.models.resnet import ResNet, {block}\nmodel = ResNet(block={block}, {args})\n"
        return {"code": code}

    def describe(self, spec: Spec) -> str:
        s = self.validate(spec)
        stem = "" if s["stem"] == "plain" else f" {s['stem']}-stem"
        down = " avg-down" if s["avg_down"] else ""
        layers = ".".join(map(str, s["layers"]))
        return f"{s['block']} {layers} w{s['width']}{stem}{down}"
