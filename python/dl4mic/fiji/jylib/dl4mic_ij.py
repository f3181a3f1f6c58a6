"""ImageJ 1.x operations shared by Fiji's Jython scripts and dl4mic's JVM gateway.

Only `ij.*`/`java.*` classes and the Python 2.7/3 common subset are used, so the
same code runs as Jython inside Fiji and under CPython through JPype (scyjava
or PyImageJ). Import it only after a JVM with ImageJ is running.
"""

import os
import re
import shutil
import tempfile
import zipfile

from ij import IJ, ImagePlus, ImageStack
from ij.gui import Roi
from ij.io import RoiDecoder, RoiEncoder
from ij.measure import Measurements
from ij.plugin.filter import ThresholdToSelection
from ij.process import ByteProcessor, ImageProcessor, ShortProcessor
from java.awt import Rectangle

_LABEL_NAME = re.compile(r"^label[-_ ]?(\d+)", re.IGNORECASE)


class BridgeError(ValueError):
    """A problem the user can fix; the message is one sentence naming the fix."""


def path_of(f):
    """A text path from a java.io.File (what Fiji passes for File parameters), a string, or None."""
    if f is None:
        return None
    return "%s" % (f.getPath() if hasattr(f, "getPath") else f)


# --- labels -> ROIs (exact: threshold each label, selection from the threshold) ---

def label_boxes(ip):
    """{label: (x0, y0, x1, y1)} of the non-zero labels of an ImageProcessor (a pixel loop; Jython's path)."""
    width, height = ip.getWidth(), ip.getHeight()
    boxes = {}
    for y in range(height):
        for x in range(width):
            value = int(ip.getf(x, y))
            if value <= 0:
                continue
            box = boxes.get(value)
            if box is None:
                boxes[value] = [x, y, x + 1, y + 1]
            else:
                if x < box[0]:
                    box[0] = x
                if x >= box[2]:
                    box[2] = x + 1
                if y >= box[3]:
                    box[3] = y + 1
    return boxes


def label_roi(ip, value, box):
    """The selection of pixels equal to `value` inside `box` (ThresholdToSelection keeps holes and parts)."""
    x0, y0, x1, y1 = [int(v) for v in box]
    ip.setRoi(Rectangle(x0, y0, x1 - x0, y1 - y0))
    crop = ip.crop()
    ip.resetRoi()
    crop.setThreshold(value, value, ImageProcessor.NO_LUT_UPDATE)
    roi = ThresholdToSelection().convert(crop)
    if roi is None:
        return None
    bounds = roi.getBounds()
    roi.setLocation(float(bounds.x + x0), float(bounds.y + y0))  # the (double, double) overload: unambiguous in JPype
    return roi


def labels_to_rois(imp, boxes_per_plane=None):
    """One ROI per label and plane of a label ImagePlus, named label-N; stack ROIs carry their slice."""
    stack = imp.getStack()
    n = stack.getSize()
    rois = []
    for plane in range(1, n + 1):
        ip = stack.getProcessor(plane)
        boxes = boxes_per_plane[plane - 1] if boxes_per_plane is not None else label_boxes(ip)
        for value in sorted(boxes):
            roi = label_roi(ip, value, boxes[value])
            if roi is None:
                continue
            roi.setName("label-%d" % value if n == 1 else "label-%d-%04d" % (value, plane))
            if n > 1:
                roi.setPosition(plane)
            rois.append(roi)
    return rois


# --- ROIs -> label image / training mask ---

def label_from_name(name):
    match = _LABEL_NAME.match("%s" % (name or ""))
    return int(match.group(1)) if match else None


def roi_plane(roi):
    """1-based stack slice of a ROI (plain position, else hyperstack t or z); 1 when unset."""
    for pos in (roi.getPosition(), roi.getTPosition(), roi.getZPosition()):
        if pos > 0:
            return pos
    return 1


def _paint(rois, width, height, planes, new_processor, values):
    stack = ImageStack(width, height)
    for _ in range(planes):
        stack.addSlice(new_processor(width, height))
    for roi, value in zip(rois, values):
        plane = roi_plane(roi) if planes > 1 else 1
        if plane > planes:
            raise BridgeError("ROI %s sits on slice %d but the image has %d; draw it on the right image."
                              % (roi.getName(), plane, planes))
        if roi.isArea():
            ip = stack.getProcessor(plane)
            ip.setValue(value)
            ip.fill(roi)
    return stack


def rois_to_labels(rois, width, height, planes=1):
    """16-bit label ImagePlus painted from ROIs; label-N names keep their values, others get the next free ones."""
    named = [label_from_name(roi.getName()) for roi in rois]
    next_free = max([v for v in named if v] + [0]) + 1
    values = []
    for value in named:
        if not value:
            value, next_free = next_free, next_free + 1
        values.append(value)
    return ImagePlus("labels", _paint(rois, width, height, planes, ShortProcessor, values))


def rois_to_mask(rois, width, height, planes=1):
    """8-bit binary mask (0/255) ImagePlus from area ROIs: the U-Net training target."""
    return ImagePlus("mask", _paint(rois, width, height, planes, ByteProcessor, [255] * len(rois)))


# --- ROI sets on disk ---

