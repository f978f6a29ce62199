"""DARTS cells (NAS-Bench-301): the cell space and the benchmark's network, rebuilt faithfully.

A cell has two inputs, states 0 and 1 (the outputs of the two previous cells, each first
preprocessed to ``c`` channels), and four intermediate nodes 2..5. Node ``k + 2`` (k = 0..3) is the
sum of two edges ``op_a(state_i) + op_b(state_j)`` from two *distinct* earlier states
``i != j`` in ``0..k+1``; the cell output is the channel concatenation of nodes 2, 3, 4, 5 (4c
channels). Each edge carries one of the 7 DARTS operations (``c`` channels in and out)::

    max_pool_3x3  MaxPool2d(3, pad 1) -> BN
    avg_pool_3x3  AvgPool2d(3, pad 1, count_include_pad=False) -> BN
    skip_connect  identity (stride 1); FactorizedReduce (stride 2)
    sep_conv_3x3  (ReLU -> depthwise 3x3 -> pointwise 1x1 -> BN) twice, pad 1
    sep_conv_5x5  (ReLU -> depthwise 5x5 -> pointwise 1x1 -> BN) twice, pad 2
    dil_conv_3x3  ReLU -> depthwise 3x3 (dilation 2, pad 2) -> pointwise 1x1 -> BN
    dil_conv_5x5  ReLU -> depthwise 5x5 (dilation 2, pad 4) -> pointwise 1x1 -> BN

No convolution has a bias. Every BatchNorm *inside a cell operation* has no affine parameters
(NASLib's NAS-Bench-301 network, whose parameter counts are the benchmark's ``params_m``; the
original DARTS evaluation network had affine BNs there and no BN after the pools).
``FactorizedReduce(a, b)`` is ``ReLU -> cat(Conv1x1/2(x), Conv1x1/2(x[:, :, 1:, 1:])) -> BN``,
each conv ``a -> b/2``. In a reduction cell the edges leaving states 0 and 1 have stride 2 (the
others stride 1, as the intermediate nodes are already at half resolution). The space has, per
cell, ``prod_k C(k+2, 2) * 7**8 = 180 * 7**8`` (about 1.04e9) cells, so about 1.1e18 (normal,
reduce) pairs.

Macro network (DARTS's ``NetworkCIFAR``; NAS-Bench-301 trained C=32, 8 cells)::

    stem     Conv3x3(in_chans -> 3C, no bias) -> BN
    cells    i = 0..layers-1; cells layers//3 and 2*layers//3 are reduction cells (stride 2,
             doubling c: C, 2C, 4C), all others normal cells. Cell i reads the outputs of cells
             i-2 and i-1 (the stem output stands in for both before cell 0) through
             preprocess0 = FactorizedReduce(c_pp, c) if cell i-1 reduced, else ReLU-Conv1x1-BN,
             preprocess1 = ReLU-Conv1x1-BN(c_p -> c); both BNs affine.
    head     global average pool -> Linear(4 * 4C -> num_classes)
    aux      (option) DARTS's AuxiliaryHeadCIFAR on the output of cell 2*layers//3: ReLU ->
             AvgPool(5, stride 3) -> Conv1x1(16C -> 128) -> BN -> ReLU -> Conv2x2(128 -> 768)
             -> BN -> ReLU -> Linear(768 -> num_classes); used by ``forward_with_aux`` only.

There is no drop-path (the network is scored at initialisation).

Parameter count (trainable parameters, as the benchmark's ``params_m``; the auxiliary head is
*not* counted there)::

    P = 27k*C + 6C                                 (stem: 9*k*3C + BN 2*3C, k = in_chans)
      + sum_cells [ (c_pp + c_p)*c + 4c            (preprocess0 and 1: 1x1 convs + affine BN)
                    + sum_edges p(op, c, stride) ]
      + 16C * num_classes + num_classes            (classifier)
    p(sep_conv_k) = 2*(k^2*c + c^2)   p(dil_conv_k) = k^2*c + c^2
    p(skip_connect, stride 2) = c^2   p(pools) = p(skip_connect, stride 1) = 0
    aux head (if counted): 16C*128 + 256 + 128*768*4 + 1536 + 768*num_classes + num_classes

where ``c_pp``/``c_p`` are the output channels of the two previous cells (3C for the stem, 4c for
a cell). At C=32, layers=8, num_classes=10 this equals ``round(params_m * 1e6)`` for all 360 rows
of the NB301 dev set (with affine BNs inside the cell ops, or with the auxiliary head counted, no
row matches).

FLOPs (as ``torch.utils.flop_counter`` counts them: 2 per multiply-accumulate of convolutions and
the classifier): every convolution uses each weight once per output position, so
``F = 2 * (sum_conv weights * output pixels + classifier weights)``. The benchmark's ``flops_m``
(NASLib's counter) is, on all 360 dev rows exactly, ``F/2`` plus the elements entering every BN
(twice for affine BNs), every ReLU and the global pool, plus 9 per pooling-op output element,
plus 8,704 — about ``0.52 F``.

Spec: ``{"normal": [[op, input] x 8], "reduce": [[op, input] x 8]}``; pairs 2k and 2k+1 feed node
k+2. Canonical form: within a node the pair from the lower input comes first. Text form: the
``Genotype(normal=[('op', i), ...], normal_concat=[2, 3, 4, 5], reduce=[...],
reduce_concat=[2, 3, 4, 5])`` string of DARTS and NAS-Bench-301 (the concat is always nodes
2..5). The width ``C``, the number of cells ``layers`` and ``auxiliary`` are options of the
space (``DartsSpace(C=32, layers=8)``), not part of a spec.
"""

