"""`dl4mic predict`: every input image to output files named after it, never overwriting without consent.

What is written comes from the network (`Network.outputs`): images with their axes, written as ImageJ
hyperstacks with the input's calibration, and tables (objects, boxes, localisations) as CSV."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Callable

import numpy as np

from ..data.io import atomic_path, list_images, read_image_with_meta, read_meta, write_tiff
from ..errors import UserError
from ..progress import Progress
from .model import load_model

# output key -> file name suffix (restoration keeps the input's name); tables get .csv
SUFFIXES = {"restored": "", "probability": "_prob", "mask": "_mask", "labels": "_labels", "classes": "_classes"}
TABLE_SUFFIXES = {"objects": "_objects"}
FRAME_COLUMNS = ("frame", "z")  # table columns a plane-by-plane prediction adds


def output_paths(stem: str, keys: list[str], output: Path, rois: bool, frames: bool = False) -> dict[str, Path]:
    """Every file one input gives: images, tables (+ TrackMate's CSV for time series), ROI zips."""
    paths = {}
    for k in keys:
        paths[k] = output / (f"{stem}{TABLE_SUFFIXES[k]}.csv" if k in TABLE_SUFFIXES else f"{stem}{SUFFIXES[k]}.tif")
    if rois and "labels" in keys:
        paths["rois"] = output / f"{stem}_rois.zip"
    if frames and "objects" in keys:
        paths["trackmate"] = output / f"{stem}_trackmate.csv"
    return paths


def is_time_series(path: Path) -> bool:
    """Whether a file is a time series (axes TYX or TZYX), predicted frame by frame."""
    try:
        return read_meta(path).axes in ("TYX", "TZYX")
    except UserError:  # unreadable files are reported by read_image with the fix
        return False


def write_table(rows: list[dict], path: Path) -> Path:
    """Rows as CSV (columns from the rows, plane columns first; floats with 6 significant digits)."""
    cols = [c for c in FRAME_COLUMNS if rows and c in rows[0]]
    cols += [c for c in (rows[0] if rows else {}) if c not in cols]
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(cols or ["label"])
        for r in rows:
            writer.writerow([f"{r[c]:.6g}" if isinstance(r[c], float) else r[c] for c in cols])
    return path


def with_microns(objects: list[dict], axes: str, spacing) -> list[dict]:
    """Object rows with µm columns beside the pixel ones (`centroid_<axis>_um`, `area_um2`, `volume_um3`),
    from the input's voxel size; rows unchanged when the file records none."""
    by_axis = dict(zip([a for a in axes if a in "ZYX"], spacing or ()))
    if not by_axis:
        return objects
    out = []
    for o in objects:
        row = {}
        for key, value in o.items():
            row[key] = value
            axis = key[len("centroid_"):].upper() if key.startswith("centroid_") else None
            if axis in by_axis:
                row[f"{key}_um"] = float(value) * by_axis[axis]
            elif key == "area" and {"Y", "X"} <= set(by_axis):
                row["area_um2"] = float(value) * by_axis["Y"] * by_axis["X"]
            elif key == "volume" and {"Z", "Y", "X"} <= set(by_axis):
                row["volume_um3"] = float(value) * by_axis["Z"] * by_axis["Y"] * by_axis["X"]
        out.append(row)
    return out


def write_trackmate(objects: list[dict], path: Path) -> Path:
    """TrackMate's CSV from object rows (pixels; Z and the radius of the equal-volume sphere for 3D)."""
    from .trackmate import write_trackmate_csv

    rows = []
    for n, o in enumerate(objects):
        size = o.get("volume", o.get("area", 0))
        radius = (3 * size / (4 * np.pi)) ** (1 / 3) if "volume" in o else np.sqrt(size / np.pi)
        rows.append({"id": n, "name": f"label-{o['label']}", "x": o["centroid_x"], "y": o["centroid_y"],
                     "z": o.get("centroid_z", 0.0), "frame": o.get("frame", 0), "radius": float(radius),
                     "quality": o["score"], "area": size})
    return write_trackmate_csv(rows, path)


def _spacing_for(axes: str, meta_axes: str, spacing) -> tuple | None:
    """The input's voxel size for an output's spatial axes (None when the input has none or they differ)."""
    if not spacing:
        return None
    spatial_in = [a for a in meta_axes if a in "ZYX"]
    by_axis = dict(zip(spatial_in, spacing))
    out = [by_axis.get(a) for a in axes if a in "ZYX"]
    return tuple(out) if all(v is not None for v in out) else None


def predict(model, input, output, *, rois: bool = False, tile="auto", overwrite: bool = False,
            threshold: float | None = None, device: str | None = None, axes: str | None = None,
            progress: str = "auto", callback: Callable[[dict], bool | None] | None = None) -> list[dict[str, Path]]:
    """Predict one file or every image of a folder into `output`; returns the written paths per input."""
    files = list_images(input, "input")
    output = Path(output)
    in_dir = Path(input).resolve() if Path(input).is_dir() else Path(input).resolve().parent
    if output.resolve() == in_dir:
        raise UserError(f"The output folder {output} is the input folder; choose another --output so inputs stay untouched.")
    if Path(input).is_dir() and in_dir in output.resolve().parents:
        raise UserError(f"The output folder {output} is inside the input folder {input}; choose an --output outside "
                        f"it, so that outputs are never mixed with the images to predict.")
    loaded = load_model(model, device=device)
    if threshold is not None:  # the user's threshold wins over the training and QC ones
        loaded.config.pop("qc_threshold", None)
        loaded.config["threshold"] = float(threshold)
        if "prob_thresh" in loaded.config:  # StarDist: the object probability threshold of NMS
            loaded.config["prob_thresh"] = float(threshold)
    keys = loaded.network.output_keys(loaded.config)
    planned = [(f, output_paths(f.stem, keys, output, rois, is_time_series(f))) for f in files]
    if not overwrite:
        for _, paths in planned:
            for p in paths.values():
                if p.exists():
                    raise UserError(f"{p} already exists; choose another --output folder or add --overwrite.")
    from ..locks import locked

    # one prediction per output folder at a time; a refused first image leaves no output folder behind
    return locked(output, "predict",
                  lambda: _predict_files(loaded, planned, output, tile, axes, progress, callback, len(files)))


def _predict_files(loaded, planned, output, tile, axes, progress, callback, n) -> list[dict[str, Path]]:
    reporter = Progress(progress, callback)
    reporter.start(n, f"predict {loaded.dir.name}", unit="image")
    written = []
    for f, paths in planned:
        image, meta = read_image_with_meta(f, axes)
        if np.issubdtype(np.asarray(image).dtype, np.floating) and not np.isfinite(image).all():
            raise UserError(f"{f} holds NaN or infinite values; replace them (Fiji: Process > Math > Remove NaNs) "
                            f"or remove the image from the input.")
        output.mkdir(parents=True, exist_ok=True)
        notes = len(loaded.notes)
        try:
            result = loaded.predict(np.asarray(image), tile=tile, axes=meta.axes)
        except UserError as exc:  # the model refuses this image: say which one
            raise UserError(f"{f}: {exc}") from None
        for key, (array, out_axes) in result.images.items():
            write_tiff(paths[key], array, out_axes, spacing=_spacing_for(out_axes, meta.axes, meta.spacing))
        for key, rows in result.tables.items():
            write_table(with_microns(rows, meta.axes, meta.spacing) if key == "objects" else rows, paths[key])
        if "trackmate" in paths:
            write_trackmate(result.tables["objects"], paths["trackmate"])
        if "rois" in paths:
            from .rois import labels_to_roi_zip

            labels, label_axes = result.images["labels"]
            labels_to_roi_zip(labels, paths["rois"], axes=label_axes)
        written.append(paths)
        reporter.update({"event": "image", "file": str(f), "outputs": {k: str(v) for k, v in paths.items()},
                         "notes": loaded.notes[notes:]})
    reporter.close({"event": "done", "output": str(output), "n": n, "notes": sorted(set(loaded.notes))})
    return written
