"""Objects as a CSV that TrackMate's CSV importer reads (Plugins > Tracking > TrackMate CSV importer).

The importer needs X, Y and a frame column, and picks up Z, radius, quality,
name and ID columns when present; the header names here are the ones it offers
by default. Coordinates are in pixels, frames 0-based, as in TrackMate.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..data.io import atomic_path

COLUMNS = ("ID", "NAME", "X", "Y", "Z", "FRAME", "RADIUS", "QUALITY", "AREA")


def objects_from_labels(labels: np.ndarray, quality: np.ndarray | None = None, axes: str | None = None) -> list[dict]:
    """One object per label and frame of a YX, TYX, ZYX or TZYX label image (`axes`; a 3D array without
    them is TYX): centroid (z too in 3D), radius of the circle (2D) or sphere (3D) of equal size, and the
    area (2D) or volume (3D) in pixels.

    Quality is the mean of `quality` (e.g. a probability map, same shape) over the object, else 1.
    """
    from skimage.measure import regionprops

    from .rois import label_axes

    labels = np.asarray(labels)
    axes = label_axes(labels, axes)
    frames = labels if "T" in axes else labels[None]
    qframes = None if quality is None else (np.asarray(quality) if "T" in axes else np.asarray(quality)[None])
    volumetric = "Z" in axes
    objects = []
    for t, frame in enumerate(frames):
        props = regionprops(frame.astype(np.int64, copy=False), None if qframes is None else qframes[t])
        for p in props:
            z, y, x = p.centroid if volumetric else (0.0, *p.centroid)
            radius = (3 * p.area / (4 * np.pi)) ** (1 / 3) if volumetric else np.sqrt(p.area / np.pi)
            objects.append({"id": len(objects), "name": f"label-{p.label}", "x": x, "y": y, "z": float(z),
                            "frame": t, "radius": float(radius),
                            "quality": 1.0 if qframes is None else float(p.intensity_mean), "area": int(p.area)})
    return objects


def write_trackmate_csv(objects: list[dict], path: str | Path) -> Path:
    """Write objects (dicts with x, y and optionally z, frame, radius, quality, name, id, area) atomically."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        for n, o in enumerate(objects):
            writer.writerow([o.get("id", n), o.get("name", f"object-{n}"), _num(o["x"]), _num(o["y"]),
                             _num(o.get("z", 0.0)), int(o.get("frame", 0)), _num(o.get("radius", 1.0)),
                             _num(o.get("quality", 1.0)), o.get("area", "")])
    return path


def _num(value) -> str:
    return f"{float(value):.6g}"
