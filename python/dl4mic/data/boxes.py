"""Bounding-box targets (data kind `boxes`): YOLO txt, PASCAL VOC XML, COCO JSON and dl4mic's box CSV.

Every reader gives `Boxes` in one convention, so networks and QC never see the formats:
pixel coordinates of the image's top-left corner, continuous, with xmax/ymax exclusive like a
numpy slice (a box covering the whole 640×480 image is 0, 0, 640, 480); class ids 0..K-1 with
their names. Every problem is refused with one sentence that names the file and the fix.
"""

from __future__ import annotations

import csv
import json
import math
import xml.etree.ElementTree as ET
import xml.parsers.expat
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import numpy as np

from ..errors import UserError
from .io import TIFF_EXTS, is_hidden

TOLERANCE = 1.0  # pixels a box may reach past the image edge (rounding, 1-based VOC) before it is refused
CLASSES_FILE = "classes.txt"
COORDS = ("xmin", "ymin", "xmax", "ymax")


@dataclass(frozen=True)
class Box:
    """One box in pixels (see the module docstring); `where` says where it was read, for messages."""

    class_id: int
    xmin: float
    ymin: float
    xmax: float
    ymax: float
    class_name: str | None = None
    confidence: float | None = None
    frame: int | None = None
    where: str = field(default="", compare=False, repr=False)

    def record(self, image: str = "") -> dict:
        """The dict `qc.metrics.as_box_records` and dl4mic's box CSV use (frame 0-based, confidence 1 for truth)."""
        return {"image": image, "frame": self.frame or 0,
                "class": self.class_name if self.class_name is not None else str(self.class_id),
                "confidence": 1.0 if self.confidence is None else float(self.confidence),
                "xmin": self.xmin, "ymin": self.ymin, "xmax": self.xmax, "ymax": self.ymax}


@dataclass
class Boxes:
    """The boxes of one image, with the image size they must fit and the data set's class names."""

    image: str                      # the image's stem, the key that pairs it with its annotation
    width: int
    height: int
    boxes: list[Box] = field(default_factory=list)
    class_names: list[str] = field(default_factory=list)
    source: Path | None = None      # the annotation file they came from

    def __len__(self) -> int:
        return len(self.boxes)

    def __iter__(self) -> Iterator[Box]:
        return iter(self.boxes)

    def __getitem__(self, i: int) -> Box:
        return self.boxes[i]

    def xyxy(self) -> np.ndarray:
        """(N, 4) float64 array of xmin, ymin, xmax, ymax."""
        return np.array([[b.xmin, b.ymin, b.xmax, b.ymax] for b in self.boxes], dtype=np.float64).reshape(-1, 4)

    def class_ids(self) -> np.ndarray:
        return np.array([b.class_id for b in self.boxes], dtype=np.int64)

    def records(self) -> list[dict]:
        """Dict records for `qc.metrics.detection_metrics` (and `fiji.boxes.write_boxes_csv`)."""
        return [b.record(self.image) for b in self.boxes]


def box_records(targets: Mapping[str, Boxes]) -> list[dict]:
    """All images' records in one list, as `detection_metrics` takes a whole data set."""
    return [r for boxes in targets.values() for r in boxes.records()]


# --- helpers -----------------------------------------------------------------------------------

