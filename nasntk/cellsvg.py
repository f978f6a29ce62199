"""A cell as a small SVG drawing: nodes on a line, edges as labelled arcs.

Pure text in, text out (no plotting library): ``svg(nodes, edges)`` with ``nodes`` the node
labels in topological order and ``edges`` ``(source index, target index, label)``. Node i sits at
x = m + i·d on one horizontal line; the edge from i to j (i < j) is a quadratic arc whose height
grows with j − i, above the line for even i and below for odd i so that arcs of one node do not
cover each other; its label sits at the top of the arc. Used for the rank-1 cell of cell spaces
in the HTML report (:meth:`SearchSpace.cell_graph`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from html import escape

__all__ = ["svg"]

_STEP = 120  # horizontal distance between nodes
_MARGIN = 50
_RISE = 34  # arc height per node skipped


def _arc(i: int, j: int, mid: float, k: int) -> tuple[str, float, float]:
    """Path of the arc i → j and where its label goes."""
    x1, x2 = _MARGIN + i * _STEP, _MARGIN + j * _STEP
    sign = -1 if k % 2 == 0 else 1
    h = sign * (_RISE * (j - i) if j - i > 1 else 18)
    cx, cy = (x1 + x2) / 2, mid + 2 * h
    path = f"M{x1 + 14},{mid} Q{cx},{cy} {x2 - 14},{mid}"
    return path, cx, mid + h - (4 if sign < 0 else -12)


def svg(nodes: Sequence[str], edges: Sequence[tuple[int, int, str]], title: str = "") -> str:
    """The drawing as one ``<svg>`` element (inline in an HTML page)."""
    n = len(nodes)
    # one marker id per drawing: several drawings share a page
    mark = "arrow-" + hashlib.sha1(repr((nodes, edges, title)).encode()).hexdigest()[:8]
    span = max((j - i for i, j, _ in edges), default=1)
    half = _RISE * span + 30
    width = 2 * _MARGIN + (n - 1) * _STEP
    height = 2 * half + (24 if title else 0)
    mid = half + (24 if title else 0)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="cell" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title or "cell")}">',
        f'<defs><marker id="{mark}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#555"/></marker></defs>',
    ]
    if title:
        out.append(f'<text x="{width / 2}" y="16" text-anchor="middle" font-weight="bold">'
                   f"{escape(title)}</text>")  # fmt: skip
    for i, j, label in sorted(edges):
        path, lx, ly = _arc(i, j, mid, i)
        out.append(f'<path d="{path}" fill="none" stroke="#555" marker-end="url(#{mark})"/>')
        if label:
            out.append(f'<text x="{lx}" y="{ly}" text-anchor="middle" font-size="11" '
                       f'fill="#1a5fb4">{escape(label)}</text>')  # fmt: skip
    for i, name in enumerate(nodes):
        x = _MARGIN + i * _STEP
        out.append(f'<circle cx="{x}" cy="{mid}" r="14" fill="#f2f2f2" stroke="#333"/>')
        out.append(f'<text x="{x}" y="{mid + 4}" text-anchor="middle" font-size="10">'
                   f"{escape(name)}</text>")  # fmt: skip
    out.append("</svg>")
    return "\n".join(out)
