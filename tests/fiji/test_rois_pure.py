"""ROI zips, boxes, TrackMate CSV and overlay TIFFs without a JVM (what `dl4mic predict --rois` writes)."""

import csv

import numpy as np
import pytest
import roifile
import tifffile

from dl4mic.errors import UserError
from dl4mic.fiji import (boxes_to_roi_zip, labels_to_roi_zip, objects_from_labels, read_boxes_csv,
                         roi_zip_to_labels, write_boxes_csv, write_tiff_with_overlay, write_trackmate_csv)
from dl4mic.predict.contours import fill_loops, mask_outlines


def test_outlines_fill_back_to_the_exact_pixels():
    rng = np.random.default_rng(1)
    for _ in range(200):
        mask = rng.random(tuple(rng.integers(1, 14, 2))) < rng.random()
        assert np.array_equal(fill_loops(mask_outlines(mask), mask.shape), mask)


def test_labels_roi_zip_round_trip(labels, tmp_path):
    path = labels_to_roi_zip(labels, tmp_path / "a_rois.zip")
    rois = roifile.roiread(path)
    assert [r.name for r in rois] == ["label-5", "label-7", "label-8", "label-9", "label-1000", "label-1001"]
    assert rois[0].composite and rois[3].composite  # ring + second part; diagonal pair
    assert np.array_equal(roi_zip_to_labels(path, labels.shape), labels)


def test_stack_labels_keep_their_planes(labels, tmp_path):
    stack = np.stack([labels, np.roll(labels, 3, axis=1), np.zeros_like(labels)])
    path = labels_to_roi_zip(stack, tmp_path / "s_rois.zip")
    assert {r.position for r in roifile.roiread(path)} == {1, 2}
    assert np.array_equal(roi_zip_to_labels(path, stack.shape), stack)


def test_roi_zip_refuses_other_suffixes_and_foreign_files(labels, tmp_path):
    with pytest.raises(UserError, match=r"\.zip"):
        labels_to_roi_zip(labels, tmp_path / "x.roi.txt")
    bad = tmp_path / "bad.zip"
    bad.write_text("not a zip")
    with pytest.raises(UserError, match="ROI Manager"):
        roi_zip_to_labels(bad, labels.shape)


DL4MIC_CSV = """image,frame,class,confidence,xmin,ymin,xmax,ymax
cells.tif,0,cell,0.91,10,12,30,40
cells.tif,2,mitosis,0.5,3.5,4,8,9
"""
# ZeroCostDL4Mic YOLOv2: one image per row, 6 values per box, rows longer than the header.
ZEROCOST_WIDE = """filename,xmin,ymin,xmax,ymax,confidence,class
img_1.png,10,12,30,40,0.91,0,50,60,70,80,0.4,1
img_2.png,1,2,3,4,0.7,1
"""
# Its transposed predicted_bounding_boxes_for_custom_ROI.csv (pandas to_csv of the transpose).
ZEROCOST_TRANSPOSED = """filename,img_1.png,img_2.png
xmin,10,1.0
ymin,12,2.0
xmax,30,3.0
ymax,40,4.0
confidence,0.91,0.7
class,0,1
xmin.1,50,
ymin.1,60,
xmax.1,70,
ymax.1,80,
confidence.1,0.4,
class.1,1,
"""


@pytest.mark.parametrize("text", [ZEROCOST_WIDE, ZEROCOST_TRANSPOSED])
def test_zerocost_layouts(text, tmp_path):
    path = tmp_path / "predicted_bounding_boxes.csv"
    path.write_text(text)
    boxes = sorted(read_boxes_csv(path), key=lambda b: (b["image"], b["xmin"]))
    assert [(b["image"], b["class"], b["confidence"], b["xmin"], b["ymin"], b["xmax"], b["ymax"]) for b in boxes] == [
        ("img_1.png", "0", 0.91, 10, 12, 30, 40), ("img_1.png", "1", 0.4, 50, 60, 70, 80),
        ("img_2.png", "1", 0.7, 1, 2, 3, 4)]


def test_dl4mic_boxes_round_trip_and_rectangles(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text(DL4MIC_CSV)
    boxes = read_boxes_csv(src)
    out = write_boxes_csv(boxes, tmp_path / "cells_boxes.csv")
    assert read_boxes_csv(out) == boxes
    rois = roifile.roiread(boxes_to_roi_zip(boxes, tmp_path / "cells_rois.zip", image="cells.png"))
    assert [(r.name, r.left, r.top, r.right, r.bottom, r.position) for r in rois] == [
        ("cell:0.91", 10, 12, 30, 40, 1), ("mitosis:0.50", 4, 4, 8, 9, 3)]


def test_boxes_csv_errors_name_the_fix(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(UserError, match="dl4mic predict --rois"):
        read_boxes_csv(path)
    path.write_text("image,xmin,ymin,xmax,ymax\na.tif,1,2,x,4\n")
    with pytest.raises(UserError, match="line 2"):
        read_boxes_csv(path)


def test_trackmate_csv(labels, tmp_path):
    objects = objects_from_labels(np.stack([labels, labels]))
    path = write_trackmate_csv(objects, tmp_path / "a_trackmate.csv")
    rows = list(csv.DictReader(open(path)))
    assert list(rows[0]) == ["ID", "NAME", "X", "Y", "Z", "FRAME", "RADIUS", "QUALITY", "AREA"]
    assert len(rows) == 12 and {r["FRAME"] for r in rows} == {"0", "1"}
    seven = [r for r in rows if r["NAME"] == "label-7"][0]
    assert (float(seven["X"]), float(seven["Y"]), int(seven["AREA"])) == (6.5, 25.5, 72)


def test_tiff_with_overlay(labels, tmp_path):
    path = write_tiff_with_overlay(tmp_path / "a.tif", labels.astype(np.float32), labels=labels)
    with tifffile.TiffFile(path) as tif:
        overlays = tif.imagej_metadata["Overlays"]
    rois = [roifile.ImagejRoi.frombytes(b) for b in (overlays if isinstance(overlays, list) else [overlays])]
    assert len(rois) == 6
