"""NAS-Bench-101: the cell search space and the benchmark's CIFAR-10 network, rebuilt faithfully.

A cell is a DAG on n <= 7 vertices given by an upper-triangular 0/1 adjacency matrix (row i,
column j = edge i -> j) and one op per vertex: vertex 0 is ``input``, vertex n-1 is ``output``
and every interior vertex is one of

    conv3x3-bn-relu  Conv3x3 (pad 1, no bias) -> BN -> ReLU
    conv1x1-bn-relu  Conv1x1 (no bias) -> BN -> ReLU
    maxpool3x3       MaxPool2d(3, stride 1, pad 1)

with at most 9 edges. As in nasbench's ``ModelSpec``, vertices not on an input -> output path
are *pruned* before anything is built or counted (edges are counted after pruning), and a cell
whose output cannot be reached from its input is invalid.

Cell semantics (nasbench ``model_builder.build_module``), for a cell ``c_in -> c_out``:

- Channels (``compute_vertex_channels``): the k interior vertices feeding the output get
  ``c_out // k`` channels each, the first ``c_out % k`` of them (in vertex order) one more; every
  other interior vertex gets the maximum of its interior successors (channels never increase).
- Interior vertex t: ``op_t( sum_{s -> t, s interior} x_s[:, :c_t] + [proj_t(x_0) if 0 -> t] )``
  where ``proj_t`` is a Conv1x1(c_in -> c_t)-BN-ReLU and ``[:, :c_t]`` truncates channels.
- Output: the concatenation (vertex order) of the vertices feeding it, plus ``proj(x_0)`` (to
  c_out) if ``0 -> output``; if only the input feeds it, just ``proj(x_0)``.

Network (nasbench ``build_model_fn``; ``stem_channels`` C = 128, ``num_stacks`` S = 3,
``num_cells`` N = 3 by default)::

    stem    Conv3x3(in_chans -> C, no bias) -> BN -> ReLU
    stack s N cells at C * 2**s; before stacks s >= 1 a MaxPool2d(2, stride 2) (H / 2) and the
            first cell of the stack doubles the channels
    head    global average pool -> Linear(C * 2**(S-1) -> num_classes)

BN is ``BatchNorm2d(eps=1e-5, momentum=0.003)``, TensorFlow's ``momentum=0.997`` in torch terms.

Parameter count (trainable, BN affine included, as the benchmark's ``trainable_parameters``)::

    P = 9*k*C + 2C + sum over the S*N cells of P_cell(c_in -> c) + c_last*num_classes + num_classes
    P_cell = sum_{interior t} [ 9*c_t^2 + 2c_t  (conv3x3) | c_t^2 + 2c_t (conv1x1) | 0 (maxpool) ]
           + sum_{t: 0 -> t} (c_in * c_t + 2 c_t)         (c_t = c for the output vertex)

on the pruned cell (k = in_chans). FLOPs (:meth:`NB101Space.flops`, closed form) are counted as
``torch.utils.flop_counter`` does: 2 per multiply-add of the convolutions and the Linear layer::

    F = 2 * [ 9*k*C*HW + sum over cells (at their H*W) of MACs_cell + c_last*num_classes ]
    MACs_cell = HW * ( sum_{conv t} kk_t * c_t^2 + sum_{t: 0 -> t} c_in * c_t ),  kk = 9 | 1

NASLib's ``flops_m`` (tensorwatch's count) is exactly F/2 + 3 per BN-ReLU output element + 9 per
maxpool3x3 output element + 1 per input element of each 2x2 downsampling pool.

Spec: ``{"matrix": [[0/1] * n] * n, "ops": [n names]}`` (the matrix may also be given as a flat
0/1 string of n*n characters, row-major). Text form: ``<n*n chars of 0/1>|<ops comma-separated>``.
:meth:`NB101Space.key` is nasbench's isomorphism-invariant hash of the pruned cell
(``graph_util.hash_module``), so it equals the dataset's module hash, prefixed ``nb101:``.
"""

from __future__ import annotations

import hashlib
import math
import random
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

