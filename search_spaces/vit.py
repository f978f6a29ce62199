"""Vision Transformers through timm's ``VisionTransformer``, built for the data's image size.

The image is cut into ``(img_size / patch)**2`` patches, each linearly embedded to ``dim``
channels, plus a learned position embedding (and a class token when ``pool=token``); ``depth``
pre-norm blocks follow, each ``x + MHSA(LN(x))`` with ``heads`` heads of ``dim / heads`` channels,
then ``x + MLP(LN(x))`` with hidden width ``mlp_ratio * dim``; the head reads the class token
(``pool=token``) or the mean over patch tokens (``pool=avg``) and applies a linear classifier.

Spec fields (text form ``key=value,...``): ``patch``, ``dim``, ``depth``, ``heads`` (must divide
``dim``), ``mlp_ratio``, ``pool`` (token | avg), e.g. ViT-Ti/16 is
``patch=16,dim=192,depth=12,heads=3,mlp_ratio=4.0,pool=token``. Building needs ``img_size``
divisible by ``patch``. Sampling (options): patch in (2, 4, 8), heads in (1, 2, 4) of
(8, 16, 32) channels each (so ``dim = heads * head_dim``), depth 1..6, MLP ratio in (1, 2, 4).
"""

from __future__ import annotations

from typing import Any

from timm.models.vision_transformer import VisionTransformer
from torch import nn

from nasntk.errors import NasntkError
from nasntk.search_spaces.base import Field, FieldSpace, Spec, check_build_args


class ViTSpace(FieldSpace):
    """timm VisionTransformer: patch size, embedding dim, depth, heads, MLP ratio, pooling.

    Text form ``patch=4,dim=64,depth=4,heads=4,mlp_ratio=2.0,pool=avg``. Options:
    ``patches`` (2, 4, 8), ``heads`` (1, 2, 4), ``head_dims`` (8, 16, 32), ``depth`` (1, 6),
    ``mlp_ratios`` (1.0, 2.0, 4.0). For large images pass larger patches (e.g. (16, 32) at 224).
    """

    name = "vit"
    fields = (
        Field("patch", "int", 4, "patch size (divides the image size)", low=1, high=64),
        Field("dim", "int", 64, "embedding dimension", low=4, high=4096),
        Field("depth", "int", 4, "number of transformer blocks", low=1, high=48),
        Field("heads", "int", 4, "attention heads (divide dim)", low=1, high=64),
        Field("mlp_ratio", "float", 4.0, "MLP hidden width / dim", low=0.25, high=8.0, digits=3),
        Field(
            "pool", "str", "token", "class token or global average pool", choices=("token", "avg")
        ),
    )

    def __init__(
        self,
        patches: tuple[int, ...] = (2, 4, 8),
        heads: tuple[int, ...] = (1, 2, 4),
        head_dims: tuple[int, ...] = (8, 16, 32),
        depth: tuple[int, int] = (1, 6),
        mlp_ratios: tuple[float, ...] = (1.0, 2.0, 4.0),
    ) -> None:
        if not 1 <= depth[0] <= depth[1]:
            raise NasntkError(
                f"vit: option depth must be a range (lo, hi), 1 <= lo <= hi, got {depth!r}"
            )
        self.patches, self.heads, self.head_dims = tuple(patches), tuple(heads), tuple(head_dims)
        self.depth, self.mlp_ratios = tuple(depth), tuple(mlp_ratios)

    def suggest(self, trial: Any) -> Spec:
        heads = trial.suggest_categorical("heads", list(self.heads))
        return self.validate(
            {
                "patch": trial.suggest_categorical("patch", list(self.patches)),
                "dim": heads * trial.suggest_categorical("head_dim", list(self.head_dims)),
                "depth": trial.suggest_int("depth", *self.depth),
                "heads": heads,
                "mlp_ratio": trial.suggest_categorical("mlp_ratio", list(self.mlp_ratios)),
                "pool": trial.suggest_categorical("pool", ["token", "avg"]),
            }
        )

    def check(self, spec: Spec) -> None:
        if spec["dim"] % spec["heads"]:
            raise NasntkError(
                f"vit: field 'heads' ({spec['heads']}) must divide field 'dim' ({spec['dim']})"
            )

    def _arguments(self, spec: Spec, num_classes: int, in_chans: int, img_size: int) -> dict:
        """timm ``VisionTransformer``'s arguments for a valid spec (``build`` and ``rebuild``)."""
        return dict(img_size=img_size, patch_size=spec["patch"], in_chans=in_chans,
                    num_classes=num_classes, embed_dim=spec["dim"], depth=spec["depth"],
                    num_heads=spec["heads"], mlp_ratio=spec["mlp_ratio"],
                    class_token=spec["pool"] == "token", global_pool=spec["pool"])  # fmt: skip

    def build(
        self, spec: Spec, *, num_classes: int, in_chans: int = 3, img_size: int = 32
    ) -> nn.Module:
        s = self.validate(spec)
        check_build_args(self.name, num_classes, in_chans, img_size)
        if img_size % s["patch"]:
            raise NasntkError(
                f"vit: image size {img_size} is not divisible by patch size {s['patch']}"
            )
        return VisionTransformer(**self._arguments(s, num_classes, in_chans, img_size))

    def rebuild(
        self, spec: Spec, *, num_classes: int = 10, in_chans: int = 3, img_size: int = 32
    ) -> dict[str, Any]:
        kwargs = self._arguments(self.validate(spec), num_classes, in_chans, img_size)
        args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        code = (
            "from timm.models.vision_transformer import VisionTransformer\n"
            f"model = VisionTransformer({args})\n"
        )
        return {"code": code}

    def describe(self, spec: Spec) -> str:
        s = self.validate(spec)
        return (
            f"vit p{s['patch']} d{s['dim']} x{s['depth']} h{s['heads']} "
            f"mlp{s['mlp_ratio']:g} {s['pool']}"
        )