def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image from its header only (PIL's order; no pixels decoded)."""
    path = Path(path)
    try:
        if path.suffix.lower() in TIFF_EXTS:
            import tifffile

            with tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                shape, axes = series.shape, series.axes
            if "X" in axes and "Y" in axes:
                return int(shape[axes.index("X")]), int(shape[axes.index("Y")])
            return int(shape[-1]), int(shape[-2])  # pragma: no cover - tifffile names Y and X for images
        from PIL import Image

        with Image.open(path) as im:
            return int(im.size[0]), int(im.size[1])
    except Exception as exc:  # PIL/tifffile raise many types for broken files
        raise UserError(f"{path} cannot be read as an image ({type(exc).__name__}); "
                        f"re-save it as TIFF, PNG or JPEG or remove it.") from None


def _size(image: str | Path | tuple[int, int] | None) -> tuple[int, int] | None:
    if image is None or isinstance(image, tuple):
        return image
    return image_size(image)


def _number(text, what: str, where: str, fix: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value):
        raise UserError(f"{where}: {what} {text!r} is not a number; {fix}.")
    return value


def _integer(text, what: str, where: str, fix: str) -> int:
    value = _number(text, what, where, fix)
    if value != int(value) or value < 0:
        raise UserError(f"{where}: {what} {text!r} is not a whole number >= 0; {fix}.")
    return int(value)


def read_class_names(path: str | Path) -> list[str]:
    """Class names, one per line (YOLO's classes.txt / obj.names); `0 RBC` lines (id, name) are accepted."""
    path = Path(path)
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    names = [line.strip() for line in lines]
    split = [n.split(None, 1) for n in names]
    if names and all(len(s) == 2 and s[0] == str(i) for i, s in enumerate(split)):
        names = [s[1].strip() for s in split]
    for i, name in enumerate(names):
        if not name:
            raise UserError(f"{path} line {i + 1} is empty; write one class name per line (class 0 first).")
        if name in names[:i]:
            raise UserError(f"{path} names class {name!r} twice (lines {names.index(name) + 1} and {i + 1}); "
                            f"keep each class name once.")
    if not names:
        raise UserError(f"{path} holds no class names; write one class name per line (class 0 first).")
    return names


def find_class_names(folder: str | Path) -> Path | None:
    """classes.txt in the annotation folder or up to two folders above it (BCCD keeps it at the data set root)."""
    folder = Path(folder)
    for d in (folder, folder.parent, folder.parent.parent):
        if (d / CLASSES_FILE).is_file():
            return d / CLASSES_FILE
    return None


# --- checks ------------------------------------------------------------------------------------

def check_boxes(boxes: Boxes, tolerance: float = TOLERANCE) -> Boxes:
    """Refuse empty, inverted and out-of-image boxes and unknown class ids; return the boxes clipped to
    the image (what reaches past it by at most `tolerance` pixels is rounding, not an error)."""
    w, h = boxes.width, boxes.height
    src = boxes.source or boxes.image
    if w <= 0 or h <= 0:
        raise UserError(f"The annotations {src} give the image size {w}×{h}; give the real width and height "
                        f"of {boxes.image}.")
    n = len(boxes.class_names)
    out = []
    for i, b in enumerate(boxes.boxes):
        where = b.where or f"{src} box {i + 1}"
        if n and not 0 <= b.class_id < n:
            raise UserError(f"{where}: class id {b.class_id} is not among the {n} classes "
                            f"({', '.join(f'{k} {c}' for k, c in enumerate(boxes.class_names))}); "
                            f"fix the class id or add its name to the class list (classes.txt).")
        if b.xmax <= b.xmin or b.ymax <= b.ymin:
            raise UserError(f"{where}: the box ({b.xmin:g}, {b.ymin:g}, {b.xmax:g}, {b.ymax:g}) has "
                            f"{'zero' if b.xmax == b.xmin or b.ymax == b.ymin else 'negative'} size; "
                            f"give xmax > xmin and ymax > ymin, or delete the box.")
        excess = {"left": -b.xmin, "top": -b.ymin, "right": b.xmax - w, "bottom": b.ymax - h}
        side, by = max(excess.items(), key=lambda kv: kv[1])
        if by > tolerance:
            raise UserError(f"{where}: the box ({b.xmin:g}, {b.ymin:g}, {b.xmax:g}, {b.ymax:g}) reaches "
                            f"{by:.1f} pixels past the {side} edge of the {w}×{h} image; fix or delete the box, "
                            f"or check that these annotations belong to {boxes.image}.")
        c = replace(b, xmin=min(max(b.xmin, 0.0), w), ymin=min(max(b.ymin, 0.0), h),
                    xmax=min(max(b.xmax, 0.0), w), ymax=min(max(b.ymax, 0.0), h))
        if c.xmax <= c.xmin or c.ymax <= c.ymin:
            raise UserError(f"{where}: the box ({b.xmin:g}, {b.ymin:g}, {b.xmax:g}, {b.ymax:g}) lies outside "
                            f"the {w}×{h} image; delete the box.")
        out.append(c)
    return replace(boxes, boxes=out)


def _named(boxes: list[Box], class_names: Sequence[str]) -> list[Box]:
    return [replace(b, class_name=class_names[b.class_id]) if 0 <= b.class_id < len(class_names) else b
            for b in boxes]


def _by_name(label: str, class_names: Sequence[str], where: str, src) -> int:
    """A class given by name (or by its id written as text) as an id of `class_names`."""
    if label in class_names:
        return list(class_names).index(label)
    if label.isdigit() and int(label) < len(class_names):
        return int(label)
    raise UserError(f"{where}: class {label!r} is not in the class list ({', '.join(class_names)}) of {src}; "
                    f"fix the name or add it to the class list.")


# --- YOLO txt ----------------------------------------------------------------------------------

_YOLO_FIX = "YOLO lines are 'class cx cy w h' (class id, then centre and size as fractions of the image)"


def _parse_yolo(path: Path, size: tuple[int, int]) -> list[Box]:
    w, h = size
    boxes = []
    for n, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path} line {n}"
        if len(fields) not in (5, 6):
            raise UserError(f"{where} has {len(fields)} values, not 5; {_YOLO_FIX}, optionally followed by "
                            f"a confidence.")
        cls = _integer(fields[0], "the class id", where, _YOLO_FIX)
        cx, cy, bw, bh = (_number(f, k, where, _YOLO_FIX) for f, k in zip(fields[1:5], ("cx", "cy", "w", "h")))
        if max(cx, cy, bw, bh) > 1 + TOLERANCE / min(w, h):
            raise UserError(f"{where} has values above 1 ({' '.join(fields[1:5])}), so they look like pixels; "
                            f"{_YOLO_FIX}: divide x and w by {w} and y and h by {h}.")
        conf = _number(fields[5], "the confidence", where, _YOLO_FIX) if len(fields) == 6 else None
        boxes.append(Box(cls, (cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h,
                         confidence=conf, where=where))
    return boxes


def _yolo_class_names(folder: Path, class_names, max_id: int) -> list[str]:
    if class_names is not None:
        return list(class_names)
    found = find_class_names(folder)
    return read_class_names(found) if found else [str(i) for i in range(max_id + 1)]


def read_yolo(path: str | Path, image: str | Path | tuple[int, int],
              class_names: Sequence[str] | None = None) -> Boxes:
    """Boxes of one YOLO txt file. YOLO stores fractions, so the image size is needed: give the image
    (its header is read) or (width, height). Names: `class_names`, else classes.txt near the file, else ids."""
    path = Path(path)
    size = _size(image)
    boxes = _parse_yolo(path, size)
    names = _yolo_class_names(path.parent, class_names, max((b.class_id for b in boxes), default=-1))
    return check_boxes(Boxes(path.stem, size[0], size[1], _named(boxes, names), names, path))


# --- PASCAL VOC XML ----------------------------------------------------------------------------

def _refuse_declarations(path: Path, data: bytes) -> None:
    """Refuse DOCTYPE/ENTITY before ElementTree sees the file: entity expansion ('billion laughs') could
    exhaust memory, and annotation files never need declarations."""
    def refuse(*_):
        raise UserError(f"{path} declares a DOCTYPE or ENTITY, which annotation files do not need and which "
                        f"is refused for safety; delete the <!DOCTYPE ...> block and save it again.")

    parser = xml.parsers.expat.ParserCreate()
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    try:
        parser.Parse(data, True)
    except xml.parsers.expat.ExpatError as exc:
        raise UserError(f"{path} is not valid XML ({exc}); fix the file or export the annotations again.") from None


def _voc_text(node, tag: str, where: str) -> str:
    child = node.find(tag)
    if child is None or child.text is None or not child.text.strip():
        raise UserError(f"{where} has no <{tag}>; VOC objects need <name> and <bndbox> with "
                        f"<xmin>, <ymin>, <xmax>, <ymax>.")
    return child.text.strip()


def _parse_voc(path: Path) -> tuple[list[tuple[str, Box]], tuple[int, int] | None]:
    """(class name, box with class_id -1) pairs and the XML's own <size> (None where it gives none)."""
    data = path.read_bytes()
    if not data.strip():
        return [], None  # an empty file: an image without objects
    _refuse_declarations(path, data)
    root = ET.fromstring(data)
    if root.tag != "annotation":
        raise UserError(f"{path} has the root element <{root.tag}>, not <annotation>; give PASCAL VOC XML "
                        f"(as written by labelImg or ZeroCostDL4Mic's YOLOv2 notebook).")
    size = None
    node = root.find("size")
    if node is not None:
        wh = [node.findtext(t) for t in ("width", "height")]
        fix = "give <size><width>/<height> in pixels"
        wh = [_integer(v, f"<{t}>", f"{path} <size>", fix) if v and v.strip() else 0
              for v, t in zip(wh, ("width", "height"))]
        size = (wh[0], wh[1]) if wh[0] > 0 and wh[1] > 0 else None
    objects = []
    for i, obj in enumerate(root.iter("object"), start=1):
        where = f"{path} object {i}"
        name = _voc_text(obj, "name", where)
        bnd = obj.find("bndbox")
        if bnd is None:
            raise UserError(f"{where} ({name}) has no <bndbox>; give <bndbox> with <xmin>, <ymin>, <xmax>, <ymax>.")
        fix = "give the corners in pixels"
        xyxy = [_number(_voc_text(bnd, k, f"{where} ({name})"), f"<{k}>", f"{where} ({name})", fix) for k in COORDS]
        objects.append((name, Box(-1, *xyxy, where=f"{where} ({name})")))
    return objects, size


def _voc_boxes(path: Path, objects, xml_size, image, class_names: Sequence[str]) -> Boxes:
    size = _size(image)
    if xml_size and size and xml_size != size:
        raise UserError(f"{path} is for a {xml_size[0]}×{xml_size[1]} image but {image} is "
                        f"{size[0]}×{size[1]}; annotate the image as it is (or resize the boxes with the image).")
    size = xml_size or size
    if size is None:
        raise UserError(f"{path} gives no image <size>; add <size><width>/<height> or give the image.")
    boxes = [replace(b, class_id=_by_name(name, class_names, b.where, "the data set"), class_name=name)
             for name, b in objects]
    return check_boxes(Boxes(path.stem, size[0], size[1], boxes, list(class_names), path))


def read_voc(path: str | Path, image: str | Path | tuple[int, int] | None = None,
             class_names: Sequence[str] | None = None) -> Boxes:
    """Boxes of one PASCAL VOC XML file; its <size> is checked against `image` where both are known.
    Names: `class_names`, else classes.txt near the file, else this file's names sorted."""
    path = Path(path)
    objects, xml_size = _parse_voc(path)
    if class_names is None:
        found = find_class_names(path.parent)
        class_names = read_class_names(found) if found else sorted({name for name, _ in objects})
    return _voc_boxes(path, objects, xml_size, image, class_names)


# --- COCO JSON ---------------------------------------------------------------------------------

def read_coco(path: str | Path) -> dict[str, Boxes]:
    """Boxes of every image in a COCO JSON file, keyed by file stem. Category ids become 0..K-1 in
    ascending id order (as detectron2 does), names kept; `score` is read as the confidence."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not valid JSON ({exc}); export the COCO annotations again.") from None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list)
                                             for k in ("images", "annotations", "categories")):
        raise UserError(f"{path} lacks the COCO lists 'images', 'annotations' and 'categories'; "
                        f"give a COCO detection JSON file.")
    try:
        cats = sorted((int(c["id"]), str(c["name"])) for c in data["categories"])
    except (KeyError, TypeError, ValueError, OverflowError):
        raise UserError(f"{path}: every category needs an integer 'id' and a 'name'; fix 'categories'.") from None
    names = [n for _, n in cats]
    cat_index = {cid: i for i, (cid, _) in enumerate(cats)}
    out: dict[str, Boxes] = {}
    by_id: dict = {}
    for k, im in enumerate(data["images"]):
        try:
            stem, size = Path(str(im["file_name"]).replace("\\", "/")).stem, (int(im["width"]), int(im["height"]))
            image_id = im["id"]
        except (KeyError, TypeError, ValueError, OverflowError):  # fuzzing: width Infinity
            raise UserError(f"{path}: image {k + 1} needs 'id', 'file_name', 'width' and 'height'; "
                            f"fix that entry of 'images'.") from None
        if stem in out:
            raise UserError(f"{path} lists two images named {stem}; keep one image per name.")
        out[stem] = Boxes(stem, size[0], size[1], [], names, path)
        by_id[image_id] = out[stem]
    for k, ann in enumerate(data["annotations"]):
        where = f"{path} annotation id {ann.get('id', k + 1) if isinstance(ann, dict) else k + 1}"
        if not isinstance(ann, dict) or ann.get("image_id") not in by_id:
            raise UserError(f"{where}: image_id {ann.get('image_id') if isinstance(ann, dict) else None!r} is "
                            f"not in 'images'; add the image or delete the annotation.")
        if ann.get("category_id") not in cat_index:
            raise UserError(f"{where}: category_id {ann.get('category_id')!r} is not in 'categories' "
                            f"(ids {', '.join(str(c) for c, _ in cats)}); fix it or add the category.")
        bbox = ann.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4:
            raise UserError(f"{where}: 'bbox' is {bbox!r}, not [x, y, width, height]; fix the annotation.")
        x, y, bw, bh = (_number(v, "bbox value", where, "give 'bbox' as [x, y, width, height] in pixels")
                        for v in bbox)
        conf = _number(ann["score"], "score", where, "give the score as a number") if "score" in ann else None
        cls = cat_index[ann["category_id"]]
        by_id[ann["image_id"]].boxes.append(Box(cls, x, y, x + bw, y + bh, names[cls], conf, where=where))
    return {stem: check_boxes(b) for stem, b in out.items()}


# --- dl4mic box CSV ----------------------------------------------------------------------------

def read_box_csv(path: str | Path, sizes: Mapping[str, tuple[int, int]] | None = None,
                 class_names: Sequence[str] | None = None) -> dict[str, Boxes]:
    """Boxes of many images from dl4mic's CSV (image,frame,class,confidence,xmin,ymin,xmax,ymax), keyed by
    image stem. Also read: `filename` for `image` and `width`,`height` columns (the TensorFlow/BCCD layout).
    A row with empty corners lists an image without objects. Sizes come from `sizes` (width, height by stem)
    or the width/height columns; where both are known they must agree."""
    path = Path(path)
    with open(path, newline="", encoding="utf-8-sig") as fh:
        rows = [[c.strip() for c in row] for row in csv.reader(fh)]
    header = [c.lower() for c in rows[0]] if rows else []
    col = {name: i for i, name in enumerate(header)}
    if "image" not in col and "filename" in col:
        col["image"] = col["filename"]
    missing = [k for k in ("image",) + COORDS if k not in col]
    if missing:
        found = ", ".join(rows[0]) if rows else "none"
        raise UserError(f"{path} has no {', '.join(missing)} column(s) (found: {found}); "
                        f"give dl4mic's columns image,frame,class,confidence,xmin,ymin,xmax,ymax.")
    raw: dict[str, list[tuple[str, Box]]] = {}
    csv_sizes: dict[str, tuple[int, int]] = {}
    fix = "give numbers in pixels"
    for n, row in enumerate(rows[1:], start=2):
        if not any(row):
            continue
        row = row + [""] * (len(header) - len(row))
        get = lambda k, default="": row[col[k]] if k in col and row[col[k]] != "" else default
        where = f"{path} line {n}"
        stem = Path(get("image").replace("\\", "/")).stem
        if not stem:
            raise UserError(f"{where} names no image; fill in its image column.")
        raw.setdefault(stem, [])
        if "width" in col and get("width") and get("height"):
            wh = (_integer(get("width"), "width", where, fix), _integer(get("height"), "height", where, fix))
            if csv_sizes.setdefault(stem, wh) != wh:
                raise UserError(f"{where} gives {stem} the size {wh[0]}×{wh[1]}, other rows "
                                f"{csv_sizes[stem][0]}×{csv_sizes[stem][1]}; give one size per image.")
        if all(get(k) == "" for k in COORDS):
            continue  # an image without objects
        xyxy = [_number(get(k), k, where, fix) for k in COORDS]
        frame = _integer(get("frame", "0"), "frame", where, "give the 0-based plane")
        conf = _number(get("confidence"), "confidence", where, "give a number") if get("confidence") else None
        raw[stem].append((get("class", "object"), Box(-1, *xyxy, confidence=conf, frame=frame, where=where)))
    labels = {label for objs in raw.values() for label, _ in objs}
    if class_names is None:
        found = find_class_names(path.parent)
        if found:
            class_names = read_class_names(found)
        elif labels and all(lab.isdigit() for lab in labels):
            class_names = [str(i) for i in range(max(int(lab) for lab in labels) + 1)]
        else:
            class_names = sorted(labels)
    out = {}
    for stem, objs in raw.items():
        size, given = csv_sizes.get(stem), (sizes or {}).get(stem)
        if size and given and size != given:
            raise UserError(f"{path} gives {stem} the size {size[0]}×{size[1]} but the image is "
                            f"{given[0]}×{given[1]}; annotate the image as it is.")
        size = size or given
        if size is None:
            raise UserError(f"{path} gives no size for {stem}; add width,height columns or give the images.")
        boxes = [replace(b, class_id=_by_name(label, class_names, b.where, path), class_name=None) for label, b in objs]
        out[stem] = check_boxes(Boxes(stem, size[0], size[1], _named(boxes, class_names), list(class_names), path))
    return out


# --- pairing images with their annotations ---------------------------------------------------

def _stems(images: Sequence[Path]) -> dict[str, Path]:
    by_stem: dict[str, Path] = {}
    for im in images:
        im = Path(im)
        if im.stem in by_stem:
            raise UserError(f"{im} and {by_stem[im.stem]} have the same name; keep one image per name, "
                            f"because annotations are paired with images by name.")
        by_stem[im.stem] = im
    return by_stem


def _whole_file(by_stem: dict[str, Path], found: dict[str, Boxes], target: Path, fix: str) -> dict[str, Boxes]:
    out = {}
    for stem, im in by_stem.items():
        if stem not in found:
            raise UserError(f"{im} is not in the annotations {target}; {fix}.")
        size = image_size(im)
        b = found[stem]
        if (b.width, b.height) != size:
            raise UserError(f"{target} gives {im.name} the size {b.width}×{b.height} but the image is "
                            f"{size[0]}×{size[1]}; annotate the image as it is.")
        out[stem] = b
    return out


def read_box_targets(images: Sequence[Path], target: str | Path,
                     class_names: Sequence[str] | None = None) -> dict[str, Boxes]:
    """Boxes of every image, keyed by image stem, from `target`: a folder of YOLO .txt or VOC .xml files
    paired with the images by stem (an empty file means no objects), or one COCO .json or dl4mic .csv for
    all images. Class names are the data set's: `class_names`, else classes.txt, COCO categories, or the
    names found (sorted). Every image must be annotated."""
    target = Path(target)
    by_stem = _stems(images)
    if not target.exists():
        raise UserError(f"The annotations {target} do not exist; give the folder of YOLO .txt or VOC .xml files, "
                        f"or a COCO .json or dl4mic .csv file.")
    suffix = target.suffix.lower()
    if target.is_file() and suffix == ".json":
        return _whole_file(by_stem, read_coco(target), target, "add it to the COCO 'images' list "
                           "(an image without annotations there has no objects) or remove the image")
    if target.is_file() and suffix == ".csv":
        sizes = {stem: image_size(im) for stem, im in by_stem.items()}
        return _whole_file(by_stem, read_box_csv(target, sizes, class_names), target,
                           "add a row for it (a row with empty xmin,ymin,xmax,ymax means no objects) "
                           "or remove the image")
    if target.is_file() and suffix in (".txt", ".xml"):
        if len(by_stem) != 1:
            raise UserError(f"{target} is one annotation file for {len(by_stem)} images; give the folder that "
                            f"holds one annotation file per image.")
        files = {next(iter(by_stem)): target}
    elif target.is_dir():
        present = [p for p in sorted(target.iterdir()) if p.is_file() and not is_hidden(p)]
        kinds = {p.suffix.lower() for p in present if p.suffix.lower() in (".txt", ".xml") and p.name != CLASSES_FILE}
        if not kinds:
            raise UserError(f"{target} holds no YOLO .txt or VOC .xml annotation files; put one file per image "
                            f"there, named like the image.")
        if len(kinds) > 1:
            raise UserError(f"{target} holds both YOLO .txt and VOC .xml files; keep one annotation format per folder.")
        suffix = kinds.pop()
        files = {}
        for stem, im in by_stem.items():
            f = target / f"{stem}{suffix}"
            if not f.is_file():
                raise UserError(f"{im} has no annotation file {f}; add it (an empty file means an image without "
                                f"objects) or remove the image.")
            files[stem] = f
    else:
        raise UserError(f"{target} is not a folder of YOLO .txt or VOC .xml files, nor a COCO .json or dl4mic .csv "
                        f"file; give one of those.")
    folder = target if target.is_dir() else target.parent
    if class_names is None and find_class_names(folder):
        class_names = read_class_names(find_class_names(folder))
    if suffix == ".txt":
        sizes = {stem: image_size(by_stem[stem]) for stem in files}
        parsed = {stem: _parse_yolo(f, sizes[stem]) for stem, f in files.items()}
        max_id = max((b.class_id for boxes in parsed.values() for b in boxes), default=-1)
        names = _yolo_class_names(folder, class_names, max_id)
        return {stem: check_boxes(Boxes(stem, *sizes[stem], _named(parsed[stem], names), names, f))
                for stem, f in files.items()}
    parsed_voc = {stem: _parse_voc(f) for stem, f in files.items()}
    if class_names is None:
        class_names = sorted({name for objects, _ in parsed_voc.values() for name, _ in objects})
    return {stem: _voc_boxes(files[stem], objects, xml_size, by_stem[stem], class_names)
            for stem, (objects, xml_size) in parsed_voc.items()}
