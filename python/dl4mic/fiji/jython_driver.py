# -*- coding: utf-8 -*-
"""Jython 2.7 side of `dl4mic.fiji.jython`: runs menu scripts against ImageJ 1.x as Fiji's script engine does.

Not imported by CPython. `java ... org.python.util.jython jython_driver.py REQUEST.json`
reads {"lib": folder of the jylib modules, "steps": [...], "state": path} and runs the steps
in order in this one JVM, so ImageJ's windows and ROI Manager carry from step to step:

- {"open": path}: IJ.openImage(path).show(), as File > Open;
- {"script": path, "values": {name: {"kind", "value"}}, "macro": options}: the script with its
  #@ parameters as globals, typed as Fiji types them (java.io.File, the current ImagePlus);
  `macro` answers its GenericDialogs as a macro recorder's options would;
- {"code": source}: Python run with IJ, WindowManager, RoiManager, dl4mic_ij and `record`
  (a dict written to the state) in scope: what a user does by hand between scripts.

The state written at the end says what a user would see: the open images (dimensions,
calibration), the ROI Manager's ROIs (name, type, bounds, Z/T positions), the steps done,
and the first error with its traceback.
"""

import json
import sys
import traceback

from java.io import File
from java.lang import System, Thread, Throwable


def typed(value):
    """A parameter value as Fiji passes it to a Jython script."""
    from ij import WindowManager
    kind, raw = value["kind"], value.get("value")
    if kind == "file":
        return None if raw is None else File(raw)
    if kind == "image":
        return WindowManager.getImage(raw) if raw else WindowManager.getCurrentImage()
    return raw


def run_script(step):
    from ij import Macro
    namespace = {"__name__": "__main__", "__file__": step["script"]}
    for name, value in step.get("values", {}).items():
        namespace[str(name)] = typed(value)
    thread = Thread.currentThread()
    old = thread.getName()
    if step.get("macro"):
        thread.setName("Run$_dl4mic")  # ImageJ reads Macro options only on such threads
        Macro.setOptions(thread, step["macro"] + " ")
    try:
        execfile(step["script"], namespace)
    finally:
        if step.get("macro"):
            Macro.setOptions(thread, None)
            thread.setName(old)


def run_code(step, record):
    from ij import IJ, WindowManager
    from ij.plugin.frame import RoiManager
    import dl4mic_ij
    scope = {"IJ": IJ, "WindowManager": WindowManager, "RoiManager": RoiManager, "dl4mic_ij": dl4mic_ij,
             "record": record}
    exec(step["code"], scope)


def open_image(step):
    from ij import IJ
    imp = IJ.openImage(step["open"])
    if imp is None:
        raise IOError("ImageJ cannot open %s" % step["open"])
    imp.show()


def image_state(imp):
    cal = imp.getCalibration()
    return {"title": u"%s" % imp.getTitle(), "width": imp.getWidth(), "height": imp.getHeight(),
            "channels": imp.getNChannels(), "slices": imp.getNSlices(), "frames": imp.getNFrames(),
            "bit_depth": imp.getBitDepth(), "hyperstack": bool(imp.isHyperStack()),
            "calibration": {"pixel_width": cal.pixelWidth, "pixel_height": cal.pixelHeight,
                            "pixel_depth": cal.pixelDepth, "unit": u"%s" % cal.getUnit(),
                            "frame_interval": cal.frameInterval, "time_unit": u"%s" % cal.getTimeUnit()}}


def roi_state(roi):
    bounds = roi.getBounds()
    return {"name": u"%s" % roi.getName(), "type": u"%s" % roi.getTypeAsString(),
            "bounds": [bounds.x, bounds.y, bounds.width, bounds.height], "position": roi.getPosition(),
            "c": roi.getCPosition(), "z": roi.getZPosition(), "t": roi.getTPosition(),
            "area": len(roi.getContainedPoints())}


def state(done, record, error):
    from ij import WindowManager
    from ij.plugin.frame import RoiManager
    images = [WindowManager.getImage(i) for i in (WindowManager.getIDList() or [])]
    current = WindowManager.getCurrentImage()
    rm = RoiManager.getInstance()
    return {"images": [image_state(imp) for imp in images if imp is not None],
            "current": None if current is None else u"%s" % current.getTitle(),
            "rois": [roi_state(r) for r in (rm.getRoisAsArray() if rm is not None else [])],
            "steps_done": done, "record": record, "error": error}


def main(path):
    handle = open(path)
    request = json.load(handle)
    handle.close()
    sys.path.insert(0, request["lib"])
    done, record, error = 0, {}, None
    for step in request["steps"]:
        try:
            if "open" in step:
                open_image(step)
            elif "script" in step:
                run_script(step)
            else:
                run_code(step, record)
        except (Exception, Throwable) as exc:
            error = {"step": done, "message": u"%s" % exc, "traceback": traceback.format_exc()}
            break
        done += 1
    handle = open(request["state"], "w")
    json.dump(state(done, record, error), handle)
    handle.close()


if __name__ == "__main__":
    try:
        main(sys.argv[1])
    finally:
        sys.stdout.flush()
        System.exit(0)  # ImageJ's AWT threads would keep the JVM alive