def read_rois(path):
    """ROIs from an ImageJ .roi or ROI-set .zip (no ROI Manager window needed)."""
    path = path_of(path)
    if not os.path.isfile(path):
        raise BridgeError("The ROI file %s does not exist; give a .zip or .roi saved by the ROI Manager." % path)
    if not path.lower().endswith(".zip"):
        return [RoiDecoder.open(path)]
    rois = []
    tmpdir = tempfile.mkdtemp(prefix="dl4mic-rois-")
    try:
        archive = zipfile.ZipFile(path)
        try:
            for i, name in enumerate(archive.namelist()):
                if not name.lower().endswith(".roi"):
                    continue
                tmp = os.path.join(tmpdir, "%06d.roi" % i)
                handle = open(tmp, "wb")
                handle.write(archive.read(name))
                handle.close()
                roi = RoiDecoder.open(tmp)
                if roi is not None:
                    if not roi.getName():
                        roi.setName(name[:-4])
                    rois.append(roi)
        finally:
            archive.close()
    finally:
        shutil.rmtree(tmpdir, True)
    return rois


def write_rois(rois, path):
    """An ROI-set zip (entries named after the ROIs, made unique), written to a temp file then renamed."""
    path = path_of(path)
    tmpdir = tempfile.mkdtemp(prefix="dl4mic-rois-")
    part = path + ".part"
    try:
        archive = zipfile.ZipFile(part, "w")
        seen = {}
        for i, roi in enumerate(rois):
            name = "%s" % (roi.getName() or ("roi-%04d" % (i + 1)))
            seen[name] = seen.get(name, 0) + 1
            entry = name if seen[name] == 1 else "%s-%d" % (name, seen[name])
            tmp = os.path.join(tmpdir, "%06d.roi" % i)
            RoiEncoder.save(roi, tmp)
            archive.write(tmp, entry + ".roi")
        archive.close()
        _replace(part, path)
    finally:
        shutil.rmtree(tmpdir, True)
        if os.path.exists(part):
            os.remove(part)
    return path


def _replace(src, dst):
    if os.path.exists(dst):
        os.remove(dst)  # os.rename does not replace on Windows
    os.rename(src, dst)


def save_tiff(imp, path, overwrite=False):
    """Save an ImagePlus as TIFF via a temp file; refuses to overwrite unless asked."""
    path = path_of(path)
    if os.path.exists(path) and not overwrite:
        raise BridgeError("%s already exists; tick 'overwrite' or choose another folder." % path)
    folder = os.path.dirname(path)
    if folder and not os.path.isdir(folder):
        os.makedirs(folder)
    part = path + ".part.tif"
    out = imp.createImagePlus()  # saving renames the ImagePlus: keep the user's image untouched
    out.setStack(imp.getStack(), imp.getNChannels(), imp.getNSlices(), imp.getNFrames())
    if not IJ.saveAsTiff(out, part):
        raise BridgeError("%s could not be written; check that the folder is writable." % path)
    _replace(part, path)
    return path


# --- boxes -> rectangles ---

def boxes_to_rois(boxes):
    """Rectangle ROIs named 'class:confidence' at each box's stack position (frame is 0-based)."""
    rois = []
    for box in boxes:
        x, y = float(box["xmin"]), float(box["ymin"])
        roi = Roi(x, y, float(box["xmax"]) - x, float(box["ymax"]) - y)
        roi.setName("%s:%.2f" % (box["class"], float(box["confidence"])))
        roi.setPosition(int(box.get("frame", 0)) + 1)
        rois.append(roi)
    return rois


# --- the ROI Manager ---

def roi_manager(reset=False):
    """The ROI Manager (created and shown if needed; it needs a display)."""
    from ij.plugin.frame import RoiManager
    rm = RoiManager.getInstance()
    if rm is None:
        rm = RoiManager()
    if reset:
        rm.reset()
    return rm


def add_to_manager(rois, imp=None, reset=True):
    """Put ROIs into the ROI Manager (replacing its content unless reset=False) and show them on `imp`."""
    rm = roi_manager(reset)
    for roi in rois:
        position = roi.getPosition()
        rm.addRoi(roi)
        roi.setPosition(position)  # addRoi may tie the ROI to the current slice
    if imp is not None and rm.getCount() > 0:
        rm.runCommand(imp, "Show All")
    return rm


def manager_rois():
    """The ROIs now in the ROI Manager (empty when it is not open)."""
    from ij.plugin.frame import RoiManager
    rm = RoiManager.getInstance()
    return list(rm.getRoisAsArray()) if rm is not None else []


# --- measurements ---

def measure(imp, rois):
    """Pixel count, centroid (pixel centres at +0.5), bounding box and mean of each ROI on `imp`."""
    rows = []
    options = Measurements.AREA | Measurements.MEAN | Measurements.CENTROID
    for roi in rois:
        if imp.getStackSize() > 1:
            imp.setSliceWithoutUpdate(roi_plane(roi))
        imp.setRoi(roi, False)
        stats = imp.getStatistics(options)
        bounds = roi.getBounds()
        rows.append({"name": "%s" % roi.getName(), "area": int(stats.pixelCount), "mean": float(stats.mean),
                     "x": float(stats.xCentroid), "y": float(stats.yCentroid),
                     "bx": int(bounds.x), "by": int(bounds.y), "width": int(bounds.width),
                     "height": int(bounds.height), "slice": roi_plane(roi)})
    imp.deleteRoi()
    return rows


def image_stem(imp):
    """File-name stem of an ImagePlus (its title without extension), the root of output names."""
    title = "%s" % imp.getTitle()
    return title.rsplit(".", 1)[0] if "." in title else title
