"""Detection boxes: dl4mic's CSV (and ZeroCostDL4Mic's YOLO layouts), and boxes as ImageJ rectangle ROIs.

dl4mic writes one box per row: ``image,frame,class,confidence,xmin,ymin,xmax,ymax``
in pixels (xmax/ymax exclusive, like a numpy slice; frame is the 0-based plane).
The parser is shared with Fiji's Boxes script (`jylib/dl4mic_boxes.py`).
"""

from __future__ import annotations

import csv
from pathlib import Path

from roifile import ROI_TYPE, ImagejRoi

from ..data.io import atomic_path
from ..errors import UserError
from .jylib import dl4mic_boxes
from ..predict.rois import write_roi_zip

FIELDS = dl4mic_boxes.FIELDS


def read_boxes_csv(path: str | Path) -> list[dict]:
    """Boxes from a dl4mic or ZeroCostDL4Mic (`predicted_bounding_boxes*.csv`) file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"The boxes file {path} does not exist; give a *_boxes.csv written by dl4mic predict.")
    with open(path, newline="", encoding="utf-8-sig") as fh:
        try:
            return dl4mic_boxes.parse_rows(list(csv.reader(fh)), str(path))
        except dl4mic_boxes.BoxesError as exc:
            raise UserError(str(exc)) from None


def write_boxes_csv(rows: list[dict], path: str | Path) -> Path:
    """dl4mic's box CSV, written atomically; missing frame/class/confidence get 0/'object'/1."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(FIELDS)
        for row in rows:
            box = {"frame": 0, "class": "object", "confidence": 1.0, "image": "", **row}
            writer.writerow([box["image"], int(box["frame"]), box["class"]]
                            + [dl4mic_boxes.format_number(box[k])
                               for k in ("confidence", "xmin", "ymin", "xmax", "ymax")])
    return path


def box_roi(box: dict) -> ImagejRoi:
    """A rectangle ROI named 'class:confidence' at the box's plane (stack position frame + 1)."""
    return ImagejRoi(roitype=ROI_TYPE.RECT, name=dl4mic_boxes.box_name(box),
                     left=int(round(box["xmin"])), top=int(round(box["ymin"])),
                     right=int(round(box["xmax"])), bottom=int(round(box["ymax"])),
                     position=int(box.get("frame", 0)) + 1)


def boxes_to_roi_zip(boxes: list[dict], path: str | Path, image: str | None = None) -> Path:
    """An ImageJ ROI zip of rectangles; with `image`, only the boxes of that image (extensions ignored)."""
    if image is not None:
        boxes = [b for b in boxes if dl4mic_boxes.image_matches(b["image"], image)]
    return write_roi_zip([box_roi(b) for b in boxes], path)
