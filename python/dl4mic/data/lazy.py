"""Stacks too large for the training cache, read plane by plane as patches are drawn.

A TIFF Z stack is stored one page per plane, so a patch needs only the pages of its Z range: memory
stays at a few planes whatever the stack's size. The per-stack normalisation is fitted once on a
subsample of planes, then applied to every patch (`PinnedNormalizer`), so a lazily read patch is
prepared exactly as it would be from the whole stack in memory (up to the subsampled percentiles)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

SUBSAMPLE_PLANES = 16  # planes read to fit a stack's percentiles


class LazyStack:
    """A single-channel ZYX TIFF stack, one page per plane; `a[..., z0:z1, y0:y1, x0:x1]` reads those pages."""

    def __init__(self, path: Path):
        import tifffile

        self.path = Path(path)
        with tifffile.TiffFile(self.path) as tif:
            series = tif.series[0]
            self.shape, self.dtype = tuple(series.shape), series.dtype
            self.n_pages = len(series.pages)

    @classmethod
    def open(cls, path: Path) -> "LazyStack | None":
        """A lazy reader, or None when the file is not a plain page-per-plane ZYX stack."""
        try:
            stack = cls(path)
        except Exception:  # unreadable files are reported by the eager reader
            return None
        return stack if len(stack.shape) == 3 and stack.n_pages == stack.shape[0] else None

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * np.dtype(self.dtype).itemsize

    def planes(self, indices) -> np.ndarray:
        import tifffile

        with tifffile.TiffFile(self.path) as tif:
            return np.stack([tif.series[0].pages[int(i)].asarray() for i in indices])

    def __getitem__(self, index) -> np.ndarray:
        index = index if isinstance(index, tuple) else (index,)
        if index and index[0] is Ellipsis:
            index = index[1:]
        index = tuple(index) + (slice(None),) * (3 - len(index))
        z = range(*index[0].indices(self.shape[0]))
        return self.planes(z)[(slice(None),) + index[1:]]

    def subsample(self, n: int = SUBSAMPLE_PLANES) -> np.ndarray:
        """Evenly spaced planes, for fitting a normalisation."""
        return self.planes(np.unique(np.linspace(0, self.shape[0] - 1, min(n, self.shape[0])).round()))


class PinnedNormalizer:
    """A normaliser whose per-image source range is fixed (fitted on the whole stack's subsample)."""

    def __init__(self, normalizer, source_range):
        self._n, self._range = normalizer, source_range

    def source_range(self, image):
        return self._range

    def __getattr__(self, name):
        return getattr(self._n, name)


class LazyPair:
    """(source, target) of one stack pair as lazy views: slicing either returns the prepared patch; the pair
    is prepared together once per slice (a target may be scaled by its source's range)."""

    def __init__(self, source: LazyStack, target: LazyStack | None, prepare: Callable):
        self.source, self.target, self.prepare = source, target, prepare
        self._last = None

    def _patch(self, index):
        key = repr(index)
        if self._last is None or self._last[0] != key:
            x = self.source[index]
            y = self.target[index] if self.target is not None else None
            self._last = (key, self.prepare(x, y))
        return self._last[1]

    def views(self) -> tuple:
        return _View(self, 0), (_View(self, 1) if self.target is not None else None)


class _View:
    def __init__(self, pair: LazyPair, k: int):
        self.pair, self.k = pair, k
        self.shape = pair.source.shape
        self.ndim = len(self.shape)
        self.nbytes = 0  # nothing is held in the cache

    def __getitem__(self, index):
        return self.pair._patch(index)[self.k]
