"""Refuse bad data before any compute is spent: each problem is one sentence naming the file and the fix."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..specs import Spec, load_spec
from .io import channels_first, infer_axes, read_image_with_meta
from .pairing import pair_files


@dataclass
class DataSummary:
    """What check-data found: the pairs and their shapes, dtypes and axes."""

    network: str
    source: Path
    target: Path | None
    pairs: list = field(default_factory=list)
    shapes: list = field(default_factory=list)
    source_dtype: str = ""
    target_dtype: str | None = None
    axes: str = "YX"                   # the files' axes (e.g. YX, YXC, ZYX), the same for every file
    spacing: tuple | None = None       # voxel size in µm of the spatial axes, from the first file that has one
    warnings: list = field(default_factory=list)

    @property
    def n_channels(self) -> int:
        """Channels per image (shapes are channels-first: (C,) + spatial for multichannel images)."""
        return int(self.shapes[0][0]) if self.shapes and "C" in self.axes else 1

    @property
    def spatial_axes(self) -> str:
        return "".join(a for a in self.axes if a != "C")

    def as_dict(self) -> dict:
        return {
            "network": self.network, "source": str(self.source), "target": str(self.target) if self.target else None,
            "n_pairs": len(self.pairs), "files": [p[0].name for p in self.pairs],
            "shapes": [list(s) for s in self.shapes], "source_dtype": self.source_dtype,
            "target_dtype": self.target_dtype, "axes": self.axes,
            "spacing": list(self.spacing) if self.spacing else None, "warnings": list(self.warnings),
        }


def check_image(path: Path, data: np.ndarray, role: dict, network: str, ax: str | None = None,
                n_classes: int = 1) -> str:
    """Validate one image (axes `ax`, from its metadata; default the stated rule) for a data role of a spec
    (`kind`: image | mask | labels, `ndim`: 2 or 3 spatial axes); returns its axes."""
    kind, ndim = role.get("kind", "image"), role.get("ndim", 2)
    if data.size == 0:
        raise UserError(f"{path} is empty; remove it or replace it with a real image.")
    ax = ax or infer_axes(data.shape)
    spatial = "".join(a for a in ax if a != "C")
    if role.get("channels") and ndim == 2 and ax in ("YXC", "CYX"):  # multichannel/RGB accepted as such
        expected = ax
    elif "C" in ax and data.shape[ax.index("C")] in (3, 4) and kind == "image" and "Z" not in ax:
        raise UserError(f"{path} is an RGB image but {network} expects single-channel images; convert it to "
                        f"grayscale (Fiji: Image > Type > 8-bit) or split the channels.")
    else:
        expected = "YX" if ndim == 2 else "ZYX"
    if ax != expected:
        if ndim == 2 and ("Z" in ax or "T" in ax):
            raise UserError(f"{path} is a stack of shape {data.shape} (axes {ax}) but {network} is a 2D network; save "
                            f"each plane as its own file (Fiji: Image > Stacks > Stack to Images) or use the 3D network.")
        if ndim == 3 and spatial == "YX":
            raise UserError(f"{path} is a 2D image (axes {ax}) but {network} is a 3D network; give Z stacks "
                            f"or use the 2D network.")
        if ndim == 3 and ax in ("TYX", "CYX"):
            what = "a time series" if ax == "TYX" else "a multichannel image"
            raise UserError(f"{path} has axes {ax} ({what} of {data.shape[0]} planes) but {network} needs Z "
                            f"stacks; if its planes are Z slices, add --axes ZYX.")
        raise UserError(f"{path} has shape {data.shape} (axes {ax}) but {network} expects single-channel "
                        f"{expected} images; save it as one {ndim}D channel (or set the axes with --axes).")
    if np.issubdtype(data.dtype, np.floating) and not np.all(np.isfinite(data)):
        raise UserError(f"{path} contains NaN or infinite pixels; replace them (Fiji: Process > Math > Remove NaNs) "
                        f"or remove the file.")
    if kind == "image" and data.min() == data.max():
        raise UserError(f"{path} is constant (every pixel is {data.flat[0]}); remove it from the data set.")
    if kind == "mask" and n_classes > 1:
        values = np.unique(data)
        if values.min() < 0 or values.max() > n_classes or not np.all(values == np.round(values)):
            raise UserError(f"{path} has values {values.min():g}..{values.max():g} but class masks for n_classes="
                            f"{n_classes} hold integers 0..{n_classes} (0 = background); fix the mask or set "
                            f"--param n_classes to the number of classes.")
    elif kind == "mask":
        values = np.unique(data)
        if len(values) > 2:
            raise UserError(f"{path} has {len(values)} different values, so it looks like an instance label image, but "
                            f"{network} needs binary masks; convert it (Fiji: Image > Adjust > Threshold at 1), "
                            f"set --param n_classes=K if its values are K classes, or use an instance segmentation network.")
    if kind == "labels":
        if np.issubdtype(data.dtype, np.floating) and not np.all(data == np.round(data)):
            raise UserError(f"{path} has fractional values, so it is not a label image; save integer labels (uint16).")
        values = np.unique(data)
        if values[0] < 0:
            raise UserError(f"{path} has negative values (down to {values[0]:g}), so it is not a label image "
                            f"(0 = background, 1, 2, ... one value per object); save non-negative integer labels "
                            f"(uint16).")
        if len(values) == 2 and values[0] == 0:
            from scipy import ndimage

            _, n = ndimage.label(data > 0)
            if n > 1:
                raise UserError(f"{path} is a binary mask ({n} objects share one value) but {network} needs "
                                f"instance labels; label the objects (Fiji: Analyze Particles > Show: Count Masks, "
                                f"or skimage.measure.label) and save them as uint16.")
    return ax


def label_warnings(labels: np.ndarray, name: str = "label image", ndim: int = 2) -> list[str]:
    """Warnings about a label image (`ndim` spatial axes: 2, or 3 for label stacks) that instance networks
    (StarDist) learn badly from (binary masks are refused by `check_image`): labels split into separate
    pieces (two objects sharing one value, or a fragmented object), and overlapping objects in a stack of
    per-object 2D masks."""
    from scipy import ndimage

    labels = np.asarray(labels)
    out = []
    if labels.ndim == ndim + 1:  # one mask per object (e.g. exported ROIs): overlapping objects cannot be one label image
        overlap = int(np.count_nonzero((labels > 0).sum(axis=0) > 1))
        if overlap:
            out.append(f"{name} holds {labels.shape[0]} planes whose objects overlap on {overlap} pixels; an instance network "
                       f"needs one 2D label image (overlaps resolved), e.g. from Fiji's ROI Manager > Labels.")
        return out
    boxes = ndimage.find_objects(labels.astype(np.int64, copy=False))
    split = []
    for value, box in enumerate(boxes, start=1):
        if box is None:
            continue
        _, n = ndimage.label(labels[box] == value)
        if n > 1:
            split.append(value)
    if split:
        shown = ", ".join(map(str, split[:8])) + (" ..." if len(split) > 8 else "")
        out.append(f"{name} has {len(split)} label(s) made of separate pieces ({shown}); each object needs its own "
                   f"value (relabel with skimage.measure.label, or Fiji: Analyze Particles > Count Masks).")
    return out


def check_data(network: str | Spec, source, target=None, axes: str | None = None,
               params: dict | None = None) -> DataSummary:
    """Pair, read and validate every file of a data set for a network; raise UserError on the first problem.
    `params` (the network's parameters) tell how targets are read, e.g. `n_classes` for class masks."""
    spec = network if isinstance(network, Spec) else load_spec(network)
    n_classes = int((params or {}).get("n_classes", 1))
    if spec.has_target and target is None:
        raise UserError(f"{spec.name} learns from pairs; give --target, the folder of {spec.data['target']['kind']}s "
                        f"with the same file names as the images in {source}.")
    if not spec.has_target and target is not None:
        raise UserError(f"{spec.name} trains from --source alone; leave out --target {target}.")
    pairs = pair_files(source, target)
    summary = DataSummary(spec.name, Path(source), Path(target) if target else None, pairs=pairs)
    src_dtypes, tgt_dtypes, all_axes = set(), set(), set()
    for src, tgt in pairs:
        x, meta = read_image_with_meta(src, axes)
        ax = check_image(src, x, spec.data["source"], spec.name, meta.axes)
        all_axes.add(ax)
        if meta.spacing and summary.spacing is None:
            summary.spacing = tuple(meta.spacing)
        elif meta.spacing and tuple(meta.spacing) != summary.spacing:
            summary.warnings.append(f"{src} has voxel size {_um(meta.spacing)} but the first calibrated file has "
                                    f"{_um(summary.spacing)}; the model records the first.")
        src_dtypes.add(str(x.dtype))
        summary.shapes.append(tuple(channels_first(x, ax).shape))
        if len(summary.shapes[-1]) != len(summary.shapes[0]) or (
                "C" in ax and summary.shapes[-1][0] != summary.shapes[0][0]):
            raise UserError(f"{src} has shape {x.shape} (axes {ax}) but {pairs[0][0]} has "
                            f"{summary.shapes[0]} channels first; give images with the same channels throughout.")
        if tgt is not None:
            y, _ = read_image_with_meta(tgt, axes)
            if y.shape != x.shape:
                raise UserError(f"{tgt} has shape {y.shape} but its source {src} has shape {x.shape}; "
                                f"source and target images must have the same size.")
            check_image(tgt, y, spec.data["target"], spec.name, ax, n_classes)  # a target has its source's axes
            tgt_dtypes.add(str(y.dtype))
            if spec.data["target"].get("kind") == "labels":
                summary.warnings += label_warnings(y, str(tgt), spec.data["target"].get("ndim", 2))
            if spec.data["target"].get("kind") == "mask" and not np.any(y != y.flat[0]):
                summary.warnings.append(f"{tgt} has a single value (no object or all object).")
    if len(all_axes) > 1:
        raise UserError(f"The images in {source} have different axes ({', '.join(sorted(all_axes))}); "
                        f"give the same kind of image throughout or set --axes.")
    summary.axes = all_axes.pop()
    summary.source_dtype = _common_dtype(src_dtypes)
    summary.target_dtype = _common_dtype(tgt_dtypes) if tgt_dtypes else None
    return summary


def _um(spacing) -> str:
    return " x ".join(f"{s:.4g}" for s in spacing) + " µm"


def _common_dtype(dtypes: set) -> str:
    """One dtype name for a data set; mixed integer depths report the widest (data range for QC)."""
    if len(dtypes) == 1:
        return next(iter(dtypes))
    return str(np.result_type(*[np.dtype(d) for d in dtypes]))