INPUT, OUTPUT = "input", "output"
CONV3X3, CONV1X1, MAXPOOL3X3 = "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3"
#: Interior-vertex ops, in nasbench's ``available_ops`` order (their hash labels are 0, 1, 2).
OPS: tuple[str, ...] = (CONV3X3, CONV1X1, MAXPOOL3X3)
MAX_VERTICES = 7
MAX_EDGES = 9
#: The 21 possible edges ``(i, j)``, i < j, of a 7-vertex cell, row-major.
EDGES: tuple[tuple[int, int], ...] = tuple(
    (i, j) for i in range(MAX_VERTICES) for j in range(i + 1, MAX_VERTICES)
)
#: Optuna parameter names: the 5 interior ops and the 21 edge bits.
OP_NAMES: tuple[str, ...] = tuple(f"op_{t}" for t in range(1, MAX_VERTICES - 1))
EDGE_NAMES: tuple[str, ...] = tuple(f"edge_{i}_{j}" for i, j in EDGES)
BN_EPS, BN_MOMENTUM = 1e-5, 0.003
EXAMPLE = (
    "0111101000001100000010000110000001100000000000000|input,maxpool3x3,maxpool3x3,"
    "conv3x3-bn-relu,conv3x3-bn-relu,conv3x3-bn-relu,output"
)

Matrix = list[list[int]]


# --------------------------------------------------------------------------------------------
# Graph maths (pure Python on small lists)
# --------------------------------------------------------------------------------------------
def num_edges(matrix: Matrix) -> int:
    """Number of edges of an adjacency matrix."""
    return sum(map(sum, matrix))


def _reach(matrix: Matrix, start: int, forward: bool) -> set[int]:
    n, seen, todo = len(matrix), {start}, [start]
    while todo:
        v = todo.pop()
        nbrs = (w for w in range(n) if (matrix[v][w] if forward else matrix[w][v]))
        for w in nbrs:
            if w not in seen:
                seen.add(w)
                todo.append(w)
    return seen


def prune(matrix: Matrix, ops: list[str]) -> tuple[Matrix, list[str]] | None:
    """Drop the vertices not on an input -> output path (nasbench ``ModelSpec._prune``).

    Returns the pruned ``(matrix, ops)``, or ``None`` when the output is unreachable.
    """
    n = len(matrix)
    keep = sorted(_reach(matrix, 0, True) & _reach(matrix, n - 1, False))
    if 0 not in keep or n - 1 not in keep:
        return None
    return [[matrix[i][j] for j in keep] for i in keep], [ops[i] for i in keep]


def vertex_channels(c_in: int, c_out: int, matrix: Matrix) -> list[int]:
    """Channels of every vertex of a pruned cell (nasbench ``compute_vertex_channels``)."""
    n = len(matrix)
    channels = [c_in] + [0] * (n - 2) + [c_out]
    if n == 2:
        return channels
    feeders = [v for v in range(1, n - 1) if matrix[v][n - 1]]
    base, extra = divmod(c_out, len(feeders))
    for rank, v in enumerate(feeders):
        channels[v] = base + (1 if rank < extra else 0)
    for v in range(n - 3, 0, -1):
        if not matrix[v][n - 1]:
            channels[v] = max(channels[w] for w in range(v + 1, n - 1) if matrix[v][w])
    if min(channels[1:-1]) < 1:
        raise NasntkError(
            f"nb101: {c_out} channels cannot be split over the {len(feeders)} vertices feeding "
            "the cell output; use a larger stem_channels"
        )
    return channels


def hash_module(matrix: Matrix, labels: list[int]) -> str:
    """nasbench's ``graph_util.hash_module``: an isomorphism-invariant MD5 of a labelled DAG.

    Each vertex starts from ``md5(str((out_degree, in_degree, label)))``; then n times it is
    rehashed with the sorted hashes of its in- and out-neighbours; the fingerprint is the MD5 of
    the sorted vertex hashes.
    """
    n = len(matrix)
    outs = [sum(matrix[v]) for v in range(n)]
    ins = [sum(matrix[u][v] for u in range(n)) for v in range(n)]
    hashes = [_md5(str((outs[v], ins[v], labels[v]))) for v in range(n)]
    for _ in range(n):
        hashes = [
            _md5(
                "".join(sorted(hashes[u] for u in range(n) if matrix[u][v]))
                + "|"
                + "".join(sorted(hashes[w] for w in range(n) if matrix[v][w]))
                + "|"
                + hashes[v]
            )
            for v in range(n)
        ]
    return _md5(str(sorted(hashes)))


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def cell_params(matrix: Matrix, ops: list[str], c_in: int, c_out: int) -> int:
    """Trainable parameters of one pruned cell ``c_in -> c_out`` (``P_cell`` of the docstring)."""
    channels = vertex_channels(c_in, c_out, matrix)
    total = 0
    for t in range(1, len(matrix)):
        c = channels[t]
        if ops[t] == CONV3X3:
            total += 9 * c * c + 2 * c
        elif ops[t] == CONV1X1:
            total += c * c + 2 * c
        if matrix[0][t]:
            total += c_in * c + 2 * c
    return total


