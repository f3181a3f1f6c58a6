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


def output_paths(stem: str, keys: list[str], output: Path, rois: bool) -> dict[str, Path]:
    paths = {k: output / f"{stem}{SUFFIXES[k]}.tif" for k in keys}
    if rois and "labels" in keys:
        paths["rois"] = output / f"{stem}_rois.zip"
    return paths


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
    if threshold is not None:
        loaded.config["threshold"] = float(threshold)
    keys = {"restoration": ["restored"], "segmentation": ["probability", "mask", "labels"]}[loaded.task]
    planned = [(f, output_paths(f.stem, keys, output, rois)) for f in files]
    if not overwrite:
        for _, paths in planned:
            for p in paths.values():
                if p.exists():
                    raise UserError(f"{p} already exists; choose another --output folder or add --overwrite.")
    output.mkdir(parents=True, exist_ok=True)
    reporter = Progress(progress, callback)
    reporter.start(len(files), f"predict {loaded.dir.name}")
    written = []
    for f, paths in planned:
        image = read_image(f)
        result = loaded.predict(np.asarray(image), tile=tile)
        for key in keys:
            write_tiff(paths[key], result[key], "YX")
        if "rois" in paths:
            from ..fiji.rois import labels_to_roi_zip

            labels_to_roi_zip(result["labels"], paths["rois"])
        written.append(paths)
        reporter.update({"event": "image", "file": str(f), "outputs": {k: str(v) for k, v in paths.items()}})
    reporter.close({"event": "done", "output": str(output), "n": len(files)})
    return written
