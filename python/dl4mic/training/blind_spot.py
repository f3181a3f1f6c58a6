"""Blind-spot masking for self-supervised denoising (Noise2Void, N2V2) in 2D and 3D.

In every training patch a small, stratified fraction of pixels is masked (replaced by a random
neighbour, or for N2V2 by the median of the neighbourhood without the pixel itself) and the loss is the
squared error on those pixels only, against their original noisy values. As pixel noise is independent
and the signal is not, the best the network can do is predict the signal."""

from __future__ import annotations

import numpy as np
import torch


def stratified_coords(shape: tuple[int, ...], fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Coordinates (one array per axis) to mask in one patch: one uniformly placed pixel in every cell of
    a grid of side (1 / fraction)^(1/ndim), cells cut by the patch border kept only when their pixel
    falls in it (so the expected density is `fraction` everywhere, as in N2V)."""
    nd = len(shape)
    side = float((1.0 / fraction) ** (1.0 / nd))
    grids = np.meshgrid(*(np.arange(int(np.ceil(n / side))) * side for n in shape), indexing="ij")
    coords = [np.floor(g.ravel() + rng.random(g.size) * side).astype(np.int64) for g in grids]
    keep = np.logical_and.reduce([c < n for c, n in zip(coords, shape)])
    return tuple(c[keep] for c in coords)


def _neighbour_offsets(radius: int, nd: int) -> np.ndarray:
    """All offsets in the (2r+1)^nd cube except the centre, shape (n, nd)."""
    r = np.arange(-radius, radius + 1)
    grids = np.meshgrid(*([r] * nd), indexing="ij")
    offsets = np.stack([g.ravel() for g in grids], axis=1)
    return offsets[np.any(offsets != 0, axis=1)]


def blind_spot_mask(x: np.ndarray, fraction: float, radius: int, strategy: str,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Mask a batch (B, C, *spatial) for blind-spot training; returns (masked input, mask of the masked pixels).

    Every image plane or volume (sample and channel) gets its own stratified pixels. `strategy` "uniform"
    replaces a pixel by a random neighbour within `radius` (never itself; an offset that leaves the patch
    is mirrored), "median" by the median of its neighbourhood without itself, cut at the patch border (N2V2)."""
    x = np.asarray(x, dtype=np.float32)
    spatial = x.shape[2:]
    nd = len(spatial)
    if min(spatial) <= 2 * radius:
        raise ValueError(f"patches of {'x'.join(map(str, spatial))} pixels are too small for a neighbourhood "
                         f"radius of {radius}")
    out, mask = x.copy(), np.zeros(x.shape, dtype=np.float32)
    offsets = _neighbour_offsets(radius, nd)
    padded = np.pad(x, [(0, 0), (0, 0)] + [(radius, radius)] * nd, constant_values=np.nan) \
        if strategy == "median" else None
    for i in range(x.shape[0]):
        for ch in range(x.shape[1]):
            coords = stratified_coords(spatial, fraction, rng)
            if coords[0].size == 0:
                continue
            if strategy == "median":
                vals = padded[i, ch][tuple(c[:, None] + radius + offsets[None, :, d] for d, c in enumerate(coords))]
                values = np.nanmedian(vals, axis=1)
            else:
                pick = offsets[rng.integers(len(offsets), size=coords[0].size)]
                source = []
                for d, (c, n) in enumerate(zip(coords, spatial)):
                    t = c + pick[:, d]
                    source.append(np.where((t < 0) | (t >= n), c - pick[:, d], t))
                values = x[i, ch][tuple(source)]
            out[i, ch][coords] = values
            mask[i, ch][coords] = 1.0
    return out, mask


def masked_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared error on the masked pixels only; `target` stacks [original (C), mask (C)] on the channels."""
    c = pred.shape[1]
    original, mask = target[:, :c], target[:, c:]
    return ((pred - original) ** 2 * mask).sum() / mask.sum().clamp_min(1.0)