def stack_widths(stem_channels: int, num_stacks: int, num_cells: int) -> list[tuple[int, int]]:
    """``(c_in, c_out)`` of every cell of the network, in order."""
    widths, c_in = [], stem_channels
    for s in range(num_stacks):
        c = stem_channels * 2**s
        for _ in range(num_cells):
            widths.append((c_in, c))
            c_in = c
    return widths


def count_params(
    matrix: Matrix,
    ops: list[str],
    *,
    num_classes: int = 10,
    in_chans: int = 3,
    stem_channels: int = 128,
    num_stacks: int = 3,
    num_cells: int = 3,
) -> int:
    """Trainable parameters of :class:`NB101Network` of a *pruned* cell (docstring closed form)."""
    widths = stack_widths(stem_channels, num_stacks, num_cells)
    total = 9 * in_chans * stem_channels + 2 * stem_channels
    total += sum(cell_params(matrix, ops, a, b) for a, b in widths)
    c_last = widths[-1][1]
    return total + c_last * num_classes + num_classes


def cell_macs(matrix: Matrix, ops: list[str], c_in: int, c_out: int, pixels: int) -> int:
    """Multiply-adds of the convolutions of one pruned cell at ``pixels`` = H*W positions."""
    channels = vertex_channels(c_in, c_out, matrix)
    total = 0
    for t in range(1, len(matrix)):
        c = channels[t]
        if ops[t] in (CONV3X3, CONV1X1):
            total += (9 if ops[t] == CONV3X3 else 1) * c * c * pixels
        if matrix[0][t]:
            total += c_in * c * pixels
    return total


def count_flops(
    matrix: Matrix,
    ops: list[str],
    *,
    num_classes: int = 10,
    in_chans: int = 3,
    img_size: int = 32,
    stem_channels: int = 128,
    num_stacks: int = 3,
    num_cells: int = 3,
) -> int:
    """FLOPs of :class:`NB101Network` of a *pruned* cell as ``torch.utils.flop_counter`` counts
    them: 2 per multiply-add of every convolution and of the Linear layer, nothing else."""
    widths = stack_widths(stem_channels, num_stacks, num_cells)
    macs = 9 * in_chans * stem_channels * img_size**2
    for k, (a, b) in enumerate(widths):
        side = img_size // 2 ** (k // num_cells)
        macs += cell_macs(matrix, ops, a, b, side * side)
    return 2 * (macs + widths[-1][1] * num_classes)


# --------------------------------------------------------------------------------------------
# Text form and validation helpers
# --------------------------------------------------------------------------------------------
def format_matrix(matrix: Matrix) -> str:
    """The row-major 0/1 string of a matrix."""
    return "".join(str(v) for row in matrix for v in row)


def _matrix_from_string(text: str) -> Matrix:
    text = text.strip()
    n = math.isqrt(len(text))
    if n * n != len(text) or set(text) - {"0", "1"}:
        raise NasntkError(
            f"nb101: field 'matrix' as a string must be n*n characters of 0/1 (row-major), "
            f"got {text!r}"
        )
    return [[int(c) for c in text[i * n : (i + 1) * n]] for i in range(n)]


def _canonical_matrix(value: Any) -> Matrix:
    if isinstance(value, str):
        return _matrix_from_string(value)
    if hasattr(value, "tolist") and not isinstance(value, (list, tuple)):
        value = value.tolist()  # numpy arrays, as NASLib and nasbench use
    if not isinstance(value, (list, tuple)) or not all(isinstance(r, (list, tuple)) for r in value):
        raise NasntkError(
            f"nb101: field 'matrix' must be a square list of 0/1 rows or a 0/1 string, got {value!r}"
        )
    n = len(value)
    matrix = []
    for i, row in enumerate(value):
        if len(row) != n:
            raise NasntkError(
                f"nb101: field 'matrix' must be square; row {i} has {len(row)} of {n}"
            )
        for j, v in enumerate(row):
            if v not in (0, 1) or not isinstance(v, (int, bool)):
                raise NasntkError(f"nb101: field 'matrix[{i}][{j}]' must be 0 or 1, got {v!r}")
        matrix.append([int(v) for v in row])
    return matrix


