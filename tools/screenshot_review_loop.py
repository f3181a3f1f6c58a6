"""Screenshots of the review -> fix -> retrain loop for docs/fiji.md, from real ImageJ windows.

The menu scripts run in Jython 2.7 with ImageJ 1.x (as in Fiji) under a virtual display:

    xvfb-run -a -s "-screen 0 1280x800x24" python tools/screenshot_review_loop.py [docs/images]

It trains the small StarDist 2D of the review-loop test on the DSB 2018 nuclei (shared data;
about 40 s on 2 cores), predicts a test image with Plugins > dl4mic > Predict, deletes the
two ROIs that match the ground truth worst and draws the largest missed nucleus in the ROI
Manager (the review-loop test's choices), and saves the result with ROI Manager to training
masks. It writes review_1_predicted.png, review_2_fixed.png and review_3_masks.png.
"""

import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "fiji"))
sys.path.insert(0, str(REPO / "tests"))

from dl4mic.cli import main as dl4mic  # noqa: E402
from dl4mic.fiji.jython import JythonFiji, code_step, open_step, review_edit_step  # noqa: E402

DSB = REPO.parent / "shared" / "data" / "dsb2018_stage1test_nuclei_gray"

# ImageJ's main window at the top, the image (zoomed 2x) below it, the ROI Manager to its right.
ARRANGE = '''
from ij import ImageJ
app = IJ.getInstance() or ImageJ()
app.setLocation(0, 0)
imp = WindowManager.getImage(%(title)r)
for i in WindowManager.getIDList():
    other = WindowManager.getImage(i)
    if other.getTitle() != imp.getTitle():
        other.getWindow().setLocation(2000, 0)  # off the screenshot, still open
if imp.getCanvas().getMagnification() < 2:
    IJ.run(imp, "Set... ", "zoom=200")
log = WindowManager.getWindow("Log")
if log is not None:
    log.setLocation(2000, 0)
win = imp.getWindow()
win.setLocation(0, app.getHeight() + 5)
WindowManager.setCurrentWindow(win)
rm = RoiManager.getInstance()
rm.setBounds(win.getWidth() + 10, app.getHeight() + 5, 240, win.getHeight())
rm.runCommand(imp, "Show All without labels")
IJ.showStatus(%(status)r)
'''

SHOT = '''
import time
from java.awt import Rectangle, Robot
from java.io import File
from javax.imageio import ImageIO
time.sleep(2)  # let the windows paint
win, rm, app = WindowManager.getImage(%(title)r).getWindow(), RoiManager.getInstance(), IJ.getInstance()
right = max(rm.getX() + rm.getWidth(), app.getWidth())
bottom = max(win.getY() + win.getHeight(), rm.getY() + rm.getHeight())
ImageIO.write(Robot().createScreenCapture(Rectangle(0, 0, right, bottom)), "png", File(%(path)r))
'''

SELECT_DRAWN = '''
rm = RoiManager.getInstance()
rm.select(WindowManager.getImage(%(title)r), rm.getCount() - 1)
'''

# the saved labels with a random colour per label (ImageJ 1.x has no glasbey LUT built in)
SHOW_MASK = '''
import random
import jarray
from ij.process import LUT
mask = IJ.openImage(%(path)r)
mask.setTitle("corrected labels: " + mask.getTitle())
random.seed(7)
channels = [[0] + [random.randint(70, 255) for _ in range(255)] for _ in range(3)]
signed = [jarray.array([v - 256 if v > 127 else v for v in c], "b") for c in channels]
mask.getProcessor().setLut(LUT(signed[0], signed[1], signed[2]))
mask.setDisplayRange(0, 255)
mask.show()
'''


def main(out="docs/images"):
    import tifffile
    from test_review_loop_jython import FIRST_MODEL, params, review_choices

    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    image = sorted((DSB / "test" / "images").iterdir())[0]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model, predictions, masks, sources = tmp / "first", tmp / "predictions", tmp / "masks", tmp / "images"
        for folder in (predictions, masks, sources):
            folder.mkdir()
        assert dl4mic(["train", "stardist2d", "--source", str(DSB / "train" / "images"), "--target",
                       str(DSB / "train" / "masks"), "--model", str(model), "--progress", "none",
                       *params(FIRST_MODEL)]) == 0
        preview = tmp / "preview"
        assert dl4mic(["predict", str(model), "--input", str(image), "--output", str(preview),
                       "--progress", "none"]) == 0
        delete, polygon, _ = review_choices(tifffile.imread(preview / f"{image.stem}_labels.tif"),
                                            tifffile.imread(DSB / "test" / "masks" / image.name))
        fiji = JythonFiji(tmp)
        title, mask_title = image.name, "corrected labels: " + image.name
        shot = {name: str(out / f"review_{name}.png") for name in ("1_predicted", "2_fixed", "3_masks")}
        session = fiji.run([
            open_step(image),
            fiji.script("Predict.py", {"model": model, "output": predictions, "rois": True}),
            code_step(ARRANGE % {"title": title, "status": "dl4mic: predicted ROIs in the ROI Manager"}),
            code_step(SHOT % {"title": title, "path": shot["1_predicted"]}),
            review_edit_step(delete, polygon),
            code_step(SELECT_DRAWN % {"title": title}),
            code_step(ARRANGE % {"title": title, "status": "two ROIs deleted, one drawn"}),
            code_step(SHOT % {"title": title, "path": shot["2_fixed"]}),
            fiji.script("ROI_Manager_to_training_masks.py", {"image": title, "target_dir": masks,
                                                              "kind": "label image (instances)",
                                                              "source_dir": sources}),
            code_step(SHOW_MASK % {"path": str(masks / image.name)}),
            code_step(ARRANGE % {"title": mask_title, "status": "dl4mic: ROIs saved as training labels"}),
            code_step(SHOT % {"title": mask_title, "path": shot["3_masks"]}),
        ], timeout=600)
        shutil.rmtree(predictions)
    for path in shot.values():
        print(path)
    print(f"{len(session.rois)} ROIs after the review")


if __name__ == "__main__":
    main(*sys.argv[1:])
