"""The ROI Manager of real ImageJ 1.x (needs a display: run under xvfb-run -a)."""

import numpy as np
import pytest

from dl4mic.fiji import labels_to_roi_zip
from dl4mic.fiji.boxes import read_boxes_csv

from .test_rois_pure import DL4MIC_CSV, ZEROCOST_TRANSPOSED, ZEROCOST_WIDE


def test_roi_zip_through_the_roi_manager_gives_the_labels_back(ij, rm, labels, tmp_path):
    zipped = labels_to_roi_zip(labels, tmp_path / "cells_rois.zip")
    ij.show_rois(ij.read_rois(zipped), ij.image(labels, "cells.tif"))
    assert rm.getCount() == 6
    assert np.array_equal(ij.rois_to_labels(ij.manager_rois(), labels.shape), labels)
    # ImageJ's own ROI-set file format, saved by the ROI Manager, reads back the same
    saved = tmp_path / "saved.zip"
    assert rm.runCommand("Save", str(saved))
    assert np.array_equal(ij.rois_to_labels(ij.read_rois(saved), labels.shape), labels)


@pytest.mark.parametrize("text,expected", [
    (DL4MIC_CSV, [("cell:0.91", 10, 12, 20, 28, 1), ("mitosis:0.50", 3.5, 4, 4.5, 5, 3)]),
    (ZEROCOST_WIDE, [("0:0.91", 10, 12, 20, 28, 1), ("1:0.40", 50, 60, 20, 20, 1), ("1:0.70", 1, 2, 2, 2, 1)]),
    (ZEROCOST_TRANSPOSED, [("0:0.91", 10, 12, 20, 28, 1), ("1:0.40", 50, 60, 20, 20, 1), ("1:0.70", 1, 2, 2, 2, 1)]),
])
def test_boxes_become_exact_rectangles(ij, rm, tmp_path, text, expected):
    path = tmp_path / "boxes.csv"
    path.write_text(text)
    ij.show_rois(ij.boxes_to_rois(read_boxes_csv(path)), ij.image(np.zeros((3, 100, 100), np.uint8)))
    got = []
    for roi in ij.manager_rois():
        b = roi.getFloatBounds()
        got.append((str(roi.getName()), b.x, b.y, b.width, b.height, int(roi.getPosition())))
        assert str(roi.getTypeAsString()) == "Rectangle"
    assert sorted(got) == sorted(expected)