def _canonical_ops(value: Any, n: int) -> list[str]:
    if isinstance(value, str):
        value = [op.strip() for op in value.split(",")]
    if not isinstance(value, (list, tuple)) or len(value) != n:
        raise NasntkError(
            f"nb101: field 'ops' must be a list of {n} op names (one per matrix row), got {value!r}"
        )
    for k, op in enumerate(value):
        want = INPUT if k == 0 else OUTPUT if k == n - 1 else None
        if want is not None and op != want:
            raise NasntkError(f"nb101: field 'ops[{k}]' must be {want!r}, got {op!r}")
        if want is None and op not in OPS:
            raise NasntkError(f"nb101: field 'ops[{k}]' is {op!r}; choose from {', '.join(OPS)}")
    return list(value)


def _pad(matrix: Matrix, ops: list[str]) -> tuple[Matrix, list[str]]:
    """A 7-vertex copy: isolated conv3x3 vertices inserted before the output (same network)."""
    n, m = len(matrix), MAX_VERTICES
    padded = [[0] * m for _ in range(m)]
    for i in range(n):
        for j in range(n):
            padded[i if i < n - 1 else m - 1][j if j < n - 1 else m - 1] = matrix[i][j]
    return padded, ops[:-1] + [CONV3X3] * (m - n) + [OUTPUT]


# --------------------------------------------------------------------------------------------
# Modules (NAS-Bench-101 semantics)
# --------------------------------------------------------------------------------------------
class ConvBnRelu(nn.Sequential):
    """Conv2d(k, pad k//2, no bias) -> BatchNorm2d (affine) -> ReLU."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel_size, padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(c_out, eps=BN_EPS, momentum=BN_MOMENTUM),
            nn.ReLU(),
        )


def make_op(name: str, channels: int) -> nn.Module:
    """The op of an interior vertex at ``channels`` channels, stride 1."""
    if name == CONV3X3:
        return ConvBnRelu(channels, channels, 3)
    if name == CONV1X1:
        return ConvBnRelu(channels, channels, 1)
    if name == MAXPOOL3X3:
        return nn.MaxPool2d(3, stride=1, padding=1)
    raise NasntkError(f"nb101: unknown op {name!r}; choose from {', '.join(OPS)}")


class Cell(nn.Module):
    """One NAS-Bench-101 cell of a pruned ``(matrix, ops)``, ``c_in -> c_out`` channels."""

    def __init__(self, matrix: Matrix, ops: list[str], c_in: int, c_out: int) -> None:
        super().__init__()
        self.matrix = [list(row) for row in matrix]
        self.ops = list(ops)
        self.channels = vertex_channels(c_in, c_out, self.matrix)
        n = len(matrix)
        self.vertex_ops = nn.ModuleList(make_op(ops[t], self.channels[t]) for t in range(1, n - 1))
        self.projections = nn.ModuleDict(
            {str(t): ConvBnRelu(c_in, self.channels[t], 1) for t in range(1, n) if matrix[0][t]}
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m, c, out = self.matrix, self.channels, len(self.matrix) - 1
        states, concat = [x], []
        for t in range(1, out):
            terms = [states[s][:, : c[t]] for s in range(1, t) if m[s][t]]
            if m[0][t]:
                terms.append(self.projections[str(t)](x))
            states.append(self.vertex_ops[t - 1](sum(terms[1:], terms[0])))
            if m[t][out]:
                concat.append(states[t])
        if not concat:
            return self.projections[str(out)](x)
        y = concat[0] if len(concat) == 1 else torch.cat(concat, dim=1)
        if m[0][out]:
            y = y + self.projections[str(out)](x)
        return y

    def extra_repr(self) -> str:
        return f"{format_matrix(self.matrix)}|{','.join(self.ops)}, channels={self.channels}"


class NB101Network(nn.Module):
    """The NAS-Bench-101 network around one pruned cell (the same cell in all S*N positions)."""

    def __init__(
        self,
        matrix: Matrix,
        ops: list[str],
        *,
        num_classes: int,
        in_chans: int = 3,
        stem_channels: int = 128,
        num_stacks: int = 3,
        num_cells: int = 3,
    ) -> None:
        super().__init__()
        self.stem = ConvBnRelu(in_chans, stem_channels, 3)
        layers: list[nn.Module] = []
        widths = stack_widths(stem_channels, num_stacks, num_cells)
        for k, (c_in, c_out) in enumerate(widths):
            if k and k % num_cells == 0:
                layers.append(nn.MaxPool2d(2, stride=2))
            layers.append(Cell(matrix, ops, c_in, c_out))
        self.cells = nn.Sequential(*layers)
        self.classifier = nn.Linear(widths[-1][1], num_classes)

    def block_names(self) -> list[str]:
        """The stem and the cells: the blocks AZ-NAS's terms read (``nasntk.proxies.blocks``)."""
        return cell_network_blocks(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.cells(self.stem(x)).mean(dim=(2, 3)))


