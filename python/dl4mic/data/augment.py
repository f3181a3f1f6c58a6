"""Geometric augmentation that keeps pixel statistics: the 8 flips/90-degree rotations of the square."""

from __future__ import annotations

import numpy as np


def dihedral(arrays: list[np.ndarray], k: int) -> list[np.ndarray]:
    """Apply the k-th (0..7) of the 8 symmetries of the square to every array's last two axes alike."""
    out = []
    for a in arrays:
        a = np.rot90(a, k % 4, axes=(-2, -1))
        if k >= 4:
            a = a[..., ::-1]
        out.append(np.ascontiguousarray(a))
    return out
