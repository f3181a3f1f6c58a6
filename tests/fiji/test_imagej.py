"""Labels <-> ROIs against real ImageJ 1.x (Debian's ij.jar through scyjava); no display needed."""

import numpy as np
import pytest
from skimage.measure import regionprops

from dl4mic.fiji import labels_to_roi_zip, roi_zip_to_labels


def test_labels_to_rois_match_regionprops(ij, labels):
    rois = ij.labels_to_rois(labels)
    props = regionprops(labels.astype(np.int64))
    assert [str(r.getName()) for r in rois] == [f"label-{p.label}" for p in props]
    assert {str(r.getTypeAsString()) for r in rois[:1]} == {"Composite"}  # the ring with a second part
    for row, p in zip(ij.measure(labels, rois), props):
        assert row["area"] == p.area
        assert (row["by"], row["bx"], row["by"] + row["height"], row["bx"] + row["width"]) == p.bbox
        # ImageJ puts pixel centres at +0.5
        assert row["y"] - 0.5 == pytest.approx(p.centroid[0]) and row["x"] - 0.5 == pytest.approx(p.centroid[1])


def test_imagej_rois_paint_back_the_labels(ij, labels):
    assert np.array_equal(ij.rois_to_labels(ij.labels_to_rois(labels), labels.shape), labels)
    assert np.array_equal(ij.rois_to_mask(ij.labels_to_rois(labels), labels.shape), np.where(labels > 0, 255, 0))


def test_python_zip_opens_exactly_in_imagej(ij, labels, tmp_path):
    rois = ij.read_rois(labels_to_roi_zip(labels, tmp_path / "a_rois.zip"))
    assert np.array_equal(ij.rois_to_labels(rois, labels.shape), labels)


def test_imagej_zip_reads_exactly_in_python(ij, labels, tmp_path):
    path = ij.write_rois(ij.labels_to_rois(labels), tmp_path / "ij_rois.zip")
    assert np.array_equal(roi_zip_to_labels(path, labels.shape), labels)


def test_stacks_keep_slice_positions(ij, labels, tmp_path):
    stack = np.stack([labels, np.flip(labels, 1)])
    rois = ij.labels_to_rois(stack)
    assert sorted({int(r.getPosition()) for r in rois}) == [1, 2]
    assert np.array_equal(ij.rois_to_labels(rois, stack.shape), stack)
    zipped = ij.read_rois(labels_to_roi_zip(stack, tmp_path / "s_rois.zip"))
    assert np.array_equal(ij.rois_to_labels(zipped, stack.shape), stack)


def test_the_scripts_pixel_loop_finds_the_same_objects(ij, labels):
    """Fiji's scripts find label boxes with a pixel loop (no numpy); it must agree with scipy."""
    import dl4mic_ij

    imp = ij.image(labels)
    assert [str(r.getName()) for r in dl4mic_ij.labels_to_rois(imp)] == [str(r.getName())
                                                                           for r in ij.labels_to_rois(labels)]


def _dl4mic(*args, env):
    import os
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "dl4mic", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=300)


def test_pyimagej_mode_starts_the_local_fiji_named_by_dl4mic_fiji():
    """With DL4MIC_FIJI=/path/to/Fiji.app the bridge is PyImageJ's `imagej.init(path)` (ImageJ2 + Fiji's
    ImageJ 1.x); no Fiji can be downloaded on a machine without internet, so this runs only where one is."""
    import os
    import subprocess
    import sys

    fiji = os.environ.get("DL4MIC_FIJI")
    if not fiji:
        pytest.skip("DL4MIC_FIJI is not set: no local Fiji.app to start with PyImageJ (none can be downloaded here)")
    pytest.importorskip("imagej", reason="PyImageJ is not installed (pip install pyimagej)")
    code = ("from dl4mic.fiji.gateway import connect; ij = connect(headless=True); "
            "print(ij.ij2 is not None, ij.ij2.getApp().getInfo(True))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("True")


def test_a_missing_local_fiji_is_one_sentence_naming_it(tmp_path):
    image = tmp_path / "a.tif"
    import tifffile

    tifffile.imwrite(image, np.zeros((8, 8), np.uint8))
    done = _dl4mic("fiji", "show", image, env={"DL4MIC_FIJI": str(tmp_path / "Fiji.app")})
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: The Fiji folder {tmp_path / 'Fiji.app'} does not exist; give the path of Fiji.app."
