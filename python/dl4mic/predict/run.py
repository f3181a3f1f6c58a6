"""`dl4mic predict`: every input image to output files named after it, never overwriting without consent."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from ..data.io import list_images, read_image, write_tiff
from ..errors import UserError
from .model import DEFAULT_TILE, load_model

# output key -> file name suffix (restoration keeps the input's name)
SUFFIXES = {"restored": "", "probability": "_prob", "mask": "_mask", "labels": "_labels"}


def output_paths(stem: str, keys: list[str], output: Path, rois: bool, instance: bool = False,
                 frames: bool = False) -> dict[str, Path]:
    paths = {k: output / f"{stem}{SUFFIXES[k]}.tif" for k in keys}
    if rois and "labels" in keys:
        paths["rois"] = output / f"{stem}_rois.zip"
    if instance:
        paths["objects"] = output / f"{stem}_objects.csv"
        if frames:
            paths["trackmate"] = output / f"{stem}_trackmate.csv"
    return paths


FRAME_AXES = ("T", "I", "Q")  # tifffile's letters for time and for stacks of unknown meaning


def is_time_series(path: Path) -> bool:
    """Whether a file is a 3D TIFF stack of 2D frames (axes TYX, or a plain stack), predicted frame by frame."""
    if path.suffix.lower() not in (".tif", ".tiff"):
        return False
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            axes = tif.series[0].axes
    except Exception:  # unreadable files are reported by read_image with the fix
        return False
    return len(axes) == 3 and axes[0] in FRAME_AXES


def _predict_instances(loaded, image: np.ndarray, tile, frames: bool) -> tuple[np.ndarray, list[dict]]:
    """Labels (YX, or TYX frame by frame) and one object row per label and frame."""
    planes = image if frames else image[None]
    labels, objects = [], []
    for t, plane in enumerate(planes):
        result = loaded.predict(np.asarray(plane), tile=tile)
        labels.append(result["labels"])
        objects += [({"frame": t} if frames else {}) | o for o in result.get("objects", [])]
    return (np.stack(labels) if frames else labels[0]), objects


def write_objects_csv(objects: list[dict], path: Path) -> Path:
    """Per-object CSV: [frame,] label, centroid_y, centroid_x (pixels), area (pixels), score."""
    import csv

    from ..data.io import atomic_path

    frames = bool(objects) and "frame" in objects[0]
    cols = (["frame"] if frames else []) + ["label", "centroid_y", "centroid_x", "area", "score"]
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(cols)
        for o in objects:
            writer.writerow(([o["frame"]] if frames else []) + [o["label"], f"{o['y']:.6g}", f"{o['x']:.6g}",
                                                                 o["area"], f"{o['score']:.6g}"])
    return path


def write_trackmate(objects: list[dict], path: Path) -> Path:
    from ..fiji.trackmate import write_trackmate_csv

    rows = [{"id": n, "name": f"label-{o['label']}", "x": o["x"], "y": o["y"], "frame": o.get("frame", 0),
             "radius": float(np.sqrt(o["area"] / np.pi)), "quality": o["score"], "area": o["area"]}
            for n, o in enumerate(objects)]
    return write_trackmate_csv(rows, path)


def predict(model, input, output, *, rois: bool = False, tile: int | None = DEFAULT_TILE, overwrite: bool = False,
            threshold: float | None = None, device: str | None = None, progress: str = "auto",
            callback: Callable[[dict], bool | None] | None = None) -> list[dict[str, Path]]:
    """Predict one file or every image of a folder into `output`; returns the written paths per input."""
    from ..training.progress import Progress

    files = list_images(input, "input")
    output = Path(output)
    in_dir = Path(input).resolve() if Path(input).is_dir() else Path(input).resolve().parent
    if output.resolve() == in_dir:
        raise UserError(f"The output folder {output} is the input folder; choose another --output so inputs stay untouched.")
    loaded = load_model(model, device=device)
    if threshold is not None:  # the user's threshold wins over the training and QC ones
        loaded.config.pop("qc_threshold", None)
        loaded.config["threshold"] = float(threshold)
        if loaded.task == "instance":  # StarDist: the object probability threshold of NMS
            loaded.config["prob_thresh"] = float(threshold)
    keys = {"restoration": ["restored"], "segmentation": ["probability", "mask", "labels"],
            "instance": ["labels"]}[loaded.task]
    instance = loaded.task == "instance"
    planned = [(f, output_paths(f.stem, keys, output, rois, instance, instance and is_time_series(f)))
               for f in files]
    if not overwrite:
        for _, paths in planned:
            for p in paths.values():
                if p.exists():
                    raise UserError(f"{p} already exists; choose another --output folder or add --overwrite.")
    output.mkdir(parents=True, exist_ok=True)
    reporter = Progress(progress, callback)
    reporter.start(len(files), f"predict {loaded.dir.name}", unit="image")
    written = []
    for f, paths in planned:
        image = read_image(f)
        if instance:
            frames = "trackmate" in paths
            labels, objects = _predict_instances(loaded, np.asarray(image), tile, frames)
            result = {"labels": labels}
            write_tiff(paths["labels"], labels, "TYX" if frames else "YX")
            write_objects_csv(objects, paths["objects"])
            if frames:
                write_trackmate(objects, paths["trackmate"])
        else:
            try:
                result = loaded.predict(np.asarray(image), tile=tile)
            except UserError as exc:  # the model refuses this image: say which one
                raise UserError(f"{f}: {exc}") from None
            for key in keys:
                write_tiff(paths[key], result[key], "CYX" if np.ndim(result[key]) == 3 else "YX")
        if "rois" in paths:
            from ..fiji.rois import labels_to_roi_zip

            labels_to_roi_zip(result["labels"], paths["rois"])
        written.append(paths)
        reporter.update({"event": "image", "file": str(f), "outputs": {k: str(v) for k, v in paths.items()}})
    reporter.close({"event": "done", "output": str(output), "n": len(files)})
    return written
