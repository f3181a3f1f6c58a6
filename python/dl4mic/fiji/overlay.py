"""TIFFs that open in Fiji with their ROIs drawn as an overlay (no ROI Manager needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

from ..data.io import atomic_path
from ..predict.rois import labels_to_rois


def write_tiff_with_overlay(path: str | Path, image: np.ndarray, rois=None, labels: np.ndarray | None = None) -> Path:
    """ImageJ TIFF of `image` with `rois` (roifile ImagejRoi) or the outlines of `labels` as overlay."""
    image = np.asarray(image)
    axes = "YX" if image.ndim == 2 else "ZYX"
    if rois is None:
        rois = labels_to_rois(labels, axes=axes if np.ndim(labels) == image.ndim else None) if labels is not None else []
    if image.dtype not in (np.uint8, np.uint16, np.float32):
        image = image.astype(np.float32)
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, image, imagej=True,
                         metadata={"axes": axes, "Overlays": [roi.tobytes() for roi in rois]})
    return Path(path)
