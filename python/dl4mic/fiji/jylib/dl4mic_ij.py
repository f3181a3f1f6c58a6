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
# N:Z or N:Z:T (dl4mic's names for 3D labels), with the -2, -3 ... appended to repeated names.
_SLICE_NAME = re.compile(r"^(\d+):(\d+)(?::(\d+))?(?:-\d+)?$")


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


def stack_kind(imp):
    """What the planes of an ImagePlus are, as dl4mic names label axes: YX, ZYX, TYX, TZYX, or STACK
    (several channels: planes are numbered by stack index)."""
    nc, nz, nt = imp.getNChannels(), imp.getNSlices(), imp.getNFrames()
    if imp.getStackSize() == 1:
        return "YX"
    if nc > 1:
        return "STACK"
    if nt == 1:
        return "ZYX"
    return "TYX" if nz == 1 else "TZYX"


def slice_name(value, z, t=None, widths=(0, 0, 0)):
    """N:Z (or N:Z:T), zero-padded to `widths`: the name of one slice of a 3D object, as in dl4mic's ROI zips."""
    name = "%0*d:%0*d" % (widths[0], value, widths[1], z)
    return name if t is None else name + ":%0*d" % (widths[2], t)


def labels_to_rois(imp, boxes_per_plane=None):
    """One ROI per label and plane of a label ImagePlus, named and positioned as dl4mic's ROI zips:
    label-N (2D), N:Z on its slice (Z-stack), label-N-TTTT on its frame (time series), N:Z:T at its
    hyperstack position; 3D objects are listed nucleus by nucleus, slice by slice."""
    stack = imp.getStack()
    n = stack.getSize()
    kind = stack_kind(imp)
    nz, nt = imp.getNSlices(), imp.getNFrames()
    boxes = [boxes_per_plane[p] if boxes_per_plane is not None else label_boxes(stack.getProcessor(p + 1))
             for p in range(n)]
    top = max([max(b) for b in boxes if b] + [0])
    widths = (len(str(top)), len(str(nz)), len(str(nt)))
    found = []
    for plane in range(1, n + 1):
        ip = stack.getProcessor(plane)
        c, z, t = imp.convertIndexToPosition(plane) if kind != "STACK" else (0, 0, 0)
        for value in sorted(boxes[plane - 1]):
            roi = label_roi(ip, value, boxes[plane - 1][value])
            if roi is None:
                continue
            if kind == "YX":
                key, name = (), "label-%d" % value
            elif kind == "ZYX":
                key, name = (value, z), slice_name(value, z, None, widths)
                roi.setPosition(z)
            elif kind == "TZYX":
                key, name = (t, value, z), slice_name(value, z, t, widths)
                roi.setPosition(0, z, t)
            else:  # time series and multi-channel stacks: plane by plane, as before
                key, name = (plane,), "label-%d-%04d" % (value, plane)
                roi.setPosition(plane)
            roi.setName(name)
            found.append((key, len(found), roi))
    found.sort(key=lambda f: (f[0], f[1]))
    return [roi for _, _, roi in found]


# --- ROIs -> label image / training mask ---

def parse_name(name):
    """(label, slice, frame) from a ROI name (slice and frame 1-based or None), or None."""
    text = "%s" % (name or "")
    match = _SLICE_NAME.match(text)
    if match:
        return int(match.group(1)), int(match.group(2)), int(match.group(3)) if match.group(3) else None
    match = _LABEL_NAME.match(text)
    return (int(match.group(1)), None, None) if match else None


def label_from_name(name):
    parsed = parse_name(name)
    return parsed[0] if parsed else None


def _hyperstack_position(roi):
    """(c, z, t) when the ROI is tied to a hyperstack position, else None."""
    if hasattr(roi, "hasHyperStackPosition"):
        hyper = roi.hasHyperStackPosition()
    else:  # older ImageJ: hyperstack ROIs have no plain position
        hyper = roi.getPosition() == 0
    c, z, t = roi.getCPosition(), roi.getZPosition(), roi.getTPosition()
    return (c, z, t) if hyper and (c > 0 or z > 0 or t > 0) else None


