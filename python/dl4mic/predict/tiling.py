"""Tiled inference with overlap: any image size, bounded memory, the same result as one pass."""

from __future__ import annotations

from typing import Callable

import numpy as np


def _pad_to_multiple(x: np.ndarray, multiple: int) -> tuple[np.ndarray, tuple[int, int]]:
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        x = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(0, ph), (0, pw)], mode="symmetric")
    return x, (h, w)


def _starts(size: int, tile: int) -> list[int]:
    if size <= tile:
        return [0]
    starts = list(range(0, size - tile, tile)) + [size - tile]
    return sorted(set(starts))


def predict_tiled(run: Callable[[np.ndarray], np.ndarray], image: np.ndarray, tile: int | None,
                  halo: int, multiple: int) -> np.ndarray:
    """Apply `run` ((1, c, h, w) -> (1, C, h, w)) to a (h, w) or channels-first (c, h, w) image in tiles of
    `tile` pixels plus `halo` context.

    Each tile's core is kept and its halo discarded, so with a halo at least the receptive field the
    result equals a single pass over the whole image. `tile=None` or a tile as large as the image
    predicts in one pass. A network whose output is subsampled by an integer stride `s` that divides
    `multiple` (StarDist's grid) returns (1, C, h/s, w/s); the result is then (C, ceil(h/s), ceil(w/s))."""
    h, w = image.shape[-2:]
    padded, _ = _pad_to_multiple(image[None] if image.ndim == 3 else image[None, None], multiple)
    if tile is None or (h <= tile and w <= tile):
        result = run(padded)[0]
        s = padded.shape[-2] // result.shape[-2]
        return result[:, :-(-h // s), :-(-w // s)]
    # Pad once, then cut windows on the 2**depth grid: every window sees the same pixels and the
    # same pooling grid as the single pass does.
    H, W = padded.shape[-2:]
    tile = max(multiple, tile - tile % multiple)
    halo = -(-halo // multiple) * multiple
    out = None
    for y0 in _starts(H, tile):
        for x0 in _starts(W, tile):
            y1, x1 = min(y0 + tile, H), min(x0 + tile, W)
            wy0, wx0 = max(0, y0 - halo), max(0, x0 - halo)
            wy1, wx1 = min(H, y1 + halo), min(W, x1 + halo)
            result = run(padded[:, :, wy0:wy1, wx0:wx1])[0]
            s = (wy1 - wy0) // result.shape[-2]  # output stride: 1, or StarDist's grid
            if out is None:
                out = np.zeros((result.shape[0], H // s, W // s), dtype=result.dtype)
            out[:, y0 // s:y1 // s, x0 // s:x1 // s] = \
                result[:, (y0 - wy0) // s:(y1 - wy0) // s, (x0 - wx0) // s:(x1 - wx0) // s]
    return out[:, :-(-h // s), :-(-w // s)]
