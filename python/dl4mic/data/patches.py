"""Random patch sampling from image files, with a bounded cache so data sets need not fit in memory."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import UserError
from .augment import dihedral
from .io import read_image


@dataclass(frozen=True)
class Region:
    """Rows [y0, y1) of pair `index`: whole images for a file split, strips when one image is split."""

    index: int
    y0: int
    y1: int


class ImageCache:
    """Prepared (normalised) training arrays by pair index, least recently used dropped beyond `max_bytes`."""

    def __init__(self, pairs: list, prepare: Callable, max_bytes: int):
        self.pairs, self.prepare, self.max_bytes = pairs, prepare, max_bytes
        self._items: OrderedDict[int, tuple] = OrderedDict()
        self._bytes = 0

    def get(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        if index in self._items:
            self._items.move_to_end(index)
            return self._items[index]
        src, tgt = self.pairs[index]
        item = self.prepare(read_image(src), read_image(tgt) if tgt is not None else None)
        size = sum(a.nbytes for a in item if a is not None)
        while self._items and self._bytes + size > self.max_bytes:
            _, old = self._items.popitem(last=False)
            self._bytes -= sum(a.nbytes for a in old if a is not None)
        self._items[index] = item
        self._bytes += size
        return item


def split_regions(pairs: list, shapes: list, val_split: float, seed: int, patch: int) -> tuple[list, list]:
    """Training and validation regions: whole files when there are several, else top/bottom strips of the image."""
    n = len(pairs)
    for (src, _), shape in zip(pairs, shapes):
        if min(shape[-2:]) < patch:
            raise UserError(f"{src} is {shape[-2]}x{shape[-1]} pixels, smaller than the patch size {patch}; "
                            f"lower --patch-size to at most {min(shape[-2:])}.")
    if val_split <= 0:
        return [Region(i, 0, shapes[i][-2]) for i in range(n)], []
    if n == 1:
        h = shapes[0][-2]
        val_rows = max(int(round(h * val_split)), patch)
        if h - val_rows < patch:
            raise UserError(f"{pairs[0][0]} is too small to keep a validation strip of {val_rows} rows and train on "
                            f"{patch}-pixel patches; add images, lower --patch-size or set --val-split 0.")
        return [Region(0, 0, h - val_rows)], [Region(0, h - val_rows, h)]
    order = np.random.default_rng(seed).permutation(n)
    n_val = min(max(1, int(round(n * val_split))), n - 1)
    val, train = sorted(order[:n_val]), sorted(order[n_val:])
    return [Region(int(i), 0, shapes[i][-2]) for i in train], [Region(int(i), 0, shapes[i][-2]) for i in val]


class PatchSampler:
    """Draws batches of random patches (with optional dihedral augmentation) from regions of cached images."""

    def __init__(self, regions: list[Region], shapes: list[tuple], cache: ImageCache, patch: int,
                 rng: np.random.Generator, augment: bool = False, crop: Callable | None = None):
        if not regions:
            raise ValueError("no regions to sample from")
        self.regions, self.cache, self.patch, self.rng, self.augment = regions, cache, patch, rng, augment
        self.crop = crop or _random_crop
        areas = np.array([(r.y1 - r.y0) * shapes[r.index][-1] for r in regions], dtype=float)
        self.weights = areas / areas.sum()

    def sample(self, batch: int) -> tuple[np.ndarray, np.ndarray | None]:
        xs, ys = [], []
        for _ in range(batch):
            region = self.regions[self.rng.choice(len(self.regions), p=self.weights)]
            x, y = self.cache.get(region.index)
            px, py = self.crop(x, y, region, self.patch, self.rng)
            if self.augment:
                k = int(self.rng.integers(8))
                px, py = dihedral([px, py], k) if py is not None else (dihedral([px], k)[0], None)
            xs.append(px)
            ys.append(py)
        x = np.stack(xs)
        x = x[:, None] if x.ndim == 3 else x  # (B, C, H, W): single-channel patches get their channel axis
        y = np.stack(ys)[:, None] if ys[0] is not None else None
        return x, y


def _random_crop(x, y, region: Region, patch: int, rng: np.random.Generator):
    y0 = int(rng.integers(region.y0, region.y1 - patch + 1))
    x0 = int(rng.integers(0, x.shape[-1] - patch + 1))
    sl = (Ellipsis, slice(y0, y0 + patch), slice(x0, x0 + patch))
    return x[sl], (y[sl] if y is not None else None)


def fixed_batches(sampler: PatchSampler, n: int, batch: int) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Draw `n` patches once (validation): the same patches are scored every epoch."""
    out = []
    while n > 0:
        out.append(sampler.sample(min(batch, n)))
        n -= batch
    return out

