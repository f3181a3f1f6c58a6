"""Label images <-> ImageJ ROI sets (zip files Fiji's ROI Manager opens), without a JVM.

Each label becomes one ROI per plane it crosses: a traced polygon, or a
composite ROI (ImageJ's ShapeRoi) when the object has holes or several parts in
that plane. Outlines follow pixel edges, so ImageJ fills them back to exactly
the labelled pixels.

Names and positions by the label image's axes (positions 1-based, as ImageJ counts):

    YX    label-N          no position
    TYX   label-N-TTTT     position = frame
    ZYX   N:Z              position = slice (how ImageJ itself ties a ROI to a slice of a Z-stack)
    TZYX  N:Z:T            hyperstack position (slice Z, frame T); the plain stack position when
                           Z or T has a single plane (ImageJ opens such a file as a plain stack)

N, Z and T are zero-padded to a common width, so that sorting by name lists
each nucleus slice by slice.
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
# N:Z or N:Z:T, with the -2, -3 ... that ImageJ and write_roi_zip append to repeated names.
_SLICE_NAME = re.compile(r"^(\d+):(\d+)(?::(\d+))?(?:-\d+)?$")
LABEL_AXES = ("YX", "TYX", "ZYX", "TZYX")
# java.awt.geom.PathIterator segment codes, as stored in composite ROIs.
_MOVETO, _LINETO, _CLOSE = 0, 1, 4


def label_name(label: int, z: int | None = None, t: int | None = None, widths: tuple = (0, 0, 0)) -> str:
    """ROI name that carries the label value (and the 1-based slice/frame of 3D labels), so that
    zip -> labels restores the same values; `widths` zero-pad label, slice and frame so that names sort."""
    if z is None:
        return f"label-{int(label)}"
    lw, zw, tw = widths
    name = f"{int(label):0{lw}d}:{int(z):0{zw}d}"
    return name if t is None else f"{name}:{int(t):0{tw}d}"


def parse_name(name: str) -> tuple[int, int | None, int | None] | None:
    """(label, slice, frame) from a ROI name (slice and frame 1-based, None when the name has none)."""
    match = _SLICE_NAME.match(name or "")
    if match:
        return int(match.group(1)), int(match.group(2)), int(match.group(3)) if match.group(3) else None
    match = _LABEL_NAME.match(name or "")
    return (int(match.group(1)), None, None) if match else None


def label_from_name(name: str) -> int | None:
    parsed = parse_name(name)
    return parsed[0] if parsed else None


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


def label_axes(labels: np.ndarray, axes: str | None = None) -> str:
    """The axes of a label image: as given, else YX (2D), TYX (3D: the first axis is the stack position,
    as before axes were passed) or TZYX (4D)."""
    if axes is None:
        axes = {2: "YX", 3: "TYX", 4: "TZYX"}.get(labels.ndim, "")
    axes = axes.upper()
    if axes not in LABEL_AXES or len(axes) != labels.ndim:
        raise UserError(f"A label image of shape {labels.shape} with axes {axes or '?'} cannot become ROIs; give a "
                        f"YX, ZYX, TYX or TZYX integer label image (the *_labels.tif, one channel).")
    return axes


def labels_to_rois(labels: np.ndarray, names: dict | list | None = None, axes: str | None = None) -> list[ImagejRoi]:
    """One ROI per label and plane (see the module docstring for names and positions by `axes`).

    Objects are traced plane by plane inside their bounding boxes, so memory stays at about one plane.
    `names` (a {label: name} dict, or one name per ROI) replaces the generated names.
    """
    labels = np.asarray(labels)
    if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool):
        raise UserError(f"A label image must be an integer array, not {labels.dtype}; "
                        "give the *_labels.tif image, not the raw or probability image.")
    axes = label_axes(labels, axes)
    if axes == "YX":
        planes = [((), labels)]
    elif axes in ("TYX", "ZYX"):
        planes = [((i,), plane) for i, plane in enumerate(labels)]
    else:
        planes = [((t, z), labels[t, z]) for t in range(labels.shape[0]) for z in range(labels.shape[1])]
    top = int(labels.max()) if labels.size else 0
    widths = (len(str(top)), len(str(labels.shape[axes.find("Z")])) if "Z" in axes else 0,
              len(str(labels.shape[0])) if "T" in axes else 0)
    found = []
    for index, plane in planes:
        plane = plane.astype(np.int64, copy=False)
        for value, box in _objects(plane):
            loops = mask_outlines(plane[box] == value, origin=(box[1].start, box[0].start))
            found.append((_order(axes, value, index), value, index, loops))
    found.sort(key=lambda f: f[0])  # stable: equal keys keep the plane order
    rois = []
    for _, value, index, loops in found:
        if names is not None:
            name = _name_for(names, value, len(rois))
        elif axes == "YX":
            name = label_name(value)
        elif axes == "TYX":
            name = f"{label_name(value)}-{index[0] + 1:04d}"
        elif axes == "ZYX":
            name = label_name(value, index[0] + 1, widths=widths)
        else:
            name = label_name(value, index[1] + 1, index[0] + 1, widths)
        roi = outlines_to_roi(loops, name)
        _set_position(roi, axes, index, labels.shape)
        rois.append(roi)
    return rois


def _order(axes: str, value: int, index: tuple) -> tuple:
    """Sort key of one ROI: plane by plane for 2D time series (as before), nucleus by nucleus, slice by
    slice in 3D (frame by frame first in TZYX)."""
    if axes == "ZYX":
        return value, index[0]
    if axes == "TZYX":
        return index[0], value, index[1]
    return index


def _set_position(roi: ImagejRoi, axes: str, index: tuple, shape: tuple) -> None:
    if axes in ("TYX", "ZYX"):
        roi.position = index[0] + 1
    elif axes == "TZYX":
        frames, slices = shape[:2]
        if frames > 1 and slices > 1:
            roi.z_position, roi.t_position = index[1] + 1, index[0] + 1
        else:  # ImageJ opens it as a plain stack: its stack index (t-major, as ImageJ orders planes)
            roi.position = index[0] * slices + index[1] + 1


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
    if isinstance(names, dict):
        return str(names.get(value, label_name(value)))
    return str(names[index])


def labels_to_roi_zip(labels: np.ndarray, path: str | Path, names: dict | list | None = None,
                      axes: str | None = None) -> Path:
    """Write `labels` as an ImageJ ROI zip (atomically); ROI names carry the label values.

    `axes` ("YX", "ZYX", "TYX", "TZYX") says what a 3D array's first axis is; without it a 3D array is
    a plain stack whose ROIs carry their plane as position (TYX).
    """
    path = Path(path)
    if path.suffix.lower() != ".zip":
        raise UserError(f"{path} must end in .zip so that Fiji's ROI Manager opens it as a ROI set.")
    rois = labels_to_rois(labels, names, axes)
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


MAX_ROI_BYTES = 16 << 20  # far above any ImageJ ROI (a 1-million-point polygon is 8 MB)


def _refuse_oversized_members(path: Path) -> None:
    """A damaged or hostile zip may declare huge entries; refuse it before anything is allocated."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            sizes = [(info.filename, max(info.file_size, info.compress_size)) for info in zf.infolist()]
    except Exception:  # not a zip (a single .roi) or damaged: roifile's reading names it below
        return
    limit = min(MAX_ROI_BYTES, path.stat().st_size * 1000)  # stored or deflated: never 1000x the zip
    big = next(((name, size) for name, size in sizes if size > limit), None)
    if big:
        raise UserError(f"{path} declares an entry {big[0]!r} of {big[1] / 2**20:.1f} MiB, larger than any "
                        f"ImageJ ROI or than the file itself, so it is damaged; save the ROIs from Fiji's ROI "
                        f"Manager again.")


