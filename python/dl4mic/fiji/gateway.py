"""A gateway to ImageJ from Python: PyImageJ with a local Fiji, else ImageJ 1.x (ij.jar) through scyjava.

Both run the same ImageJ code as Fiji's menu scripts (`jylib/dl4mic_ij.py`), so
what the tests prove against ImageJ 1.x holds for the scripts in Fiji.
One JVM per process: `connect()` starts it once and returns the same gateway after.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from ..errors import UserError
from .jylib import ensure_importable

IJ_JAR_CANDIDATES = ("/usr/share/java/ij.jar", "/usr/share/imagej/ij.jar")
_GATEWAY = None


def find_ij_jar(ij_jar: str | Path | None = None) -> Path:
    """ij.jar from the argument, $DL4MIC_IJ_JAR, the conda env or Debian's `imagej` package."""
    candidates = [ij_jar, os.environ.get("DL4MIC_IJ_JAR")]
    prefix = os.environ.get("CONDA_PREFIX")
    if prefix:
        candidates.append(Path(prefix) / "share" / "java" / "ij.jar")
    candidates += IJ_JAR_CANDIDATES
    for c in candidates:
        if c and Path(c).is_file():
            return Path(c)
    raise UserError("ImageJ 1.x (ij.jar) was not found; install it (Debian/Ubuntu: `apt-get install imagej`), "
                    "set DL4MIC_IJ_JAR=/path/to/ij.jar, or give a Fiji installation with --fiji PATH/Fiji.app.")


def connect(fiji: str | Path | None = None, ij_jar: str | Path | None = None, headless: bool | None = None):
    """The process-wide ImageJ gateway, starting the JVM on first use: PyImageJ's `imagej.init(fiji)` with a
    local Fiji (`fiji`, else $DL4MIC_FIJI), else ImageJ 1.x from ij.jar."""
    global _GATEWAY
    if _GATEWAY is not None:
        return _GATEWAY
    fiji = fiji or os.environ.get("DL4MIC_FIJI") or None
    if headless is None:
        headless = sys.platform.startswith("linux") and not os.environ.get("DISPLAY")
    ij2 = _start_pyimagej(fiji, headless) if fiji else _start_scyjava(find_ij_jar(ij_jar), headless)
    ensure_importable()
    import dl4mic_ij  # noqa: E402  (needs the JVM)

    _GATEWAY = ImageJ(dl4mic_ij, ij2)
    return _GATEWAY


def _start_scyjava(jar: Path, headless: bool):
    import scyjava

    if not scyjava.jvm_started():
        scyjava.config.set_java_constraints(fetch="never")
        scyjava.config.add_classpath(str(jar))
        if headless:
            scyjava.config.add_option("-Djava.awt.headless=true")
        scyjava.start_jvm()
    import jpype.imports  # noqa: F401  (makes `from ij import IJ` work)

    return None


def _start_pyimagej(fiji: str | Path, headless: bool):
    fiji = Path(fiji)
    if not fiji.is_dir():
        raise UserError(f"The Fiji folder {fiji} does not exist; give the path of Fiji.app.")
    try:
        import imagej
    except ImportError:
        raise UserError("PyImageJ is needed to drive a local Fiji; install it (`pip install pyimagej`) "
                        "or leave out --fiji to use ImageJ 1.x.") from None
    ij2 = imagej.init(str(fiji), mode="headless" if headless else "interactive")
    import jpype.imports  # noqa: F401

    return ij2


