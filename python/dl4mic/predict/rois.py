"""Label images <-> ImageJ ROI sets (zip files Fiji's ROI Manager opens), without a JVM.

Each label becomes one ROI: a traced polygon, or a composite ROI (ImageJ's
ShapeRoi) when the object has holes or several parts. Outlines follow pixel
edges, so ImageJ fills them back to exactly the labelled pixels.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import roifile
from roifile import ROI_OPTIONS, ROI_TYPE, ImagejRoi
from scipy import ndimage

from ..data.io import atomic_path
from ..errors import UserError
from .contours import fill_loops, mask_outlines

_LABEL_NAME = re.compile(r"^label[-_ ]?(\d+)", re.IGNORECASE)
# java.awt.geom.PathIterator segment codes, as stored in composite ROIs.
_MOVETO, _LINETO, _CLOSE = 0, 1, 4


def label_name(label: int) -> str:
    """ROI name that carries the label value, so zip -> labels restores the same values."""
    return f"label-{int(label)}"


def label_from_name(name: str) -> int | None:
    match = _LABEL_NAME.match(name or "")
    return int(match.group(1)) if match else None


def outlines_to_roi(loops: list[np.ndarray], name: str, position: int = 0) -> ImagejRoi:
    """A traced polygon ROI for one loop, a composite ROI for several (holes, parts)."""
    if len(loops) == 1:
        roi = ImagejRoi.frompoints(loops[0].astype(np.int32), name=name)
        roi.roitype = ROI_TYPE.TRACED
        roi.options = ROI_OPTIONS(0)
    else:
        path = []
        for loop in loops:
            path += [_MOVETO, *loop[0]]
            for x, y in loop[1:]:
                path += [_LINETO, x, y]
            path.append(_CLOSE)
        allpts = np.vstack(loops)
        roi = ImagejRoi(
            roitype=ROI_TYPE.RECT, name=name,
            left=int(allpts[:, 0].min()), top=int(allpts[:, 1].min()),
            right=int(allpts[:, 0].max()), bottom=int(allpts[:, 1].max()),
            multi_coordinates=np.asarray(path, np.float32), shape_roi_size=len(path),
        )
    roi.position = int(position)
    return roi


def labels_to_rois(labels: np.ndarray, names: dict | list | None = None) -> list[ImagejRoi]:
    """One ROI per label and plane; for 3D labels (T/Z, Y, X) each ROI's stack position is set (1-based)."""
    labels = np.asarray(labels)
    if labels.ndim not in (2, 3) or not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool):
        raise UserError(f"A label image must be a 2D or 3D integer array, not {labels.ndim}D {labels.dtype}; "
                        "give the *_labels.tif image, not the raw or probability image.")
    planes = labels[None] if labels.ndim == 2 else labels
    rois = []
    for index, plane in enumerate(planes):
        plane = plane.astype(np.int64, copy=False)
        for value, box in _objects(plane):
            loops = mask_outlines(plane[box] == value, origin=(box[1].start, box[0].start))
            name = _name_for(names, value, len(rois))
            if labels.ndim == 3:
                name = f"{name}-{index + 1:04d}" if names is None else name
            rois.append(outlines_to_roi(loops, name, index + 1 if labels.ndim == 3 else 0))
    return rois


def _objects(plane: np.ndarray):
    """(label value, bounding-box slices) of every non-zero label of a 2D plane."""
    values = np.unique(plane)
    values = values[values > 0]
    if values.size == 0:
        return []
    if values[-1] <= 4 * values.size + 1024:  # dense labels: one pass of find_objects
        boxes = ndimage.find_objects(plane)
        return [(int(v), boxes[v - 1]) for v in values.tolist()]
    return [(int(v), ndimage.find_objects((plane == v).astype(np.int8))[0]) for v in values.tolist()]


def _name_for(names, value: int, index: int) -> str:
    if names is None:
        return label_name(value)
    if isinstance(names, dict):
        return str(names.get(value, label_name(value)))
    return str(names[index])


