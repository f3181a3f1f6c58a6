"""Tiled inference with overlap in N dimensions: any image size, bounded memory, the same result as one pass.

The tiler knows nothing about networks: it takes the per-axis numbers of a `Geometry` (size multiple,
halo, output scale), so it serves YX images, ZYX stacks, grid-subsampled outputs (StarDist) and
up-sampled outputs (Deep-STORM) alike."""

from __future__ import annotations

import itertools
from fractions import Fraction
from typing import Callable, Sequence

import numpy as np

DEFAULT_TILE = {2: 1024, 3: (64, 256, 256)}  # pixels per spatial axis of one tile (the halo comes on top)


def _pad_to_multiple(x: np.ndarray, multiple: Sequence[int]) -> np.ndarray:
    """Pad the trailing spatial axes symmetrically at their far end to multiples of `multiple`."""
    nd = len(multiple)
    pads = [(0, (-s) % m) for s, m in zip(x.shape[-nd:], multiple)]
    if any(p for _, p in pads):
        x = np.pad(x, [(0, 0)] * (x.ndim - nd) + pads, mode="symmetric")
    return x


def _starts(size: int, tile: int) -> list[int]:
    if size <= tile:
        return [0]
    starts = list(range(0, size - tile, tile)) + [size - tile]
    return sorted(set(starts))


def _scaled(n: int, scale: Fraction) -> int:
    """Output length for an input length: exact for the padded sizes, rounded up for the crop."""
    return int(-(-n * scale.numerator // scale.denominator))


def iter_tiles(run: Callable[[np.ndarray], np.ndarray], image: np.ndarray, tile, halo, multiple, out_scale=None):
    """Apply `run` ((1, c, *window) -> (1, C, *window * scale)) to a channels-first image in tiles and yield
    `(out_shape, slices, core)` per tile: the full output's spatial shape (padded to the size multiples),
    the tile core's place in it and the core of `run`'s result (C, *core), halo discarded. Consumers that
    cannot hold the whole output (StarDist 3D's 96 distance maps) keep only what they need of each core.

    `image` has the spatial axes of `multiple` last, with or without one leading channel axis (the
    number of spatial axes is `len(multiple)`, never guessed from `ndim`). `tile`, `halo`, `multiple`
    and `out_scale` are per spatial axis (a single number applies to every axis; `tile=None` predicts
    in one pass). With a halo at least the receptive field, the cores equal a single pass."""
    multiple = tuple(int(m) for m in (multiple if isinstance(multiple, (tuple, list)) else (multiple,) * 2))
    nd = len(multiple)
    halo = tuple(int(h) for h in (halo if isinstance(halo, (tuple, list)) else (halo,) * nd))
    scale = tuple(Fraction(s) for s in (out_scale if out_scale is not None else (1,) * nd))
    spatial = image.shape[-nd:]
    x = image.reshape((1, 1 if image.ndim == nd else image.shape[0]) + spatial)
    padded = _pad_to_multiple(x, multiple)
    full = padded.shape[2:]
    out_shape = tuple(int(n * s) for n, s in zip(full, scale))
    tiles = tuple(tile if isinstance(tile, (tuple, list)) else (tile,) * nd) if tile is not None else None
    if tiles is None or all(n <= t for n, t in zip(spatial, tiles)):
        yield out_shape, tuple(slice(0, n) for n in out_shape), run(padded)[0]
        return
    # Pad once, then cut windows on the down-sampling grid: every window sees the same pixels and the
    # same pooling grid as the single pass does.
    tiles = tuple(max(m, t - t % m) for t, m in zip(tiles, multiple))
    halo = tuple(-(-h // m) * m for h, m in zip(halo, multiple))
    for starts in itertools.product(*(_starts(n, t) for n, t in zip(full, tiles))):
        core = [(s, min(s + t, n)) for s, t, n in zip(starts, tiles, full)]
        window = [(max(0, a - h), min(n, b + h)) for (a, b), h, n in zip(core, halo, full)]
        result = run(padded[(slice(None), slice(None)) + tuple(slice(a, b) for a, b in window)])[0]
        dst = tuple(slice(int(a * s), int(b * s)) for (a, b), s in zip(core, scale))
        src = tuple(slice(int((a - w0) * s), int((b - w0) * s)) for (a, b), (w0, _), s in zip(core, window, scale))
        yield out_shape, dst, result[(slice(None),) + src]


def output_crop(image_shape: tuple, out_scale) -> tuple[slice, ...]:
    """The part of a padded output that belongs to an image of `image_shape` (spatial axes)."""
    return tuple(slice(0, _scaled(n, Fraction(s))) for n, s in zip(image_shape, out_scale))


def predict_tiled(run: Callable[[np.ndarray], np.ndarray], image: np.ndarray, tile, halo, multiple,
                  out_scale=None) -> np.ndarray:
    """`iter_tiles` stitched into one array: (C, *ceil(size * scale)), equal to a single pass."""
    nd = len(multiple) if isinstance(multiple, (tuple, list)) else 2
    out = None
    for shape, dst, core in iter_tiles(run, image, tile, halo, multiple, out_scale):
        if out is None and core.shape[1:] == shape:  # one pass: no copy
            out = core
            continue
        if out is None:
            out = np.zeros((core.shape[0],) + shape, dtype=core.dtype)
        out[(slice(None),) + dst] = core
    return out[(slice(None),) + output_crop(image.shape[-nd:], out_scale if out_scale is not None else (1,) * nd)]
