"""Screenshot for the README: ImageJ 1.x with an image and dl4mic's ROIs in the ROI Manager.

Run under a virtual display (the CI and `make` do the same):

    xvfb-run -a -s "-screen 0 1100x700x24" python tools/screenshot_imagej.py [docs/images/imagej_rois.png]

The objects are segmented with a plain threshold (the screenshot shows the bridge,
not a model); they go through `labels_to_roi_zip`, exactly as `dl4mic predict --rois`
writes them, and are opened in the ROI Manager with the Labels to ROI zip path.
"""

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage import data, filters, measure, morphology, segmentation

from dl4mic.fiji import connect, labels_to_roi_zip


NUCLEI = Path(__file__).resolve().parents[2] / "shared" / "data" / "stardist_pypi_sample_nuclei" / "test"


def sample_labels():
    """Real fluorescence nuclei with their label image (shared data) when present, else coins."""
    if NUCLEI.is_dir():
        import tifffile

        image = tifffile.imread(sorted((NUCLEI / "images").glob("*.tif"))[0])
        labels = tifffile.imread(sorted((NUCLEI / "masks").glob("*.tif"))[0])
        lo, hi = np.percentile(image, [1, 97])
        image = (255 * np.clip((image - lo) / max(1.0, hi - lo), 0, 1)).astype(np.uint8)
        return image[:320, :384], segmentation.relabel_sequential(labels[:320, :384])[0].astype(np.uint16), "nuclei"
    return coins_labels() + ("coins",)


def coins_labels():
    """Coins (bundled with scikit-image): Otsu threshold, hole filling, watershed; border and tiny objects dropped."""
    image = data.coins()
    mask = ndimage.binary_fill_holes(image > filters.threshold_otsu(image))
    distance = ndimage.distance_transform_edt(mask)
    peaks = measure.label(morphology.h_maxima(distance, 3))
    labels = segmentation.clear_border(segmentation.watershed(-distance, peaks, mask=mask))
    labels[np.isin(labels, np.flatnonzero(np.bincount(labels.ravel()) < 200))] = 0
    return image, segmentation.relabel_sequential(labels)[0].astype(np.uint16)


def main(out="docs/images/imagej_rois.png"):
    ij = connect(headless=False)
    from ij import IJ, ImageJ
    from java.awt import Rectangle, Robot
    from java.io import File
    from javax.imageio import ImageIO

    app = ImageJ()
    app.setLocation(0, 0)
    image, labels, name = sample_labels()
    with tempfile.TemporaryDirectory() as tmp:
        rois = ij.read_rois(labels_to_roi_zip(labels, Path(tmp) / f"{name}_rois.zip"))
    imp = ij.image(image, f"{name}.tif")
    rm = ij.show_rois(rois, imp)
    IJ.run("Labels...", "color=yellow font=10 show use draw")
    imp.getWindow().setLocation(0, app.getHeight() + 5)
    rm.setBounds(imp.getWindow().getWidth() + 10, app.getHeight() + 5, 230, imp.getWindow().getHeight())
    rm.select(len(rois) // 2)
    IJ.showStatus("dl4mic: %d ROIs from %s_rois.zip" % (len(rois), name))
    time.sleep(2)  # let the windows paint
    right = max(rm.getX() + rm.getWidth(), app.getWidth())
    bottom = max(imp.getWindow().getY() + imp.getWindow().getHeight(), rm.getY() + rm.getHeight())
    shot = Robot().createScreenCapture(Rectangle(0, 0, right, bottom))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    ImageIO.write(shot, "png", File(str(out)))
    print(f"{out}: {len(rois)} ROIs")
    from java.lang import System

    System.exit(0)


if __name__ == "__main__":
    main(*sys.argv[1:])
