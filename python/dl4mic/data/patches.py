"""Random N-D patch sampling from image files, with a bounded cache so data sets need not fit in memory.

Arrays are channels-first with the spatial axes last ((C,) + YX or ZYX); how many trailing axes are
spatial is the patch's length, never guessed from `ndim`."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import UserError
from .augment import dihedral


@dataclass(frozen=True)
class Region:
    """Indices [start, stop) along the first spatial axis (Y of an image, Z of a stack) of pair `index`:
    whole images for a file split, a strip or slab when one image is split."""

    index: int
    start: int
    stop: int


class ImageCache:
    """Prepared (normalised) training arrays by pair index, least recently used dropped beyond `max_bytes`.
    `load(index)` gives the raw (source, target) arrays channels-first; `lazy(index)`, when it returns
    views, serves a pair too large to hold (read as patches are drawn, `data.lazy`)."""

    def __init__(self, load: Callable[[int], tuple], prepare: Callable, max_bytes: int,
                 lazy: Callable[[int], tuple | None] | None = None):
        self.load, self.prepare, self.max_bytes, self.lazy = load, prepare, max_bytes, lazy
        self._items: OrderedDict[int, tuple] = OrderedDict()
        self._bytes = 0

    def get(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        if index in self._items:
            self._items.move_to_end(index)
            return self._items[index]
        views = self.lazy(index) if self.lazy is not None else None
        item = views if views is not None else self.prepare(*self.load(index))
        size = sum(a.nbytes for a in item if a is not None)
        while self._items and self._bytes + size > self.max_bytes:
            _, old = self._items.popitem(last=False)
            self._bytes -= sum(a.nbytes for a in old if a is not None)
        self._items[index] = item
        self._bytes += size
        return item


def split_regions(pairs: list, shapes: list, val_split: float, seed: int, patch: tuple) -> tuple[list, list]:
    """Training and validation regions: whole files when there are several, else a strip (2D) or slab (3D)
    along the first spatial axis of the one image."""
    patch = tuple(patch)
    nd = len(patch)
    n = len(pairs)
    for (src, _), shape in zip(pairs, shapes):
        spatial = tuple(shape[-nd:])
        if any(s < p for s, p in zip(spatial, patch)):
            fit = ",".join(str(min(s, p)) for s, p in zip(spatial, patch))
            raise UserError(f"{src} is {'x'.join(map(str, spatial))} pixels, smaller than the patch size "
                            f"{'x'.join(map(str, patch))}; lower --patch-size to at most {fit}.")
    first = [shapes[i][-nd] for i in range(n)]
    if val_split <= 0:
        return [Region(i, 0, first[i]) for i in range(n)], []
    if n == 1:
        size, what = first[0], "planes" if nd == 3 else "rows"
        val = max(int(round(size * val_split)), patch[0])
        if size - val < patch[0]:
            raise UserError(f"{pairs[0][0]} is too small to keep a validation {'slab' if nd == 3 else 'strip'} of "
                            f"{val} {what} and train on patches of {patch[0]} {what}; add images, lower "
                            f"--patch-size or set --val-split 0.")
        return [Region(0, 0, size - val)], [Region(0, size - val, size)]
    order = np.random.default_rng(seed).permutation(n)
    n_val = min(max(1, int(round(n * val_split))), n - 1)
    val, train = sorted(order[:n_val]), sorted(order[n_val:])
    return [Region(int(i), 0, first[i]) for i in train], [Region(int(i), 0, first[i]) for i in val]


def region_view(a: np.ndarray | None, region: Region, nd: int) -> np.ndarray | None:
    """The part of a channels-first array that a region covers."""
    if a is None:
        return None
    sl = [slice(None)] * a.ndim
    sl[a.ndim - nd] = slice(region.start, region.stop)
    return a[tuple(sl)]


class PatchSampler:
    """Draws batches of random patches (with optional flips/rotations in YX) from regions of cached images."""

    def __init__(self, regions: list[Region], shapes: list[tuple], cache: ImageCache, patch,
                 rng: np.random.Generator, augment: bool = False, crop: Callable | None = None):
        if not regions:
            raise ValueError("no regions to sample from")
        self.patch = tuple(patch) if isinstance(patch, (tuple, list)) else (int(patch),) * 2
        self.regions, self.cache, self.rng, self.augment = regions, cache, rng, augment
        self.crop = crop or random_crop
        nd = len(self.patch)
        areas = np.array([(r.stop - r.start) * float(np.prod(shapes[r.index][-nd + 1:])) for r in regions])
        self.weights = areas / areas.sum()
        # rotations by 90 degrees only keep the shape of square YX patches; other patches are flipped
        self.symmetries = 8 if self.patch[-1] == self.patch[-2] else (0, 2, 4, 6)

    def sample(self, batch: int) -> tuple[np.ndarray, np.ndarray | None]:
        nd = len(self.patch)
        xs, ys = [], []
        for _ in range(batch):
            region = self.regions[self.rng.choice(len(self.regions), p=self.weights)]
            x, y = self.cache.get(region.index)
            px, py = self.crop(x, y, region, self.patch, self.rng)
            if self.augment:
                k = int(self.rng.integers(8)) if self.symmetries == 8 else int(self.rng.choice(self.symmetries))
                px, py = dihedral([px, py], k) if py is not None else (dihedral([px], k)[0], None)
            xs.append(px)
            ys.append(py)
        x = np.stack(xs)
        x = x[:, None] if x.ndim == nd + 1 else x  # (B, C, *patch): single-channel patches get their channel axis
        y = None
        if ys[0] is not None:
            y = np.stack(ys)
            y = y[:, None] if y.ndim == nd + 1 else y
        return x, y


def random_crop(x, y, region: Region, patch: tuple, rng: np.random.Generator):
    """A uniformly placed patch inside the region (its first spatial axis) and the whole other axes."""
    nd = len(patch)
    spatial = x.shape[-nd:]
    lo = [region.start] + [0] * (nd - 1)
    hi = [region.stop] + list(spatial[1:])
    starts = [int(rng.integers(a, b - p + 1)) for a, b, p in zip(lo, hi, patch)]
    sl = (Ellipsis,) + tuple(slice(s, s + p) for s, p in zip(starts, patch))
    return x[sl], (y[sl] if y is not None else None)


def fixed_batches(sampler: PatchSampler, n: int, batch: int) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Draw `n` patches once (validation): the same patches are scored every epoch."""
    out = []
    while n > 0:
        out.append(sampler.sample(min(batch, n)))
        n -= batch
    return out
