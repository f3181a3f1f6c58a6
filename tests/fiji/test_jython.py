"""The menu scripts in real Jython 2.7 with ImageJ 1.x, as Fiji runs them, calling the real `dl4mic` CLI."""

import json

import numpy as np
import pytest
import tifffile

from dl4mic.fiji import labels_to_roi_zip
from dl4mic.fiji.jython import JythonError, code_step, open_step

from .test_rois_pure import ZEROCOST_WIDE


def rect(roi):
    return (roi["name"], *roi["bounds"])


def test_jython_labels_and_roi_zip_scripts_round_trip(jython, labels, tmp_path):
    image = tmp_path / "cells_labels.tif"
    tifffile.imwrite(image, labels)
    zip_path = labels_to_roi_zip(labels, tmp_path / "cells_rois.zip")
    masks = tmp_path / "masks"
    masks.mkdir()
    session = jython.run([
        open_step(image),
        jython.script("Labels_to_ROI_Manager.py", {"replace": True}),
        code_step("record['from_labels'] = [(r.getName(), len(r.getContainedPoints())) "
                  "for r in RoiManager.getInstance().getRoisAsArray()]"),
        jython.script("ROI_zip_to_ROI_Manager.py", {"roi_file": zip_path, "replace": True}),
        jython.script("ROI_Manager_to_training_masks.py", {"target_dir": masks, "kind": "label image (instances)"}),
    ])
    # one ROI per object, holes and parts kept: the pixel count of each label, by both scripts
    expected = [[f"label-{v}", int((labels == v).sum())] for v in np.unique(labels)[1:]]
    assert session.record["from_labels"] == expected
    assert [[r["name"], r["area"]] for r in session.rois] == expected
    assert session.current == "cells_labels.tif"
    written = tifffile.imread(masks / "cells_labels.tif")
    assert np.array_equal(written, labels)  # the ROI names carry the label values


def test_jython_boxes_csv_becomes_rectangles(jython, tmp_path):
    csv = tmp_path / "predicted_bounding_boxes.csv"
    csv.write_text(ZEROCOST_WIDE)
    tifffile.imwrite(tmp_path / "img_1.tif", np.zeros((100, 100), np.uint8))
    session = jython.run([open_step(tmp_path / "img_1.tif"),
                          jython.script("Boxes_CSV_to_ROI_Manager.py", {"csv_file": csv})])
    assert sorted(rect(r) for r in session.rois) == [("0:0.91", 10, 12, 20, 28), ("1:0.40", 50, 60, 20, 20)]
    assert {r["type"] for r in session.rois} == {"Rectangle"}


def test_jython_reports_a_missing_parameter_before_starting(jython, tmp_path):
    from dl4mic.errors import UserError

    with pytest.raises(UserError, match="needs a value for model"):
        jython.script("QC.py", {"source": tmp_path, "target": tmp_path})
    with pytest.raises(JythonError, match="NameError"):
        jython.run([code_step("undefined_name")])
