"""NAS-Bench-201: the cell search space and the benchmark's macro network, rebuilt faithfully.

The cell is a DAG on 4 nodes; node 0 is the cell input and node ``j`` (1..3) is the sum over all
edges ``i -> j`` (``i < j``) of ``op_ij(node_i)``; the cell output is node 3. The 6 edges, in the
benchmark's standard order, are ``0->1, 0->2, 1->2, 0->3, 1->3, 2->3`` and each carries one of

    none          zero (x * 0): the edge contributes nothing
    skip_connect  identity
    nor_conv_1x1  ReLU -> Conv1x1 (no bias) -> BN
    nor_conv_3x3  ReLU -> Conv3x3 (pad 1, no bias) -> BN
    avg_pool_3x3  AvgPool2d(3, stride 1, pad 1, count_include_pad=False)

so the space has 5**6 = 15,625 cells. The standard cell string lists the edges node by node,
``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` (``op~i`` is the edge from node ``i``).

Macro network (NAS-Bench-201's ``TinyNetwork`` with an ``InferCell``; C=16, N=5 by default)::

    stem   Conv3x3(in_chans -> C, no bias) -> BN
    stage  N cells at C       | residual reduction C -> 2C  (H/2)
    stage  N cells at 2C      | residual reduction 2C -> 4C (H/4)
    stage  N cells at 4C
    head   BN -> ReLU -> global average pool -> Linear(4C -> num_classes)

A residual reduction block is ``ReLU-Conv3x3(stride 2)-BN -> ReLU-Conv3x3-BN`` plus the shortcut
``AvgPool2d(2) -> Conv1x1 (no bias)``. Every BN has affine parameters and running statistics.

Parameter count (all trainable parameters, BN affine included, as the benchmark's ``params_m``)::

    P = 9*k*C + 2C                                     (stem, k = in_chans)
      + N * sum_{c in C,2C,4C} [ n1*(c^2 + 2c) + n3*(9c^2 + 2c) ]   (cells; n1, n3 = #1x1, #3x3)
      + sum_{(a,b) in (C,2C),(2C,4C)} [ 9ab + 2b + 9b^2 + 2b + ab ]  (reduction blocks)
      + 2*4C + 4C*num_classes + num_classes                        (head)

Spec: ``{"ops": [op_01, op_02, op_12, op_03, op_13, op_23]}`` (standard edge order).
Text form: the standard cell string. The width ``C`` and cells per stage ``N`` are options of the
space (``NB201Space(C=16, N=5)``), not part of a spec.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from nasntk.errors import NasntkError
from nasntk.search_spaces.base import (
    Dimension,
    SearchSpace,
    Spec,
    cell_network_blocks,
    check_build_args,
)

#: The 5 candidate operations, in the benchmark's order.
OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: The 6 edges ``(from, to)`` in the standard order of the cell string.
EDGES: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
#: Optuna parameter names of the edges (``edge_<from>_<to>``).
EDGE_NAMES: tuple[str, ...] = tuple(f"edge_{i}_{j}" for i, j in EDGES)
NUM_NODES = 4


# --------------------------------------------------------------------------------------------
# The cell string
# --------------------------------------------------------------------------------------------
def format_arch(ops: list[str] | tuple[str, ...]) -> str:
    """The standard cell string of 6 ops in edge order, e.g. ``|nor_conv_3x3~0|+|...|``."""
    nodes = []
    for j in range(1, NUM_NODES):
        parts = [f"{ops[k]}~{i}" for k, (i, jj) in enumerate(EDGES) if jj == j]
        nodes.append("|" + "|".join(parts) + "|")
    return "+".join(nodes)


def parse_arch(text: str) -> list[str]:
    """The 6 ops (edge order) of a standard cell string; raises :class:`NasntkError` if malformed."""
    if not isinstance(text, str):
        raise NasntkError(f"nb201: cell string must be a string, got {type(text).__name__}")
    nodes = text.strip().split("+")
    if len(nodes) != NUM_NODES - 1:
        raise NasntkError(
            f"nb201: cell string {text!r} must have {NUM_NODES - 1} nodes separated by '+', "
            f"e.g. {format_arch(['nor_conv_3x3'] * 6)!r}"
        )
    ops: dict[tuple[int, int], str] = {}
    for j, node in enumerate(nodes, start=1):
        parts = [p for p in node.strip().strip("|").split("|")]
        if len(parts) != j:
            raise NasntkError(
                f"nb201: node {j} in {text!r} must have {j} edges 'op~i', got {node!r}"
            )
        for part in parts:
            op, sep, src = part.strip().partition("~")
            if not sep or not src.isdigit() or int(src) >= j:
                raise NasntkError(
                    f"nb201: node {j}: edge {part!r} must look like 'op~i' with i < {j}"
                )
            if op not in OPS:
                raise NasntkError(
                    f"nb201: node {j}: unknown op {op!r}; choose from {', '.join(OPS)}"
                )
            if (int(src), j) in ops:
                raise NasntkError(f"nb201: node {j}: edge from node {src} given twice in {text!r}")
            ops[(int(src), j)] = op
    return [ops[e] for e in EDGES]


# --------------------------------------------------------------------------------------------
# Modules (NAS-Bench-201 semantics)
# --------------------------------------------------------------------------------------------
class ReLUConvBN(nn.Sequential):
    """ReLU -> Conv2d(k, stride, pad = k//2, no bias) -> BatchNorm2d (affine)."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__(
            nn.ReLU(),
            nn.Conv2d(c_in, c_out, kernel_size, stride, kernel_size // 2, bias=False),
            nn.BatchNorm2d(c_out),
        )


class Zero(nn.Module):
    """The ``none`` op: ``x * 0`` (keeps shape, dtype and the autograd graph)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


class AvgPool3x3(nn.AvgPool2d):
    """``AvgPool2d(3, stride 1, pad 1, count_include_pad=False)``, computed as two shifted sums.

    y[h, w] = Σ_{|i|,|j| ≤ 1} x[h+i, w+j] / #{in-image neighbours of (h, w)}: a 1×3 then a 3×1
    sum over the zero-padded input, divided by the same sums of an all-ones image. Same values as
    ``nn.AvgPool2d`` (to float rounding), 3–4× faster forward + backward on CPU, where the pooling
    kernel was the largest single cost of a cell's pNTK.
    """

    def __init__(self) -> None:
        super().__init__(3, stride=1, padding=1, count_include_pad=False)

    @staticmethod
    def _box(x: torch.Tensor) -> torch.Tensor:
        p = F.pad(x, (1, 1, 1, 1))
        r = p[..., :, :-2] + p[..., :, 1:-1] + p[..., :, 2:]
        return r[..., :-2, :] + r[..., 1:-1, :] + r[..., 2:, :]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ones = torch.ones(x.shape[-2:], dtype=x.dtype, device=x.device)
        return self._box(x) / self._box(ones)


def make_op(name: str, channels: int) -> nn.Module:
    """One edge operation at ``channels`` channels, stride 1."""
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3)
    if name == "avg_pool_3x3":
        return AvgPool3x3()
    raise NasntkError(f"nb201: unknown op {name!r}; choose from {', '.join(OPS)}")


class Cell(nn.Module):
    """The NAS-Bench-201 cell: node_j = sum_{i<j} op_ij(node_i), output node 3."""

    def __init__(self, ops: list[str], channels: int) -> None:
        super().__init__()
        self.ops = list(ops)
        self.edges = nn.ModuleList(make_op(op, channels) for op in ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for j in range(1, NUM_NODES):
            terms = [self.edges[k](nodes[i]) for k, (i, jj) in enumerate(EDGES) if jj == j]
            nodes.append(sum(terms[1:], terms[0]))
        return nodes[-1]

    def extra_repr(self) -> str:
        return format_arch(self.ops)


class ResidualReduction(nn.Module):
    """ReLU-Conv3x3(s2)-BN -> ReLU-Conv3x3-BN, plus shortcut AvgPool2d(2) -> Conv1x1 (no bias)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride=2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3)
        self.downsample = nn.Sequential(
            nn.AvgPool2d(2, stride=2), nn.Conv2d(c_in, c_out, 1, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class NB201Network(nn.Module):
    """The NAS-Bench-201 macro network around one cell (the same cell in all 3N positions)."""

    def __init__(
        self, ops: list[str], *, num_classes: int, in_chans: int = 3, C: int = 16, N: int = 5
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_chans, C, 3, padding=1, bias=False), nn.BatchNorm2d(C)
        )
        layers: list[nn.Module] = []
        for stage, c in enumerate((C, 2 * C, 4 * C)):
            if stage > 0:
                layers.append(ResidualReduction(c // 2, c))
            layers.extend(Cell(ops, c) for _ in range(N))
        self.cells = nn.Sequential(*layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(4 * C), nn.ReLU())
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(4 * C, num_classes)

    def block_names(self) -> list[str]:
        """The stem and the cells: the blocks AZ-NAS's terms read (``nasntk.proxies.blocks``)."""
        return cell_network_blocks(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.lastact(self.cells(self.stem(x)))
        return self.classifier(self.global_pooling(x).flatten(1))


def count_params(
    ops: list[str], *, num_classes: int = 10, in_chans: int = 3, C: int = 16, N: int = 5
) -> int:
    """Trainable parameters of :class:`NB201Network`, by the closed form in the module docstring."""
    n1, n3 = ops.count("nor_conv_1x1"), ops.count("nor_conv_3x3")
    total = 9 * in_chans * C + 2 * C
    for c in (C, 2 * C, 4 * C):
        total += N * (n1 * (c * c + 2 * c) + n3 * (9 * c * c + 2 * c))
    for a, b in ((C, 2 * C), (2 * C, 4 * C)):
        total += 9 * a * b + 2 * b + 9 * b * b + 2 * b + a * b
    return total + 2 * 4 * C + 4 * C * num_classes + num_classes


def count_flops(
    ops: list[str],
    *,
    num_classes: int = 10,
    in_chans: int = 3,
    img_size: int = 32,
    C: int = 16,
    N: int = 5,
) -> int:
    """FLOPs of one forward pass of :class:`NB201Network` on one image, as
    ``torch.utils.flop_counter`` counts them (2 per multiply-add of the convolutions and the
    classifier; pooling, BN, ReLU and the edge sums are not counted), in closed form::

        F = 2 · [ 9·k·C·HW                                          (stem, k = in_chans)
                + N · Σ_{c, HW_c} (n1·c² + 9·n3·c²)·HW_c            (cells; stages at HW/4^s)
                + Σ_{(a, b)} (9ab + 9b² + ab)·HW_b                  (reductions, at their output)
                + 4C·num_classes ]                                  (classifier)
    """
    n1, n3 = ops.count("nor_conv_1x1"), ops.count("nor_conv_3x3")
    hw = img_size * img_size
    macs = 9 * in_chans * C * hw
    for stage, c in enumerate((C, 2 * C, 4 * C)):
        hw_c = hw // 4**stage
        macs += N * (n1 * c * c + 9 * n3 * c * c) * hw_c
        if stage > 0:
            a, b = c // 2, c
            macs += (9 * a * b + 9 * b * b + a * b) * hw_c
    return 2 * (macs + 4 * C * num_classes)


# --------------------------------------------------------------------------------------------
# The space
# --------------------------------------------------------------------------------------------
class NB201Space(SearchSpace):
    """NAS-Bench-201 cells (15,625) in the benchmark's macro network.

    Spec ``{"ops": [6 op names]}`` in edge order ``0->1, 0->2, 1->2, 0->3, 1->3, 2->3``; text form
    the standard cell string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``. Options: ``C`` (stem width,
    16) and ``N`` (cells per stage, 5) — the defaults are the benchmark's network. Sampling draws
    each edge with ``trial.suggest_categorical("edge_<i>_<j>", OPS)``, so Optuna's grid sampler
    can enumerate the space (:meth:`grid`).
    """

    name = "nb201"
    dimensions = tuple(
        Dimension(n, " | ".join(OPS), f"operation on the edge node {i} -> node {j}")
        for n, (i, j) in zip(EDGE_NAMES, EDGES, strict=True)
    )

    def __init__(self, C: int = 16, N: int = 5) -> None:
        for field, v in (("C", C), ("N", N)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise NasntkError(f"nb201: option {field} must be a positive integer, got {v!r}")
        self.C, self.N = C, N

    def options(self) -> dict[str, Any]:
        return self.changed_options()

    def grid(self) -> dict[str, list[str]]:
        """The search space as ``optuna.samplers.GridSampler`` wants it (all 15,625 cells)."""
        return {n: list(OPS) for n in EDGE_NAMES}

    def suggest(self, trial: Any) -> Spec:
        return {"ops": [trial.suggest_categorical(n, list(OPS)) for n in EDGE_NAMES]}

    def validate(self, spec: Any) -> Spec:
        if isinstance(spec, str):
            return self.parse(spec)
        if not isinstance(spec, dict):
            raise NasntkError(f"nb201: spec must be a dict like {{'ops': [...]}}, got {spec!r}")
        extra = sorted(set(spec) - {"ops"})
        if extra:
            raise NasntkError(f"nb201: unknown field(s) {extra} in spec; expected only 'ops'")
        if "ops" not in spec:
            raise NasntkError("nb201: spec is missing field 'ops' (6 op names in edge order)")
        ops = spec["ops"]
        if isinstance(ops, str):
            ops = parse_arch(ops)
        if not isinstance(ops, (list, tuple)) or len(ops) != len(EDGES):
            raise NasntkError(
                f"nb201: field 'ops' must be a list of {len(EDGES)} op names, got {ops!r}"
            )
        for k, op in enumerate(ops):
            if op not in OPS:
                i, j = EDGES[k]
                raise NasntkError(
                    f"nb201: field 'ops[{k}]' (edge {i}->{j}) is {op!r}; choose from {', '.join(OPS)}"
                )
        return {"ops": list(ops)}

    def parse(self, text: str) -> Spec:
        text = text.strip()
        if text.startswith("{"):
            return self.parse_any(text)
        return {"ops": parse_arch(text)}

    def format(self, spec: Spec) -> str:
        return format_arch(self.validate(spec)["ops"])

    def cell_graph(self, spec: Spec) -> list[tuple[str, list[str], list[tuple[int, int, str]]]]:
        """Nodes 0 (input) … 3 (output); one edge per op that is not ``none``."""
        ops = self.validate(spec)["ops"]
        pairs = [(j, i) for i in range(1, 4) for j in range(i)]  # EDGE_NAMES order
        edges = [(j, i, op) for (j, i), op in zip(pairs, ops, strict=True) if op != "none"]
        return [("NB201 cell", ["in", "1", "2", "out"], edges)]

    def rebuild(self, spec: Spec, **shape: int) -> dict[str, Any]:
        """The cell as NAS-Bench-201's ``arch_str`` (its API's ``query_index_by_arch``)."""
        return {"benchmark": "NAS-Bench-201", "arch_str": self.format(spec), **self.options()}

    def _checked_ops(self, spec: Spec, num_classes: int, in_chans: int, img_size: int) -> list:
        """The ops of a valid spec, for a network these sizes can build."""
        ops = self.validate(spec)["ops"]
        check_build_args("nb201", num_classes, in_chans, img_size)
        if img_size % 4:
            raise NasntkError(
                f"nb201: image size {img_size} must be a multiple of 4 (two stride-2 reductions "
                "whose residual and shortcut paths must agree in size)"
            )
        return ops

    def build(
        self, spec: Spec, *, num_classes: int, in_chans: int = 3, img_size: int = 32
    ) -> nn.Module:
        ops = self._checked_ops(spec, num_classes, in_chans, img_size)
        return NB201Network(ops, num_classes=num_classes, in_chans=in_chans, C=self.C, N=self.N)

    def params(
        self, spec: Spec, *, num_classes: int = 10, in_chans: int = 3, img_size: int = 32
    ) -> int:
        ops = self.validate(spec)["ops"]
        check_build_args("nb201", num_classes, in_chans, img_size)
        return count_params(ops, num_classes=num_classes, in_chans=in_chans, C=self.C, N=self.N)

    def flops(
        self, spec: Spec, *, num_classes: int = 10, in_chans: int = 3, img_size: int = 32
    ) -> int:
        """FLOPs in closed form (:func:`count_flops`; no build, ~µs instead of ~1 s on meta)."""
        ops = self._checked_ops(spec, num_classes, in_chans, img_size)
        return count_flops(ops, num_classes=num_classes, in_chans=in_chans, img_size=img_size,
                           C=self.C, N=self.N)  # fmt: skip