def roi_position(roi, channels=1, slices=1, frames=1):
    """1-based (channel, slice, frame) of a ROI on an image with these dimensions: its hyperstack position,
    else its plain stack position (ImageJ's channel-slice-frame order), else its N:Z[:T] name; 1 where unset."""
    czt = _hyperstack_position(roi)
    if czt is not None:
        c, z, t = czt
        if frames == 1 and z == 0 and t > 0:  # a frame position on a plain stack: its plane
            z, t = t, 0
        elif slices == 1 and t == 0 and z > 0:
            z, t = 0, z
        return max(c, 1), max(z, 1), max(t, 1)
    p = roi.getPosition()
    if p > 0:
        p -= 1
        return p % channels + 1, (p // channels) % slices + 1, p // (channels * slices) + 1
    parsed = parse_name(roi.getName())
    if parsed and parsed[1]:
        return 1, parsed[1], parsed[2] or 1
    return 1, 1, 1


def roi_plane(roi):
    """1-based stack slice of a ROI (plain position, else hyperstack t or z, else its N:Z name); 1 when unset."""
    for pos in (roi.getPosition(), roi.getTPosition(), roi.getZPosition()):
        if pos > 0:
            return pos
    parsed = parse_name(roi.getName())
    return parsed[1] if parsed and parsed[1] else 1


def stack_index(roi, imp):
    """The 1-based stack index of `imp` that a ROI belongs to."""
    c, z, t = roi_position(roi, imp.getNChannels(), imp.getNSlices(), imp.getNFrames())
    return imp.getStackIndex(c, z, t)


def _paint(rois, width, height, planes, new_processor, values, frames=1, channels=1):
    stack = ImageStack(width, height)
    for _ in range(planes * frames):
        stack.addSlice(new_processor(width, height))
    for roi, value in zip(rois, values):
        index = 1
        if planes * frames > 1:
            _, z, t = roi_position(roi, channels, planes, frames)
            if z > planes or t > frames:
                raise BridgeError("ROI %s sits on slice %d, frame %d but the image has %d slices and %d frames; "
                                  "draw it on the right image." % (roi.getName(), z, t, planes, frames))
            index = (t - 1) * planes + z
        if roi.isArea():
            ip = stack.getProcessor(index)
            ip.setValue(value)
            ip.fill(roi)
    imp = ImagePlus("labels", stack)
    if frames > 1:
        imp.setDimensions(1, planes, frames)
        imp.setOpenAsHyperStack(planes > 1)
    return imp


def rois_to_labels(rois, width, height, planes=1, frames=1, channels=1):
    """16-bit label ImagePlus (`planes` slices x `frames` frames) painted from ROIs; label-N and N:Z[:T]
    names keep their values, others get the next free ones. `channels` is that of the image the ROIs were
    drawn on (its channels share one label plane)."""
    named = [label_from_name(roi.getName()) for roi in rois]
    next_free = max([v for v in named if v] + [0]) + 1
    values = []
    for value in named:
        if not value:
            value, next_free = next_free, next_free + 1
        values.append(value)
    out = _paint(rois, width, height, planes, ShortProcessor, values, frames, channels)
    out.setTitle("labels")
    return out


def rois_to_mask(rois, width, height, planes=1, frames=1, channels=1):
    """8-bit binary mask (0/255) ImagePlus from area ROIs: the U-Net training target."""
    out = _paint(rois, width, height, planes, ByteProcessor, [255] * len(rois), frames, channels)
    out.setTitle("mask")
    return out


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
    out.setCalibration(imp.getCalibration())
    out.setOpenAsHyperStack(imp.isHyperStack())
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


def _keep_position(roi, position, czt):
    if czt is not None:
        roi.setPosition(czt[0], czt[1], czt[2])
    else:
        roi.setPosition(position)


def add_to_manager(rois, imp=None, reset=True):
    """Put ROIs into the ROI Manager (replacing its content unless reset=False) and show them on `imp`.

    Slice and hyperstack positions are kept (addRoi would tie unpositioned ROIs to the current slice
    and may reset them); on a stack 'Show All' shows each ROI on its own slice only.
    """
    rm = roi_manager(reset)
    positioned = False
    for roi in rois:
        position, czt = roi.getPosition(), _hyperstack_position(roi)
        positioned = positioned or position > 0 or czt is not None
        rm.addRoi(roi)
        for kept in (roi, rm.getRoi(rm.getCount() - 1)):
            _keep_position(kept, position, czt)
    if imp is not None and rm.getCount() > 0:
        if positioned and imp.getStackSize() > 1:
            rm.runCommand("Associate", "true")
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
            imp.setSliceWithoutUpdate(stack_index(roi, imp))
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


def save_temp_tiff(imp):
    """The image as a TIFF in a new temporary folder, named after its title (ImageJ's writer keeps the
    calibration and the hyperstack dimensions, so dl4mic reads the same axes and voxel size)."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", image_stem(imp)).strip("._") or "image"
    folder = tempfile.mkdtemp(prefix="dl4mic-open-image-")
    return save_tiff(imp, os.path.join(folder, stem + ".tif"))


def is_output_of(name, stem):
    """Whether a file name is one of dl4mic's outputs for an input named `stem` (stem.tif, stem_*.*)."""
    return name.startswith(stem) and name[len(stem):len(stem) + 1] in ("_", ".")