def labels_to_roi_zip(labels: np.ndarray, path: str | Path, names: dict | list | None = None) -> Path:
    """Write `labels` as an ImageJ ROI zip (atomically); ROI names carry the label values."""
    path = Path(path)
    if path.suffix.lower() != ".zip":
        raise UserError(f"{path} must end in .zip so that Fiji's ROI Manager opens it as a ROI set.")
    rois = labels_to_rois(labels, names)
    write_roi_zip(rois, path)
    return path


def write_roi_zip(rois: list[ImagejRoi], path: str | Path) -> Path:
    """An ImageJ ROI zip with unique entry names, written atomically."""
    path = Path(path)
    seen = {}
    for roi in rois:
        base = roi.name or "roi"
        seen[base] = seen.get(base, 0) + 1
        if seen[base] > 1:
            roi.name = f"{base}-{seen[base]}"
    with atomic_path(path) as tmp:
        tmp.unlink()
        if rois:
            roifile.roiwrite(tmp, rois, mode="w")
        else:  # ImageJ opens an empty zip as an empty set
            import zipfile

            zipfile.ZipFile(tmp, "w").close()
    return path


def read_roi_zip(path: str | Path) -> list[ImagejRoi]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"The ROI file {path} does not exist; give a .zip or .roi saved by Fiji's ROI Manager.")
    try:
        rois = roifile.roiread(path)
    except Exception as exc:  # roifile raises several types for foreign files
        raise UserError(f"{path} is not an ImageJ ROI set ({type(exc).__name__}); "
                        "save the ROIs from Fiji's ROI Manager (More > Save) and try again.") from None
    return rois if isinstance(rois, list) else [rois]


def roi_mask(roi: ImagejRoi, shape: tuple[int, int]) -> np.ndarray:
    """The pixels ImageJ counts as inside `roi` (rectangles, ovals, polygons, composites)."""
    height, width = shape
    if roi.composite:
        return fill_loops(roi.coordinates(multi=True), shape)
    if roi.roitype == ROI_TYPE.RECT:
        out = np.zeros(shape, bool)
        out[max(roi.top, 0):min(roi.bottom, height), max(roi.left, 0):min(roi.right, width)] = True
        return out
    if roi.roitype in (ROI_TYPE.POLYGON, ROI_TYPE.FREEHAND, ROI_TYPE.TRACED, ROI_TYPE.OVAL):
        return fill_loops([roi.coordinates()], shape)
    raise UserError(f"ROI {roi.name!r} is a {roi.roitype.name.lower()} selection, which encloses no area; "
                    "use area selections (rectangle, oval, polygon, freehand) for masks and labels.")


def roi_plane(roi: ImagejRoi) -> int:
    """0-based plane of a ROI in a stack (hyperstack z or t, or the plain position); 0 when unset."""
    for pos in (roi.position, roi.t_position, roi.z_position):
        if pos:
            return int(pos) - 1
    return 0


def rois_to_labels(rois: list[ImagejRoi], shape: tuple) -> np.ndarray:
    """Paint ROIs in order into a uint16 label image (later ROIs win where they overlap).

    Values come from `label-N` names; other ROIs get the next free numbers.
    """
    shape = tuple(int(s) for s in shape)
    out = np.zeros(shape, np.uint16 if len(rois) < 65535 else np.uint32)
    named = [label_from_name(r.name) for r in rois]
    next_free = max([v for v in named if v] + [0]) + 1
    for roi, value in zip(rois, named):
        if not value:
            value, next_free = next_free, next_free + 1
        plane = roi_plane(roi) if len(shape) == 3 else None
        if plane is not None and not 0 <= plane < shape[0]:
            raise UserError(f"ROI {roi.name!r} sits on plane {plane + 1} but the image has {shape[0]}; "
                            "give the shape of the image the ROIs were drawn on.")
        target = out if plane is None else out[plane]
        target[roi_mask(roi, shape[-2:])] = value
    return out


def roi_zip_to_labels(path: str | Path, shape: tuple) -> np.ndarray:
    """Label image (2D, or 3D with ROI positions) from an ImageJ ROI zip or .roi file."""
    return rois_to_labels(read_roi_zip(path), shape)


def rois_to_mask(rois: list[ImagejRoi], shape: tuple) -> np.ndarray:
    """Binary training mask (uint8, 0/255) from area ROIs."""
    return np.where(rois_to_labels(rois, shape) > 0, 255, 0).astype(np.uint8)