def read_roi_zip(path: str | Path) -> list[ImagejRoi]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"The ROI file {path} does not exist; give a .zip or .roi saved by Fiji's ROI Manager.")
    _refuse_oversized_members(path)
    try:
        rois = roifile.roiread(path)
    except Exception as exc:  # roifile raises several types for foreign files
        raise UserError(f"{path} is not an ImageJ ROI set ({type(exc).__name__}); "
                        "save the ROIs from Fiji's ROI Manager (More > Save) and try again.") from None
    return rois if isinstance(rois, list) else [rois]


def _area_check(roi: ImagejRoi) -> None:
    if not roi.composite and roi.roitype not in (ROI_TYPE.RECT, ROI_TYPE.POLYGON, ROI_TYPE.FREEHAND,
                                                 ROI_TYPE.TRACED, ROI_TYPE.OVAL):
        raise UserError(f"ROI {roi.name!r} is a {roi.roitype.name.lower()} selection, which encloses no area; "
                        "use area selections (rectangle, oval, polygon, freehand) for masks and labels.")


def roi_box_mask(roi: ImagejRoi, shape: tuple[int, int]) -> tuple[tuple[slice, slice], np.ndarray]:
    """(box, mask): the pixels ImageJ counts as inside `roi`, within its bounding box clipped to `shape`,
    so painting many small ROIs into a large plane costs their size, not the plane's."""
    _area_check(roi)
    height, width = shape
    if roi.roitype == ROI_TYPE.RECT and not roi.composite:
        box = (slice(min(max(roi.top, 0), height), min(max(roi.bottom, 0), height)),
               slice(min(max(roi.left, 0), width), min(max(roi.right, 0), width)))
        return box, np.ones((box[0].stop - box[0].start, box[1].stop - box[1].start), bool)
    loops = roi.coordinates(multi=True) if roi.composite else [roi.coordinates()]
    loops = [np.asarray(loop, float) for loop in loops if len(loop)]
    if not loops:
        return (slice(0, 0), slice(0, 0)), np.zeros((0, 0), bool)
    pts = np.vstack(loops)
    x0, y0 = (min(max(int(np.floor(v)), 0), lim) for v, lim in ((pts[:, 0].min(), width), (pts[:, 1].min(), height)))
    x1, y1 = (min(max(int(np.ceil(v)), 0), lim) for v, lim in ((pts[:, 0].max(), width), (pts[:, 1].max(), height)))
    mask = fill_loops([loop - (x0, y0) for loop in loops], (y1 - y0, x1 - x0))
    return (slice(y0, y1), slice(x0, x1)), mask