from __future__ import annotations

import ast
import itertools
import random
import re
from typing import Any

import torch
from torch import nn

from nasntk.errors import NasntkError
from nasntk.search_spaces.base import (
    Dimension,
    SearchSpace,
    Spec,
    cell_network_blocks,
    check_build_args,
)
from nasntk.search_spaces.nb201 import AvgPool3x3, ReLUConvBN

#: The 7 candidate operations, in DARTS's ``PRIMITIVES`` order (without ``none``).
OPS: tuple[str, ...] = (
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
#: The two cell types of a spec.
CELLS: tuple[str, ...] = ("normal", "reduce")
#: Intermediate nodes per cell (2..5); each takes two edges.
NUM_NODES = 4
#: The cell output concatenates these nodes (always, in this space).
CONCAT: tuple[int, ...] = (2, 3, 4, 5)

Pair = tuple[str, int]


# --------------------------------------------------------------------------------------------
# Specs: validation and canonical form
# --------------------------------------------------------------------------------------------
def node_inputs(node: int) -> tuple[int, ...]:
    """The states node ``node`` (2..5) may read: ``0 .. node-1``."""
    return tuple(range(node))


def canonical_cell(pairs: list[Pair]) -> list[Pair]:
    """The 8 pairs with each node's two pairs ordered by input (lower input first)."""
    out: list[Pair] = []
    for k in range(NUM_NODES):
        out.extend(sorted(pairs[2 * k : 2 * k + 2], key=lambda p: (p[1], p[0])))
    return out


def check_cell(cell: str, pairs: Any) -> list[Pair]:
    """The canonical 8 ``(op, input)`` pairs of one cell; :class:`NasntkError` names a bad field."""
    if not isinstance(pairs, (list, tuple)) or len(pairs) != 2 * NUM_NODES:
        raise NasntkError(
            f"darts: field {cell!r} must be a list of {2 * NUM_NODES} [op, input] pairs "
            f"(two per node 2..5), got {pairs!r}"
        )
    out: list[Pair] = []
    for p, pair in enumerate(pairs):
        where = f"darts: field '{cell}[{p}]' (node {p // 2 + 2})"
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise NasntkError(f"{where} must be a pair [op, input], got {pair!r}")
        op, src = pair
        if op not in OPS:
            raise NasntkError(f"{where}: unknown op {op!r}; choose from {', '.join(OPS)}")
        allowed = node_inputs(p // 2 + 2)
        if isinstance(src, bool) or not isinstance(src, int) or src not in allowed:
            raise NasntkError(
                f"{where}: input must be an integer in {allowed[0]}..{allowed[-1]} "
                f"(0, 1 = the two previous cells, 2.. = earlier nodes), got {src!r}"
            )
        out.append((op, src))
    for k in range(NUM_NODES):
        if out[2 * k][1] == out[2 * k + 1][1]:
            raise NasntkError(
                f"darts: field '{cell}[{2 * k}]' and '{cell}[{2 * k + 1}]' (node {k + 2}) both "
                f"read input {out[2 * k][1]}; a node's two edges must read distinct inputs"
            )
    return canonical_cell(out)


# --------------------------------------------------------------------------------------------
# The Genotype string
# --------------------------------------------------------------------------------------------
def format_genotype(normal: list[Pair], reduce: list[Pair]) -> str:
    """The DARTS ``Genotype(...)`` string of two cells (pairs in the order given)."""

    def cell(pairs: list[Pair]) -> str:
        return "[" + ", ".join(f"('{op}', {src})" for op, src in pairs) + "]"

    concat = "[" + ", ".join(map(str, CONCAT)) + "]"
    return (
        f"Genotype(normal={cell(normal)}, normal_concat={concat}, "
        f"reduce={cell(reduce)}, reduce_concat={concat})"
    )


_GENOTYPE = re.compile(
    r"^Genotype\(\s*normal\s*=\s*(?P<normal>\[[^\]]*\])\s*,"
    r"\s*normal_concat\s*=\s*(?P<normal_concat>\[[^\]]*\]|range\([^)]*\))\s*,"
    r"\s*reduce\s*=\s*(?P<reduce>\[[^\]]*\])\s*,"
    r"\s*reduce_concat\s*=\s*(?P<reduce_concat>\[[^\]]*\]|range\([^)]*\))\s*\)$"
)


def _literal(field: str, text: str) -> Any:
    """A Python literal (lists, tuples, strings, ints) or ``range(a, b)``, else NasntkError."""
    m = re.fullmatch(r"range\(\s*(\d+)\s*,\s*(\d+)\s*\)", text)
    if m:
        return list(range(int(m.group(1)), int(m.group(2))))
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise NasntkError(f"darts: cannot read {field}={text!r} as a list") from None


def parse_genotype(text: str) -> dict[str, list[Pair]]:
    """The two canonical cells of a ``Genotype(...)`` string; :class:`NasntkError` if malformed."""
    if not isinstance(text, str):
        raise NasntkError(f"darts: genotype must be a string, got {type(text).__name__}")
    m = _GENOTYPE.match(text.strip())
    if not m:
        raise NasntkError(
            "darts: cannot read the genotype; expected \"Genotype(normal=[('sep_conv_3x3', 0), "
            "... 8 pairs], normal_concat=[2, 3, 4, 5], reduce=[... 8 pairs], "
            f'reduce_concat=[2, 3, 4, 5])", got {text[:120]!r}'
        )
    cells = {}
    for cell in CELLS:
        concat = _literal(f"{cell}_concat", m.group(f"{cell}_concat"))
        if concat != list(CONCAT):
            raise NasntkError(
                f"darts: {cell}_concat must be [2, 3, 4, 5] (the cell output concatenates all "
                f"four intermediate nodes in this space), got {m.group(f'{cell}_concat')}"
            )
        pairs = _literal(cell, m.group(cell))
        cells[cell] = check_cell(cell, pairs)
    return cells


# --------------------------------------------------------------------------------------------
# Modules (NAS-Bench-301 semantics, as NASLib builds them)
# --------------------------------------------------------------------------------------------
class FactorizedReduce(nn.Module):
    """ReLU -> cat(Conv1x1/2 of x, of x shifted one pixel) -> BN: ``c_in -> c_out`` at H/2."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True) -> None:
        super().__init__()
        self.relu = nn.ReLU()
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out - c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))


def sep_conv(c: int, k: int, stride: int) -> nn.Sequential:
    """DARTS SepConv: (ReLU -> depthwise kxk -> pointwise -> BN) twice; the first has the stride."""
    layers: list[nn.Module] = []
    for s in (stride, 1):
        layers += [
            nn.ReLU(),
            nn.Conv2d(c, c, k, stride=s, padding=k // 2, groups=c, bias=False),
            nn.Conv2d(c, c, 1, bias=False),
            nn.BatchNorm2d(c, affine=False),
        ]
    return nn.Sequential(*layers)


def dil_conv(c: int, k: int, stride: int) -> nn.Sequential:
    """DARTS DilConv: ReLU -> depthwise kxk (dilation 2) -> pointwise -> BN."""
    return nn.Sequential(
        nn.ReLU(),
        nn.Conv2d(c, c, k, stride=stride, padding=k - 1, dilation=2, groups=c, bias=False),
        nn.Conv2d(c, c, 1, bias=False),
        nn.BatchNorm2d(c, affine=False),
    )


def make_op(name: str, c: int, stride: int) -> nn.Module:
    """One edge operation at ``c`` channels with ``stride`` 1 or 2."""
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(c, c, affine=False)
    if name == "max_pool_3x3":
        return nn.Sequential(nn.MaxPool2d(3, stride, 1), nn.BatchNorm2d(c, affine=False))
    if name == "avg_pool_3x3":
        pool = AvgPool3x3() if stride == 1 else nn.AvgPool2d(3, 2, 1, count_include_pad=False)
        return nn.Sequential(pool, nn.BatchNorm2d(c, affine=False))
    if name in ("sep_conv_3x3", "sep_conv_5x5"):
        return sep_conv(c, int(name[-1]), stride)
    if name in ("dil_conv_3x3", "dil_conv_5x5"):
        return dil_conv(c, int(name[-1]), stride)
    raise NasntkError(f"darts: unknown op {name!r}; choose from {', '.join(OPS)}")


class Cell(nn.Module):
    """A DARTS cell: preprocess both inputs to ``c``; node k+2 = op_a(s_i) + op_b(s_j); cat 2..5."""

    def __init__(
        self, pairs: list[Pair], c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool
    ) -> None:
        super().__init__()
        self.reduction = reduction
        self.pairs = list(pairs)
        self.preprocess0 = FactorizedReduce(c_pp, c) if reduction_prev else ReLUConvBN(c_pp, c, 1)
        self.preprocess1 = ReLUConvBN(c_p, c, 1)
        self.edges = nn.ModuleList(
            make_op(op, c, 2 if reduction and src < 2 else 1) for op, src in self.pairs
        )

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for k in range(NUM_NODES):
            (_, i), (_, j) = self.pairs[2 * k], self.pairs[2 * k + 1]
            states.append(self.edges[2 * k](states[i]) + self.edges[2 * k + 1](states[j]))
        return torch.cat([states[n] for n in CONCAT], dim=1)

    def extra_repr(self) -> str:
        return ("reduce" if self.reduction else "normal") + f"={self.pairs}"


class AuxiliaryHead(nn.Sequential):
    """DARTS's AuxiliaryHeadCIFAR (for an 8x8 input map): pool 5/3 -> 1x1 -> 2x2 conv -> Linear."""

    def __init__(self, c_in: int, num_classes: int) -> None:
        super().__init__(
            nn.ReLU(),
            nn.AvgPool2d(5, stride=3, count_include_pad=False),
            nn.Conv2d(c_in, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.BatchNorm2d(768),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(768, num_classes),
        )


def cell_plan(C: int, layers: int) -> list[tuple[int, int, int, bool, bool]]:
    """Per cell ``(c_pp, c_p, c, reduction, reduction_prev)``: input widths, width, its kind."""
    plan = []
    c_pp = c_p = 3 * C
    c, reduction_prev = C, False
    for i in range(layers):
        reduction = i in (layers // 3, 2 * layers // 3)
        c = 2 * c if reduction else c
        plan.append((c_pp, c_p, c, reduction, reduction_prev))
        c_pp, c_p, reduction_prev = c_p, 4 * c, reduction
    return plan


class DartsNetwork(nn.Module):
    """DARTS's ``NetworkCIFAR`` (NAS-Bench-301 cells) without drop-path; forward -> logits."""

    def __init__(
        self,
        normal: list[Pair],
        reduce: list[Pair],
        *,
        num_classes: int,
        in_chans: int = 3,
        C: int = 32,
        layers: int = 8,
        auxiliary: bool = False,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_chans, 3 * C, 3, padding=1, bias=False), nn.BatchNorm2d(3 * C)
        )
        plan = cell_plan(C, layers)
        self.cells = nn.ModuleList(
            Cell(reduce if red else normal, c_pp, c_p, c, red, red_prev)
            for c_pp, c_p, c, red, red_prev in plan
        )
        self.aux_index = 2 * layers // 3
        self.auxiliary_head = (
            AuxiliaryHead(4 * plan[self.aux_index][2], num_classes) if auxiliary else None
        )
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(4 * plan[-1][2], num_classes)

    def block_names(self) -> list[str]:
        """The stem and the cells: the blocks AZ-NAS's terms read (``nasntk.proxies.blocks``)."""
        return cell_network_blocks(self)

    def forward_with_aux(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(logits, auxiliary logits)``; the second is None without the auxiliary head."""
        s0 = s1 = self.stem(x)
        aux = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1)
            if i == self.aux_index and self.auxiliary_head is not None:
                aux = self.auxiliary_head(s1)
        return self.classifier(self.global_pooling(s1).flatten(1)), aux

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.classifier(self.global_pooling(s1).flatten(1))


def op_params(name: str, c: int, stride: int) -> int:
    """Trainable parameters of one edge operation (its BNs have no affine parameters)."""
    if name.startswith("sep_conv_"):
        k = int(name[-1])
        return 2 * (k * k * c + c * c)
    if name.startswith("dil_conv_"):
        k = int(name[-1])
        return k * k * c + c * c
    if name == "skip_connect" and stride == 2:
        return c * c
    return 0


def count_params(
    normal: list[Pair],
    reduce: list[Pair],
    *,
    num_classes: int = 10,
    in_chans: int = 3,
    C: int = 32,
    layers: int = 8,
    auxiliary: bool = False,
) -> int:
    """Trainable parameters of :class:`DartsNetwork`, by the closed form in the module docstring."""
    plan = cell_plan(C, layers)
    total = 9 * in_chans * 3 * C + 2 * 3 * C
    for c_pp, c_p, c, red, _ in plan:
        total += (c_pp + c_p) * c + 4 * c
        for op, src in reduce if red else normal:
            total += op_params(op, c, 2 if red and src < 2 else 1)
    c_out = 4 * plan[-1][2]
    total += c_out * num_classes + num_classes
    if auxiliary:
        c_aux = 4 * plan[2 * layers // 3][2]
        total += c_aux * 128 + 2 * 128 + 128 * 768 * 4 + 2 * 768 + 768 * num_classes + num_classes
    return total


def op_macs(name: str, c: int, stride: int, pixels: int) -> int:
    """Multiply-accumulates of one edge operation producing ``pixels`` output positions."""
    return pixels * op_params(name, c, stride)  # every weight is used once per output position


def count_flops(
    normal: list[Pair],
    reduce: list[Pair],
    *,
    num_classes: int = 10,
    in_chans: int = 3,
    img_size: int = 32,
    C: int = 32,
    layers: int = 8,
) -> int:
    """FLOPs of one forward pass on one image as ``torch.utils.flop_counter`` counts them.

    2 per multiply-accumulate of the convolutions and the classifier (BN, ReLU, pooling and the
    sums are not counted; nor is the auxiliary head, which ``forward`` does not run). A cell's
    preprocessing runs at its input resolution (FactorizedReduce halves the older input to it);
    its edges run at its output resolution.
    """
    pixels = img_size * img_size
    macs = pixels * in_chans * 9 * 3 * C
    for c_pp, c_p, c, red, _ in cell_plan(C, layers):
        macs += pixels * (c_pp + c_p) * c
        pixels = pixels // 4 if red else pixels
        for op, src in reduce if red else normal:
            macs += op_macs(op, c, 2 if red and src < 2 else 1, pixels)
    macs += 4 * cell_plan(C, layers)[-1][2] * num_classes
    return 2 * macs


# --------------------------------------------------------------------------------------------
# The space
# --------------------------------------------------------------------------------------------
def _pair_choices(node: int) -> list[str]:
    """Optuna choices for the two inputs of ``node``: ``"i,j"`` for all ``i < j < node``."""
    return [f"{i},{j}" for i, j in itertools.combinations(node_inputs(node), 2)]


def _dimensions() -> tuple[Dimension, ...]:
    dims = []
    for cell in CELLS:
        for node in range(2, 2 + NUM_NODES):
            dims.append(
                Dimension(
                    f"{cell}_in_{node}",
                    " | ".join(_pair_choices(node)),
                    f"{cell} cell: the two distinct inputs i < j of node {node} "
                    "(0, 1 = previous cells, 2.. = earlier nodes)",
                )
            )
            for side, which in (("a", "i"), ("b", "j")):
                dims.append(
                    Dimension(
                        f"{cell}_op_{node}{side}",
                        " | ".join(OPS),
                        f"{cell} cell: operation on the edge input {which} -> node {node}",
                    )
                )
    return tuple(dims)


class DartsSpace(SearchSpace):
    """DARTS cells in the NAS-Bench-301 network (C=32, 8 cells), about 1.1e18 (normal, reduce).

    Spec ``{"normal": [[op, input] x 8], "reduce": [[op, input] x 8]}``, pairs 2k, 2k+1 feeding
    node k+2 from distinct inputs in 0..k+1; canonical with each node's lower input first. Text
    form: the DARTS/NB301 ``Genotype(...)`` string. Options: ``C`` (initial channels, 32),
    ``layers`` (cells, 8; at least 3 so that both cell types are used) and ``auxiliary`` (False;
    True adds DARTS's auxiliary head, read by ``forward_with_aux`` and not counted in NB301's
    ``params_m``). The defaults are the benchmark's network; e.g. ``DartsSpace(C=8, layers=5)``
    is a cheap proxy network. Sampling draws per node an unordered input pair ``"i,j"`` and an op
    for each of its two edges, so each canonical spec has exactly one encoding and every one is
    reachable.
    """

    name = "darts"
    dimensions = _dimensions()

    def __init__(self, C: int = 32, layers: int = 8, auxiliary: bool = False) -> None:
        for field, v, low in (("C", C, 1), ("layers", layers, 3)):
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise NasntkError(
                    f"darts: option {field} must be an integer >= {low}, got {v!r}"
                    + (" (two reduction cells and at least one normal cell)" if low > 1 else "")
                )
        if not isinstance(auxiliary, bool):
            raise NasntkError(f"darts: option auxiliary must be True or False, got {auxiliary!r}")
        self.C, self.layers, self.auxiliary = C, layers, auxiliary

    def options(self) -> dict[str, Any]:
        return self.changed_options()

    # -- specs ------------------------------------------------------------------------------------
    def validate(self, spec: Any) -> Spec:
        if isinstance(spec, str):
            return self.parse(spec)
        if not isinstance(spec, dict):
            raise NasntkError(
                f"darts: spec must be a dict like {{'normal': [[op, input], ...], 'reduce': "
                f"[...]}}, got {spec!r}"
            )
        extra = sorted(set(spec) - set(CELLS))
        if extra:
            raise NasntkError(
                f"darts: unknown field(s) {extra} in spec; expected only 'normal' and 'reduce'"
            )
        out: Spec = {}
        for cell in CELLS:
            if cell not in spec:
                raise NasntkError(
                    f"darts: spec is missing field {cell!r} (8 [op, input] pairs, two per node)"
                )
            out[cell] = [[op, src] for op, src in check_cell(cell, spec[cell])]
        return out

    def parse(self, text: str) -> Spec:
        if not isinstance(text, str):
            raise NasntkError(f"darts: genotype must be a string, got {type(text).__name__}")
        text = text.strip()
        if text.startswith("{"):
            return self.parse_any(text)
        cells = parse_genotype(text)
        return {cell: [[op, src] for op, src in cells[cell]] for cell in CELLS}

    def format(self, spec: Spec) -> str:
        spec = self.validate(spec)
        return format_genotype(*(_pairs(spec[cell]) for cell in CELLS))

    def cell_graph(self, spec: Spec) -> list[tuple[str, list[str], list[tuple[int, int, str]]]]:
        """Normal and reduction cell: inputs c_{k-2}, c_{k-1}, nodes 0–3, their concatenation."""
        spec = self.validate(spec)
        out = []
        for cell in CELLS:
            pairs = _pairs(spec[cell])
            nodes = ["k-2", "k-1", "0", "1", "2", "3", "out"]
            edges = [(src, 2 + k // 2, op) for k, (op, src) in enumerate(pairs)]
            edges += [(2 + k, 6, "") for k in range(4)]
            out.append((f"{cell} cell", nodes, edges))
        return out

    def rebuild(self, spec: Spec, **shape: int) -> dict[str, Any]:
        """The cell as the DARTS paper's ``Genotype`` (NAS-Bench-301's input)."""
        return {"benchmark": "NAS-Bench-301 (DARTS)", "genotype": self.format(spec),
                **self.options()}  # fmt: skip

    # -- sampling ---------------------------------------------------------------------------------
    def suggest(self, trial: Any) -> Spec:
        spec: Spec = {}
        for cell in CELLS:
            pairs = []
            for node in range(2, 2 + NUM_NODES):
                inputs = trial.suggest_categorical(f"{cell}_in_{node}", _pair_choices(node))
                i, j = (int(v) for v in inputs.split(","))
                pairs.append([trial.suggest_categorical(f"{cell}_op_{node}a", list(OPS)), i])
                pairs.append([trial.suggest_categorical(f"{cell}_op_{node}b", list(OPS)), j])
            spec[cell] = pairs
        return spec

    def mutate(self, spec: Spec, rng: random.Random) -> Spec:
        """A different valid spec: one edge of one cell gets another op or another input."""
        spec = self.validate(spec)
        while True:
            cell, p = rng.choice(CELLS), rng.randrange(2 * NUM_NODES)
            pairs = [list(pair) for pair in spec[cell]]
            op, src = pairs[p]
            if rng.random() < 0.5:
                pairs[p][0] = rng.choice([o for o in OPS if o != op])
            else:
                other = pairs[p ^ 1][1]
                free = [s for s in node_inputs(p // 2 + 2) if s not in (src, other)]
                if not free:  # node 2 reads both cell inputs: no other input to move to
                    continue
                pairs[p][1] = rng.choice(free)
            return self.validate({**spec, cell: pairs})

    # -- building ---------------------------------------------------------------------------------
    def _check_sizes(self, num_classes: Any, in_chans: Any, img_size: Any) -> None:
        check_build_args("darts", num_classes, in_chans, img_size)
        if img_size % 4:
            raise NasntkError(
                f"darts: image size {img_size} must be a multiple of 4 (two stride-2 reduction "
                "cells whose factorized-reduce halves must agree in size)"
            )
        if self.auxiliary and (img_size // 4 - 5) // 3 + 1 != 2:
            raise NasntkError(
                f"darts: the auxiliary head needs a 32..40 pixel image (an 8..10 map at 2/3 "
                f"depth, pooled to 2x2), got image size {img_size}"
            )

    def _cells(
        self, spec: Spec, num_classes: int, in_chans: int, img_size: int
    ) -> tuple[list[Pair], list[Pair]]:
        """The (normal, reduce) pairs of a valid spec, the sizes checked."""
        spec = self.validate(spec)
        self._check_sizes(num_classes, in_chans, img_size)
        return _pairs(spec["normal"]), _pairs(spec["reduce"])

    def build(
        self, spec: Spec, *, num_classes: int, in_chans: int = 3, img_size: int = 32
    ) -> nn.Module:
        normal, reduce = self._cells(spec, num_classes, in_chans, img_size)
        return DartsNetwork(normal, reduce, num_classes=num_classes, in_chans=in_chans,
                            C=self.C, layers=self.layers, auxiliary=self.auxiliary)  # fmt: skip

    def params(
        self, spec: Spec, *, num_classes: int = 10, in_chans: int = 3, img_size: int = 32
    ) -> int:
        """Trainable parameters by the closed form (``count_params``; ~0.2 ms, no build)."""
        normal, reduce = self._cells(spec, num_classes, in_chans, img_size)
        return count_params(normal, reduce, num_classes=num_classes, in_chans=in_chans,
                            C=self.C, layers=self.layers, auxiliary=self.auxiliary)  # fmt: skip

    def flops(
        self, spec: Spec, *, num_classes: int = 10, in_chans: int = 3, img_size: int = 32
    ) -> int:
        """FLOPs as the base class counts them, by the closed form (``count_flops``, no build)."""
        normal, reduce = self._cells(spec, num_classes, in_chans, img_size)
        return count_flops(normal, reduce, num_classes=num_classes, in_chans=in_chans,
                           img_size=img_size, C=self.C, layers=self.layers)  # fmt: skip


def _pairs(cell: list[list[Any]]) -> list[Pair]:
    return [(op, src) for op, src in cell]
