"""Exact outlines of pixel sets, and the inverse fill, both in ImageJ's pixel geometry.

Outlines follow pixel edges (vertices on integer corners), so a pixel lies inside
an outline exactly when its centre does: the same rule ImageJ uses to turn a
polygon or composite ROI back into pixels. That makes labels -> ROIs -> labels
lossless, holes and multi-part objects included.
"""

from __future__ import annotations

import numpy as np

# Unit steps (dx, dy) in image coordinates (y down), indexed by direction.
_STEPS = ((1, 0), (0, 1), (-1, 0), (0, -1))  # right, down, left, up


def mask_outlines(mask: np.ndarray, origin: tuple[int, int] = (0, 0)) -> list[np.ndarray]:
    """Closed pixel-edge loops (x, y vertex arrays) whose even-odd fill equals `mask`.

    Outer boundaries run clockwise on screen and holes anticlockwise, so both the
    even-odd and the non-zero fill rules reproduce the mask. Diagonally touching
    pixels get separate loops that meet at a corner.
    """
    m = np.pad(np.asarray(mask, bool), 1)
    fg = m[1:-1, 1:-1]
    # Directed boundary edges with the foreground on their right-hand side.
    edges = {}
    for (dy, dx), step, start in (
        ((-1, 0), 0, (0, 0)),  # top edge: (c, r) -> (c+1, r)
        ((0, 1), 1, (1, 0)),   # right edge: (c+1, r) -> (c+1, r+1)
        ((1, 0), 2, (1, 1)),   # bottom edge: (c+1, r+1) -> (c, r+1)
        ((0, -1), 3, (0, 1)),  # left edge: (c, r+1) -> (c, r)
    ):
        nb = m[1 + dy:m.shape[0] - 1 + dy, 1 + dx:m.shape[1] - 1 + dx]
        rows, cols = np.nonzero(fg & ~nb)
        for r, c in zip(rows.tolist(), cols.tolist()):
            edges.setdefault((c + start[0], r + start[1]), []).append(step)
    loops = []
    starts = iter(sorted(edges, key=lambda v: (len(edges[v]), v[1], v[0])))  # plain corners first
    for start in starts:
        if start not in edges:
            continue
        x, y = start
        direction = None
        points = []  # (x, y, direction leaving the vertex), kept only where the direction changes
        while (x, y) != start or direction is None:
            outs = edges[(x, y)]
            if direction is None or len(outs) == 1:
                step = outs[0]
            else:  # a corner shared by diagonal pixels: turn right, so the parts stay apart
                step = (direction + 1) % 4 if (direction + 1) % 4 in outs else (direction + 3) % 4
            outs.remove(step)
            if not outs:
                del edges[(x, y)]
            if step != direction:
                points.append((x, y, step))
            direction = step
            x, y = x + _STEPS[step][0], y + _STEPS[step][1]
        if len(points) > 1 and points[0][2] == direction:
            points.pop(0)  # the start lay in the middle of a straight run
        loop = np.array([(px, py) for px, py, _ in points], dtype=np.int64)
        loops.append(loop + np.asarray(origin, dtype=np.int64))
    return loops


def fill_loops(loops: list[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """Pixels whose centres lie inside `loops` (even-odd rule), as ImageJ fills polygon and composite ROIs."""
    height, width = shape
    out = np.zeros(shape, bool)
    segs = []
    for loop in loops:
        p = np.asarray(loop, float)
        if len(p) > 1 and np.array_equal(p[0], p[-1]):
            p = p[:-1]
        if len(p) < 3:
            continue
        q = np.roll(p, -1, axis=0)
        segs.append(np.hstack([p, q]))
    if not segs:
        return out
    s = np.vstack(segs)
    s = s[s[:, 1] != s[:, 3]]  # horizontal edges never cross a row of pixel centres
    ylo = np.minimum(s[:, 1], s[:, 3])
    yhi = np.maximum(s[:, 1], s[:, 3])
    r0 = max(int(np.floor(ylo.min())) - 1, 0)
    r1 = min(int(np.ceil(yhi.max())) + 1, height)
    for row in range(r0, r1):
        yc = row + 0.5
        hit = (ylo <= yc) & (yc < yhi)
        if not hit.any():
            continue
        e = s[hit]
        xs = np.sort(e[:, 0] + (yc - e[:, 1]) * (e[:, 2] - e[:, 0]) / (e[:, 3] - e[:, 1]))
        for xa, xb in zip(xs[0::2], xs[1::2]):
            c0 = max(int(np.ceil(xa - 0.5)), 0)
            c1 = min(int(np.ceil(xb - 0.5)), width)
            if c1 > c0:
                out[row, c0:c1] = True
    return out