def roi_mask(roi: ImagejRoi, shape: tuple[int, int]) -> np.ndarray:
    """The pixels ImageJ counts as inside `roi` (rectangles, ovals, polygons, composites)."""
    box, inside = roi_box_mask(roi, shape)
    out = np.zeros(shape, bool)
    out[box] = inside
    return out


def roi_plane(roi: ImagejRoi) -> int:
    """0-based plane of a ROI in a stack (plain position, else hyperstack t or z, else the slice its
    N:Z name gives); 0 when unset."""
    for pos in (roi.position, roi.t_position, roi.z_position):
        if pos:
            return int(pos) - 1
    parsed = parse_name(roi.name)
    return parsed[1] - 1 if parsed and parsed[1] else 0


def roi_frame_slice(roi: ImagejRoi, slices: int) -> tuple[int, int]:
    """0-based (frame, slice) of a ROI in a (T, Z, Y, X) stack: its hyperstack position, else its plain
    stack position (frame-major, ImageJ's order), else its N:Z:T name; (0, 0) when unset."""
    if roi.t_position or roi.z_position:
        return max(int(roi.t_position), 1) - 1, max(int(roi.z_position), 1) - 1
    if roi.position:
        return divmod(int(roi.position) - 1, slices)
    parsed = parse_name(roi.name)
    if parsed and parsed[1]:
        return (parsed[2] or 1) - 1, parsed[1] - 1
    return 0, 0


def rois_to_labels(rois: list[ImagejRoi], shape: tuple) -> np.ndarray:
    """Paint ROIs in order into a label image of `shape` (YX, stack YX, or TZYX; later ROIs win where they
    overlap); uint16 unless a value needs uint32.

    Values come from `label-N` and `N:Z[:T]` names; other ROIs get the next free numbers.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (2, 3, 4):
        raise UserError(f"Labels of shape {shape} cannot be painted from ROIs; give the shape of a 2D image, "
                        "a stack (Z or T, Y, X) or a hyperstack (T, Z, Y, X).")
    named = [label_from_name(r.name) for r in rois]
    next_free = max([v for v in named if v] + [0]) + 1
    values = []
    for value in named:
        if not value:
            value, next_free = next_free, next_free + 1
        values.append(value)
    out = np.zeros(shape, np.uint16 if max(values + [0]) <= 65535 else np.uint32)
    for roi, value in zip(rois, values):
        if len(shape) == 2:
            target = out
        elif len(shape) == 3:
            plane = roi_plane(roi)
            if not 0 <= plane < shape[0]:
                raise UserError(f"ROI {roi.name!r} sits on plane {plane + 1} but the image has {shape[0]}; "
                                "give the shape of the image the ROIs were drawn on.")
            target = out[plane]
        else:
            t, z = roi_frame_slice(roi, shape[1])
            if not (0 <= t < shape[0] and 0 <= z < shape[1]):
                raise UserError(f"ROI {roi.name!r} sits on slice {z + 1}, frame {t + 1} but the image has "
                                f"{shape[1]} slices and {shape[0]} frames; give the shape of the image the ROIs "
                                "were drawn on.")
            target = out[t, z]
        box, inside = roi_box_mask(roi, shape[-2:])
        target[box][inside] = value
    return out


def roi_zip_to_labels(path: str | Path, shape: tuple) -> np.ndarray:
    """Label image (2D, 3D or TZYX, placed by ROI positions) from an ImageJ ROI zip or .roi file."""
    return rois_to_labels(read_roi_zip(path), shape)


def rois_to_mask(rois: list[ImagejRoi], shape: tuple) -> np.ndarray:
    """Binary training mask (uint8, 0/255) from area ROIs."""
    return np.where(rois_to_labels(rois, shape) > 0, 255, 0).astype(np.uint8)