# --------------------------------------------------------------------------------------------
# The space
# --------------------------------------------------------------------------------------------
class NB101Space(SearchSpace):
    """NAS-Bench-101 cells (423,624 unique after pruning) in the benchmark's network.

    Spec ``{"matrix": [[0/1]*n]*n, "ops": ["input", ..., "output"]}`` (n <= 7, <= 9 edges after
    pruning); text form ``<n*n 0/1 chars>|<ops comma-separated>``. Options: ``stem_channels``
    (128), ``num_stacks`` (3) and ``num_cells`` per stack (3) — the defaults are the benchmark's
    network; smaller values give a cheap proxy (e.g. ``NB101Space(stem_channels=16, num_cells=1)``).

    Sampling draws the 5 interior ops ``op_1..op_5`` and the 21 edge bits ``edge_i_j`` of a
    7-vertex cell with ``trial.suggest_categorical``, then repairs an invalid draw
    deterministically: an unreachable output gets the edge ``input -> output`` (the pruned cell is
    then that one edge); a cell with more than 9 edges after pruning loses edges, visiting them in
    reverse row-major order (``5->6, 4->6, 4->5, ...``) and removing each one that is still on an
    input -> output path and whose removal keeps the output reachable, until 9 remain. A valid
    draw is returned unchanged, so every valid 7-vertex spec can be sampled.
    """

    name = "nb101"
    dimensions = tuple(
        Dimension(n, " | ".join(OPS), f"operation of interior vertex {t} (pruned if unused)")
        for t, n in enumerate(OP_NAMES, start=1)
    ) + tuple(
        Dimension(
            n,
            "0 | 1",
            f"edge vertex {i} -> vertex {j} (0 = input, 6 = output); at most 9 edges after "
            "pruning, output reachable (invalid draws are repaired)",
        )
        for n, (i, j) in zip(EDGE_NAMES, EDGES, strict=True)
    )

    def __init__(self, stem_channels: int = 128, num_stacks: int = 3, num_cells: int = 3) -> None:
        for field, v in (
            ("stem_channels", stem_channels),
            ("num_stacks", num_stacks),
            ("num_cells", num_cells),
        ):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise NasntkError(f"nb101: option {field} must be a positive integer, got {v!r}")
        self.stem_channels, self.num_stacks, self.num_cells = stem_channels, num_stacks, num_cells

    def options(self) -> dict[str, Any]:
        return self.changed_options()

    # -- specs ------------------------------------------------------------------------------
    def validate(self, spec: Any) -> Spec:
        if isinstance(spec, str):
            return self.parse(spec)
        if not isinstance(spec, dict):
            raise NasntkError(
                f"nb101: spec must be a dict like {{'matrix': [[...]], 'ops': [...]}}, got {spec!r}"
            )
        extra = sorted(set(spec) - {"matrix", "ops"})
        if extra:
            raise NasntkError(
                f"nb101: unknown field(s) {extra} in spec; expected only 'matrix' and 'ops'"
            )
        for field in ("matrix", "ops"):
            if field not in spec:
                raise NasntkError(f"nb101: spec is missing field {field!r}")
        matrix = _canonical_matrix(spec["matrix"])
        n = len(matrix)
        if not 2 <= n <= MAX_VERTICES:
            raise NasntkError(
                f"nb101: field 'matrix' has {n} vertices; a cell has 2..{MAX_VERTICES}"
            )
        for i in range(n):
            for j in range(i + 1):
                if matrix[i][j]:
                    raise NasntkError(
                        f"nb101: field 'matrix[{i}][{j}]' is 1 but the matrix must be strictly "
                        "upper triangular (edges go from a lower to a higher vertex)"
                    )
        ops = _canonical_ops(spec["ops"], n)
        pruned = prune(matrix, ops)
        if pruned is None:
            raise NasntkError(
                "nb101: field 'matrix': the output vertex cannot be reached from the input"
            )
        edges = num_edges(pruned[0])
        if edges > MAX_EDGES:
            raise NasntkError(
                f"nb101: field 'matrix' has {edges} edges on input -> output paths; at most "
                f"{MAX_EDGES} are allowed"
            )
        return {"matrix": matrix, "ops": ops}

    def parse(self, text: str) -> Spec:
        if not isinstance(text, str):
            raise NasntkError(f"nb101: text form must be a string, got {type(text).__name__}")
        text = text.strip()
        if text.startswith("{"):
            return self.parse_any(text)
        matrix, sep, ops = text.partition("|")
        if not sep or "|" in ops:
            raise NasntkError(
                f"nb101: cannot read {text!r}; expected '<n*n chars of 0/1>|<n ops, "
                f"comma-separated>', e.g. {EXAMPLE!r}"
            )
        return self.validate({"matrix": matrix, "ops": ops})

    def format(self, spec: Spec) -> str:
        spec = self.validate(spec)
        return f"{format_matrix(spec['matrix'])}|{','.join(spec['ops'])}"

    def cell_graph(self, spec: Spec) -> list[tuple[str, list[str], list[tuple[int, int, str]]]]:
        """The pruned cell: its vertices (ops abbreviated) and the adjacency's edges."""
        short = {"input": "in", "output": "out", "conv3x3-bn-relu": "3x3",
                 "conv1x1-bn-relu": "1x1", "maxpool3x3": "pool"}  # fmt: skip
        p = self.pruned(spec)
        m = p["matrix"]
        edges = [(i, j, "") for i in range(len(m)) for j in range(len(m)) if m[i][j]]
        return [("NB101 cell", [short.get(o, o) for o in p["ops"]], edges)]

    def rebuild(self, spec: Spec, **shape: int) -> dict[str, Any]:
        """The pruned cell as NAS-Bench-101's ``ModelSpec(matrix, ops)`` arguments."""
        p = self.pruned(spec)
        return {"benchmark": "NAS-Bench-101", "matrix": p["matrix"], "ops": p["ops"],
                "module_hash": self.key(spec).removeprefix("nb101:"), **self.options()}  # fmt: skip

    def pruned(self, spec: Spec) -> Spec:
        """The spec with the vertices off every input -> output path removed (same network)."""
        spec = self.validate(spec)
        matrix, ops = prune(spec["matrix"], spec["ops"])  # type: ignore[misc]  # validated
        return {"matrix": matrix, "ops": ops}

    def describe(self, spec: Spec) -> str:
        """The text form of the pruned cell (shorter when vertices are unused)."""
        return self.format(self.pruned(spec))

    def key(self, spec: Spec) -> str:
        """``nb101:`` + nasbench's module hash of the pruned cell (isomorphism-invariant).

        As in the benchmark, isomorphic cells share a key even though the channel split gives
        the remainder channels to the lowest-numbered vertices feeding the output, so their
        parameter counts can differ slightly (up to ~35k of millions on the dev rows).
        """
        p = self.pruned(spec)
        labels = [-1] + [OPS.index(op) for op in p["ops"][1:-1]] + [-2]
        return f"{self.name}:{hash_module(p['matrix'], labels)}"

    # -- sampling ---------------------------------------------------------------------------
    def suggest(self, trial: Any) -> Spec:
        inner = [trial.suggest_categorical(n, list(OPS)) for n in OP_NAMES]
        bits = [trial.suggest_categorical(n, [0, 1]) for n in EDGE_NAMES]
        matrix = [[0] * MAX_VERTICES for _ in range(MAX_VERTICES)]
        for (i, j), bit in zip(EDGES, bits, strict=True):
            matrix[i][j] = int(bit)
        return self.validate({"matrix": _repair(matrix), "ops": [INPUT, *inner, OUTPUT]})

    def mutate(self, spec: Spec, rng: random.Random) -> Spec:
        """A valid neighbour: one interior op changed or one edge flipped, chosen at random.

        Works on the 7-vertex form (smaller cells are padded with isolated vertices before the
        output, so they can grow). Draws uniformly among the single changes that give a different
        network (another :meth:`key`); if there is none (e.g. the lone ``input -> output`` cell),
        among those that give a different valid spec, so a walk can still move on.
        """
        spec = self.validate(spec)
        matrix, ops = _pad(spec["matrix"], spec["ops"])
        here = self.key(spec)
        moves: list[Spec] = []
        for t in range(1, MAX_VERTICES - 1):
            for op in OPS:
                if op != ops[t]:
                    moves.append({"matrix": matrix, "ops": ops[:t] + [op] + ops[t + 1 :]})
        for i, j in EDGES:
            flipped = [list(row) for row in matrix]
            flipped[i][j] ^= 1
            moves.append({"matrix": flipped, "ops": list(ops)})
        valid = [m for m in moves if _is_valid(m)]
        changed = [m for m in valid if self.key(m) != here]
        return self.validate(rng.choice(changed or valid))

    # -- building ---------------------------------------------------------------------------
    def _check_sizes(self, num_classes: Any, in_chans: Any, img_size: Any) -> None:
        check_build_args("nb101", num_classes, in_chans, img_size)
        factor = 2 ** (self.num_stacks - 1)
        if img_size % factor:
            raise NasntkError(
                f"nb101: image size {img_size} must be a multiple of {factor} "
                f"({self.num_stacks - 1} stride-2 max-pools between the {self.num_stacks} stacks)"
            )

    def build(
        self, spec: Spec, *, num_classes: int, in_chans: int = 3, img_size: int = 32
    ) -> nn.Module:
        p = self.pruned(spec)
        self._check_sizes(num_classes, in_chans, img_size)
        return NB101Network(
            p["matrix"], p["ops"], num_classes=num_classes, in_chans=in_chans, **self._options()
        )

    def params(
        self, spec: Spec, *, num_classes: int = 10, in_chans: int = 3, img_size: int = 32
    ) -> int:
        """Trainable parameters by the closed form (``count_params``; ~0.1 ms, no build)."""
        p = self.pruned(spec)
        self._check_sizes(num_classes, in_chans, img_size)
        return count_params(
            p["matrix"], p["ops"], num_classes=num_classes, in_chans=in_chans, **self._options()
        )

    def flops(
        self, spec: Spec, *, num_classes: int = 10, in_chans: int = 3, img_size: int = 32
    ) -> int:
        """FLOPs as the base class counts them, by the closed form (``count_flops``, no build)."""
        p = self.pruned(spec)
        self._check_sizes(num_classes, in_chans, img_size)
        return count_flops(
            p["matrix"],
            p["ops"],
            num_classes=num_classes,
            in_chans=in_chans,
            img_size=img_size,
            **self._options(),
        )

    def _options(self) -> dict[str, int]:
        return {
            "stem_channels": self.stem_channels,
            "num_stacks": self.num_stacks,
            "num_cells": self.num_cells,
        }


def _is_valid(spec: Spec) -> bool:
    pruned = prune(spec["matrix"], spec["ops"])
    return pruned is not None and num_edges(pruned[0]) <= MAX_EDGES


def _repair(matrix: Matrix) -> Matrix:
    """The sampling repair rule of :class:`NB101Space` (a valid matrix is returned unchanged)."""
    matrix = [list(row) for row in matrix]
    out = len(matrix) - 1
    ops = [""] * len(matrix)  # labels do not matter for reachability
    if prune(matrix, ops) is None:
        matrix[0][out] = 1
        return matrix
    for i, j in reversed(EDGES):
        live = prune(matrix, ops)
        assert live is not None
        if num_edges(live[0]) <= MAX_EDGES:
            break
        keep = _reach(matrix, 0, True) & _reach(matrix, out, False)
        if not matrix[i][j] or i not in keep or j not in keep:
            continue
        matrix[i][j] = 0
        if prune(matrix, ops) is None:
            matrix[i][j] = 1
    return matrix