class ImageJ:
    """ImageJ operations on numpy arrays and ROIs; `.ij2` is the PyImageJ gateway when Fiji was given."""

    def __init__(self, ops, ij2=None):
        self.ops = ops
        self.ij2 = ij2
        from ij import IJ

        self.IJ = IJ

    # --- pixels across the bridge ---

    def image(self, array: np.ndarray, title: str = "image", axes: str | None = None):
        """An ImagePlus from a 2D array, a 3D (slices, Y, X) stack or a 4D (T, Z, Y, X) hyperstack; integer
        labels become 16-bit or 32-bit. `axes` "TYX" makes a 3D array a time series (frames, not slices)."""
        import jpype
        from ij import ImagePlus, ImageStack
        from ij.process import ByteProcessor, FloatProcessor, ShortProcessor

        array = np.asarray(array)
        if array.ndim not in (2, 3, 4):
            raise UserError(f"An image of shape {array.shape} cannot become an ImagePlus; give a 2D image, a "
                            "stack (Z or T, Y, X) or a hyperstack (T, Z, Y, X).")
        if array.dtype == bool:
            array = array.astype(np.uint8) * 255
        if np.issubdtype(array.dtype, np.integer) and array.dtype not in (np.uint8, np.uint16):
            array = array.astype(np.uint16 if array.min() >= 0 and array.max() <= 65535 else np.float32)
        if not np.issubdtype(array.dtype, np.integer):
            array = array.astype(np.float32)
        planes = array.reshape((-1,) + array.shape[-2:])
        height, width = planes.shape[-2:]
        stack = ImageStack(width, height)
        for plane in planes:
            flat = np.ascontiguousarray(plane).ravel()
            if flat.dtype == np.uint8:
                ip = ByteProcessor(width, height, jpype.JArray(jpype.JByte)(flat.view(np.int8)))
            elif flat.dtype == np.uint16:
                ip = ShortProcessor(width, height, jpype.JArray(jpype.JShort)(flat.view(np.int16)), None)
            else:
                ip = FloatProcessor(width, height, jpype.JArray(jpype.JFloat)(flat))
            stack.addSlice(ip)
        imp = ImagePlus(title, stack)
        if array.ndim == 4:
            imp.setDimensions(1, array.shape[1], array.shape[0])
            imp.setOpenAsHyperStack(True)
        elif array.ndim == 3 and (axes or "").upper() == "TYX":
            imp.setDimensions(1, 1, array.shape[0])
        return imp

    def array(self, imp) -> np.ndarray:
        """Pixels of an ImagePlus as numpy ((Y, X), or (slices, Y, X) for stacks)."""
        stack = imp.getStack()
        planes = []
        for n in range(1, stack.getSize() + 1):
            ip = stack.getProcessor(n)
            data = np.array(ip.getPixels())
            kind = {1: np.uint8, 2: np.uint16}.get(data.dtype.itemsize) if data.dtype.kind == "i" else None
            planes.append((data.view(kind) if kind else data).reshape(ip.getHeight(), ip.getWidth()))
        return planes[0] if len(planes) == 1 else np.stack(planes)

    # --- labels, masks and ROIs ---

    def labels_to_rois(self, labels, axes: str | None = None):
        """Exact ROIs (ThresholdToSelection per label) from a label array or ImagePlus; a 3D array is a
        Z-stack unless `axes` is "TYX", a 4D array a (T, Z, Y, X) hyperstack."""
        from scipy import ndimage

        if isinstance(labels, np.ndarray):
            planes = labels.reshape((-1,) + labels.shape[-2:])
            boxes = []
            for plane in planes.astype(np.int64, copy=False):
                found = ndimage.find_objects(np.where(plane > 0, plane, 0))
                boxes.append({v + 1: (b[1].start, b[0].start, b[1].stop, b[0].stop)
                              for v, b in enumerate(found) if b is not None})
            return list(self.ops.labels_to_rois(self.image(labels, "labels", axes), boxes))
        return list(self.ops.labels_to_rois(labels))

    @staticmethod
    def _dims(shape) -> tuple[int, int]:
        """(slices, frames) of a label shape: (Y, X), (planes, Y, X) or (T, Z, Y, X)."""
        if len(shape) == 4:
            return int(shape[1]), int(shape[0])
        return (int(shape[0]) if len(shape) == 3 else 1), 1

    def rois_to_labels(self, rois, shape) -> np.ndarray:
        slices, frames = self._dims(shape)
        out = self.ops.rois_to_labels(list(rois), int(shape[-1]), int(shape[-2]), slices, frames)
        return self.array(out).reshape(tuple(shape))

    def rois_to_mask(self, rois, shape) -> np.ndarray:
        slices, frames = self._dims(shape)
        out = self.ops.rois_to_mask(list(rois), int(shape[-1]), int(shape[-2]), slices, frames)
        return self.array(out).reshape(tuple(shape))

    def read_rois(self, path):
        return list(self.ops.read_rois(str(path)))

    def write_rois(self, rois, path):
        return Path(str(self.ops.write_rois(list(rois), str(path))))

    def boxes_to_rois(self, boxes):
        return list(self.ops.boxes_to_rois(list(boxes)))

    def measure(self, image, rois) -> list[dict]:
        imp = self.image(image) if isinstance(image, np.ndarray) else image
        return self.ops.measure(imp, list(rois))

    # --- the ROI Manager (needs a display) ---

    def show_rois(self, rois, imp=None, reset=True):
        """Put ROIs into the ROI Manager; with `imp` (ImagePlus or array), show the image with them."""
        if isinstance(imp, np.ndarray):
            imp = self.image(imp)
        if imp is not None:
            imp.show()
        return self.ops.add_to_manager(list(rois), imp, reset)

    def manager_rois(self):
        return list(self.ops.manager_rois())

    def run_script(self, path, **values):
        """Run a SciJava script from fiji-scripts/ here, with its `#@` parameters filled from `values`."""
        from .scripting import run_script

        return run_script(path, values, self)
