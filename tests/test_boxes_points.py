"""Box (YOLO/VOC/COCO/CSV) and point (ThunderSTORM) targets: real BCCD and Deep-STORM data, and refusals."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from dl4mic.data.boxes import (Box, Boxes, box_records, check_boxes, image_size, read_box_csv, read_box_targets,
                               read_class_names, read_coco, read_voc, read_yolo)
from dl4mic.data.points import (Points, check_points, movie_shape, read_point_targets, read_thunderstorm)
from dl4mic.errors import UserError
from dl4mic.fiji.boxes import write_boxes_csv
from dl4mic.qc.metrics import as_box_records, detection_metrics, localisation_metrics

FEW = ["BloodImage_00001", "BloodImage_00005", "BloodImage_00010", "BloodImage_00020"]


def refused(call, *words) -> str:
    """The UserError of `call`: one sentence, naming every word in `words`."""
    with pytest.raises(UserError) as info:
        call()
    msg = str(info.value)
    assert "\n" not in msg and msg.replace("e.g. ", "").rstrip(".").count(". ") == 0, msg
    for w in words:
        assert str(w) in msg, (w, msg)
    return msg


@pytest.fixture(scope="module")
def bccd(shared_data) -> Path:
    return shared_data / "bccd_blood_cells_detection"


@pytest.fixture(scope="module")
def truth(bccd) -> dict[str, list[tuple[str, list[float]]]]:
    """annotations.csv parsed independently: {stem: [(class, [xmin, ymin, xmax, ymax])]}."""
    out: dict = {}
    with open(bccd / "train" / "annotations.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            assert (r["width"], r["height"]) == ("640", "480")
            out.setdefault(Path(r["filename"]).stem, []).append(
                (r["class"], [float(r[k]) for k in ("xmin", "ymin", "xmax", "ymax")]))
    return out


def _agree(boxes: Boxes, expected, tol=1.0) -> float:
    """Boxes match `expected` [(class, xyxy)] one to one, class for class, within `tol` pixels; the worst gap."""
    from scipy.optimize import linear_sum_assignment

    assert len(boxes) == len(expected)
    if not expected:
        return 0.0
    gap = np.abs(boxes.xyxy()[:, None, :] - np.array([x for _, x in expected])[None]).max(axis=2)
    gap += 1e6 * (np.array([b.class_name for b in boxes])[:, None] != np.array([c for c, _ in expected])[None])
    rows, cols = linear_sum_assignment(gap)
    worst = float(gap[rows, cols].max())
    assert worst <= tol, worst
    return worst


# --- real BCCD boxes ---------------------------------------------------------------------------

def test_yolo_agrees_with_annotations_csv(bccd, truth):
    assert read_class_names(bccd / "classes.txt") == ["RBC", "WBC", "Platelets"]
    for stem in FEW:
        image = bccd / "train" / "images" / f"{stem}.jpg"
        assert image_size(image) == (640, 480)
        boxes = read_yolo(bccd / "train" / "labels" / f"{stem}.txt", image)  # classes.txt two folders up
        assert (boxes.width, boxes.height, boxes.class_names) == (640, 480, ["RBC", "WBC", "Platelets"])
        assert len(boxes) == len(truth[stem]) > 0
        _agree(boxes, truth[stem], tol=1.0)
        assert boxes.xyxy().shape == (len(boxes), 4) and set(boxes.class_ids()) <= {0, 1, 2}


def test_whole_train_split_matches_readme(bccd, truth):
    images = sorted((bccd / "train" / "images").glob("*.jpg"))
    targets = read_box_targets(images, bccd / "train" / "labels")
    assert len(targets) == 205 and set(targets) == set(truth)
    counts = Counter(b.class_name for boxes in targets.values() for b in boxes)
    assert counts == {"RBC": 2381, "WBC": 214, "Platelets": 209}  # the README's numbers
    worst = max(_agree(targets[s], truth[s], tol=1.0) for s in truth)
    assert worst < 0.01  # YOLO's 6 decimals, in pixels: far inside the 1-pixel tolerance
    # the BCCD CSV layout (filename,width,height,...) is read as well, with the same ids
    from_csv = read_box_targets(images, bccd / "train" / "annotations.csv")
    for s in FEW:
        np.testing.assert_array_equal(np.sort(from_csv[s].class_ids()), np.sort(targets[s].class_ids()))
    records = box_records(targets)
    assert len(records) == 2804 and as_box_records(records)[0]["class"] in ("RBC", "WBC", "Platelets")
    m = detection_metrics(records, box_records(from_csv))
    assert m["map50"] == pytest.approx(1.0) and m["tp"] == 2804


def _write_voc(path: Path, objs, size=(640, 480), extra: str = ""):
    body = "".join(f"<object><name>{c}</name><difficult>0</difficult><bndbox>"
                   + "".join(f"<{k}>{v:g}</{k}>" for k, v in zip(("xmin", "ymin", "xmax", "ymax"), x))
                   + "</bndbox></object>" for c, x in objs)
    path.write_text(f'<?xml version="1.0"?>{extra}<annotation><filename>{path.stem}.jpg</filename><size>'
                    f"<width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>{body}</annotation>")


def test_all_formats_give_the_same_boxes(bccd, truth, tmp_path):
    images = [bccd / "train" / "images" / f"{s}.jpg" for s in FEW]
    names = ["RBC", "WBC", "Platelets"]
    voc = tmp_path / "annotations"
    voc.mkdir()
    coco = {"images": [], "annotations": [], "categories": [{"id": 7 + i, "name": n} for i, n in enumerate(names)]}
    for i, s in enumerate(FEW):
        _write_voc(voc / f"{s}.xml", truth[s])
        coco["images"].append({"id": 100 + i, "file_name": f"{s}.jpg", "width": 640, "height": 480})
        for c, (x0, y0, x1, y1) in truth[s]:
            coco["annotations"].append({"id": len(coco["annotations"]) + 1, "image_id": 100 + i, "iscrowd": 0,
                                        "category_id": 7 + names.index(c), "bbox": [x0, y0, x1 - x0, y1 - y0]})
    (tmp_path / "coco.json").write_text(json.dumps(coco))

    yolo = read_box_targets(images, bccd / "train" / "labels")
    from_voc = read_box_targets(images, voc)
    from_coco = read_box_targets(images, tmp_path / "coco.json")
    write_boxes_csv(box_records(yolo), tmp_path / "boxes.csv")  # dl4mic's own CSV, round trip
    from_csv = read_box_targets(images, tmp_path / "boxes.csv")
    assert from_voc[FEW[0]].class_names == sorted(names)  # VOC: names sorted, stable
    assert from_coco[FEW[0]].class_names == names          # COCO: category order, ids 7.. -> 0..2
    assert from_csv[FEW[0]].class_names == sorted(names)   # CSV without classes.txt: names sorted...
    for s in FEW:
        for got in (yolo[s], from_voc[s], from_coco[s], from_csv[s]):
            assert (got.image, got.width, got.height) == (s, 640, 480)
            _agree(got, truth[s], tol=1.0)
        for got in (from_voc[s], from_coco[s]):
            _agree(got, truth[s], tol=1e-9)
    # ...and the same ids everywhere once the class list is given
    same = read_box_targets(images, voc, class_names=names)
    assert sorted(same[FEW[0]].class_ids()) == sorted(yolo[FEW[0]].class_ids())
    assert read_voc(voc / f"{FEW[0]}.xml", images[0], names).records() == same[FEW[0]].records()
    assert read_coco(tmp_path / "coco.json")[FEW[1]].records() == from_coco[FEW[1]].records()


def test_csv_classes_sorted_without_class_list(tmp_path):
    (tmp_path / "b.csv").write_text("image,frame,class,confidence,xmin,ymin,xmax,ymax\n"
                                    "a.png,0,WBC,0.5,1,2,10,12\na.png,1,RBC,1,0,0,5,5\nc.png,,,,,,,\n")
    got = read_box_csv(tmp_path / "b.csv", {"a": (20, 20), "c": (20, 20)})
    assert got["a"].class_names == ["RBC", "WBC"] and len(got["c"]) == 0
    assert got["a"][0] == Box(1, 1, 2, 10, 12, "WBC", 0.5, 0)
    assert got["a"].records()[1] == {"image": "a", "frame": 1, "class": "RBC", "confidence": 1.0,
                                     "xmin": 0, "ymin": 0, "xmax": 5, "ymax": 5}


# --- small synthetic cases and refusals ----------------------------------------------------------

@pytest.fixture()
def tiny(tmp_path) -> tuple[list[Path], Path]:
    """Two 64×48 PNG images, a YOLO labels folder with classes.txt (0 cell, 1 debris)."""
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    images = []
    for stem in ("a", "b"):
        Image.fromarray(np.zeros((48, 64), np.uint8)).save(tmp_path / "images" / f"{stem}.png")
        images.append(tmp_path / "images" / f"{stem}.png")
    (tmp_path / "labels" / "classes.txt").write_text("cell\ndebris\n")
    (tmp_path / "labels" / "a.txt").write_text("0 0.5 0.5 0.25 0.5\n1 0.1 0.1 0.2 0.2 0.9\n")
    (tmp_path / "labels" / "b.txt").write_text("")  # empty: no objects
    return images, tmp_path / "labels"


def test_tiny_yolo_and_empty_files(tiny, tmp_path):
    images, labels = tiny
    got = read_box_targets(images, labels)
    np.testing.assert_allclose(got["a"].xyxy(), [[24, 12, 40, 36], [0, 0, 12.8, 9.6]])
    assert [(b.class_id, b.class_name, b.confidence) for b in got["a"]] == [(0, "cell", None), (1, "debris", 0.9)]
    assert len(got["b"]) == 0 and got["b"].class_names == ["cell", "debris"] and got["b"].records() == []
    # an empty or object-free VOC file is an image without objects too
    (tmp_path / "voc").mkdir()
    (tmp_path / "voc" / "a.xml").write_text("")
    _write_voc(tmp_path / "voc" / "b.xml", [], size=(64, 48))
    voc = read_box_targets(images, tmp_path / "voc")
    assert len(voc["a"]) == len(voc["b"]) == 0 and (voc["a"].width, voc["a"].height) == (64, 48)
    # a TIFF stack's size is its Y, X
    tifffile.imwrite(tmp_path / "s.tif", np.zeros((3, 30, 50), np.uint16), photometric="minisblack")
    assert image_size(tmp_path / "s.tif") == (50, 30)


def test_within_tolerance_is_clipped():
    boxes = check_boxes(Boxes("a", 64, 48, [Box(0, -0.5, 0, 64.8, 48, "x")], ["x"]))
    assert boxes[0] == Box(0, 0, 0, 64, 48, "x")


YOLO_REFUSALS = [
    ("0 0.95 0.5 0.2 0.2", ["a.txt line 1", "3.2 pixels past the right edge", "64×48"]),
    ("0 0.5 0.5 0 0.2", ["a.txt line 1", "zero size"]),
    ("2 0.5 0.5 0.1 0.1", ["a.txt line 1", "class id 2", "0 cell, 1 debris", "classes.txt"]),
    ("0 0.5 0.5 0.1", ["a.txt line 1", "4 values, not 5", "class cx cy w h"]),
    ("0 0.5 abc 0.1 0.1", ["a.txt line 1", "'abc' is not a number"]),
    ("0.5 0.5 0.5 0.1 0.1", ["a.txt line 1", "not a whole number"]),
    ("\n0 32 24 16 24", ["a.txt line 2", "look like pixels", "divide x and w by 64"]),
]


@pytest.mark.parametrize("line,words", YOLO_REFUSALS)
def test_yolo_refusals(tiny, line, words):
    images, labels = tiny
    (labels / "a.txt").write_text(line + "\n")
    refused(lambda: read_box_targets(images, labels), *words)


def test_pairing_refusals(tiny, tmp_path):
    images, labels = tiny
    (labels / "b.txt").unlink()
    refused(lambda: read_box_targets(images, labels), "b.png", str(labels / "b.txt"), "empty file")
    (labels / "b.xml").write_text("")
    refused(lambda: read_box_targets(images, labels), "both YOLO .txt and VOC .xml")
    refused(lambda: read_box_targets(images, tmp_path / "nowhere"), "nowhere", "do not exist")
    refused(lambda: read_box_targets(images, labels / "a.txt"), "one annotation file for 2 images")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "a.tif")
    refused(lambda: read_box_targets(images + [tmp_path / "a.tif"], labels), "same name")


def test_voc_refusals(tiny, tmp_path):
    images, _ = tiny
    voc = tmp_path / "voc"
    voc.mkdir()
    (voc / "b.xml").write_text("")
    cases = [
        (lambda p: _write_voc(p, [("cell", [10, 5, 4, 20])], (64, 48)), ["a.xml object 1 (cell)", "negative size"]),
        (lambda p: _write_voc(p, [("cell", [10, 5, 70, 20])], (64, 48)), ["a.xml object 1", "6.0 pixels past"]),
        (lambda p: _write_voc(p, [("cell", [10, 5, 20, 20])], (640, 480)), ["a.xml", "640×480", "64×48"]),
        (lambda p: p.write_text("<annotation><object><name>cell</name><bndbox><xmin>1</xmin><ymin>1</ymin>"
                                "<xmax>3</xmax></bndbox></object></annotation>"), ["a.xml object 1", "<ymax>"]),
        (lambda p: p.write_text("<annotation><object>"), ["a.xml is not valid XML"]),
        (lambda p: p.write_text("<labels/>"), ["a.xml", "<labels>"]),
        (lambda p: _write_voc(p, [], (64, 48), extra='<!DOCTYPE lolz [<!ENTITY lol "lol">'
                                                         '<!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'),
         ["a.xml declares a DOCTYPE or ENTITY"]),
    ]
    for write, words in cases:
        write(voc / "a.xml")
        refused(lambda: read_box_targets(images, voc), *words)
    refused(lambda: read_voc(voc / "b.xml"), "b.xml gives no image <size>")
    _write_voc(voc / "a.xml", [("virus", [1, 1, 5, 5])], (64, 48))
    refused(lambda: read_voc(voc / "a.xml", images[0], ["cell"]), "a.xml object 1 (virus)", "'virus'", "cell")


def test_coco_refusals(tiny, tmp_path):
    images, _ = tiny
    base = {"images": [{"id": 1, "file_name": "a.png", "width": 64, "height": 48},
                       {"id": 2, "file_name": "b.png", "width": 64, "height": 48}],
            "categories": [{"id": 1, "name": "cell"}]}
    cases = [
        ({"annotations": [{"id": 5, "image_id": 1, "category_id": 3, "bbox": [1, 1, 4, 4]}]},
         ["annotation id 5", "category_id 3", "ids 1"]),
        ({"annotations": [{"id": 5, "image_id": 9, "category_id": 1, "bbox": [1, 1, 4, 4]}]}, ["image_id 9"]),
        ({"annotations": [{"id": 5, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4]}]}, ["[x, y, width, height]"]),
        ({"annotations": [{"id": 5, "image_id": 1, "category_id": 1, "bbox": [1, 1, -4, 4]}]}, ["negative size"]),
        ({"annotations": [{"id": 5, "image_id": 1, "category_id": 1, "bbox": [50, 1, 40, 4]}]}, ["26.0 pixels past"]),
        ({"images": base["images"][:1], "annotations": []}, ["b.png is not in the annotations", "'images'"]),
        ({"images": [dict(base["images"][0], width=640), base["images"][1]], "annotations": []}, ["640×48", "64×48"]),
        ({"annotations": None}, ["lacks the COCO lists"]),
    ]
    for change, words in cases:
        (tmp_path / "c.json").write_text(json.dumps({**base, **change}))
        refused(lambda: read_box_targets(images, tmp_path / "c.json"), "c.json", *words)
    (tmp_path / "c.json").write_text("{")
    refused(lambda: read_coco(tmp_path / "c.json"), "c.json is not valid JSON")


def test_csv_refusals(tiny, tmp_path):
    images, _ = tiny
    head = "image,frame,class,confidence,xmin,ymin,xmax,ymax\n"
    cases = [
        ("image,class,x,y\na.png,cell,1,2\n", ["no xmin, ymin, xmax, ymax column", "found: image, class, x, y"]),
        (head + "a.png,0,cell,1,1,2,oops,4\nb.png,,,,,,,\n", ["line 2", "xmax 'oops'"]),
        (head + "a.png,0,cell,1,1,2,3,4\n", ["b.png is not in the annotations", "empty xmin"]),
        (head + "a.png,0,cell,1,1,2,3,50\nb.png,,,,,,,\n", ["line 2", "2.0 pixels past the bottom edge"]),
    ]
    for text, words in cases:
        (tmp_path / "b.csv").write_text(text)
        refused(lambda: read_box_targets(images, tmp_path / "b.csv"), "b.csv", *words)
    (tmp_path / "b.csv").write_text(head + "a.png,0,virus,1,1,2,3,4\n")
    refused(lambda: read_box_csv(tmp_path / "b.csv", {"a": (64, 48)}, ["cell"]), "line 2", "'virus'")


def test_class_list_refusals(tmp_path):
    (tmp_path / "classes.txt").write_text("cell\n\ndebris\n")
    refused(lambda: read_class_names(tmp_path / "classes.txt"), "classes.txt line 2 is empty")
    (tmp_path / "classes.txt").write_text("cell\ncell\n")
    refused(lambda: read_class_names(tmp_path / "classes.txt"), "twice", "lines 1 and 2")
    (tmp_path / "classes.txt").write_text("0 RBC\n1 WBC\n")
    assert read_class_names(tmp_path / "classes.txt") == ["RBC", "WBC"]


# --- real Deep-STORM points --------------------------------------------------------------------

@pytest.fixture(scope="module")
def storm(shared_data) -> Path:
    return shared_data / "smlm_deepstorm_microtubules" / "train"


def test_thunderstorm_real_training_movie(storm):
    movie = storm / "images" / "simulated_train.tif"
    assert movie_shape(movie) == (20, 64, 64)
    got = read_point_targets([movie], storm / "positions", pixel_size_nm=100.0)
    pts = got["simulated_train"]
    assert len(pts) == 4956  # the README's count
    assert (pts.frame.min(), pts.frame.max()) == (1, 20) and len(pts.per_frame()) == 20
    assert sum(len(v) for v in pts.per_frame().values()) == 4956
    xy = pts.xy_nm()
    assert xy.min() >= 0 and xy.max() <= 6400  # origin at the image corner, 64 px × 100 nm
    px = pts.xy_px(100.0)
    assert px.min() >= 0 and px.max() <= 64 and np.allclose(px * 100, xy)
    assert pts.x_nm[0] == pytest.approx(67.843) and pts.y_nm[0] == pytest.approx(2484.15594)
    f1 = pts.frame == 1
    m = localisation_metrics(xy[f1], xy[f1] + 10.0, tolerance=50.0)
    assert m["tp"] == f1.sum() > 100 and m["jaccard"] == 1.0 and m["rmse"] <= np.sqrt(200.0) + 1e-9


def test_thunderstorm_quoted_pixels_uncertainty(tmp_path):
    (tmp_path / "m.csv").write_text('"id","frame","x [px]","y [px]","uncertainty [nm]"\n'
                                    '1,1,1.5,2.5,12\n\n2,3,0.25,63.0,8\n')
    pts = read_thunderstorm(tmp_path / "m.csv", pixel_size_nm=100)
    np.testing.assert_allclose(pts.xy_nm(), [[150, 250], [25, 6300]])
    np.testing.assert_allclose(pts.uncertainty_nm, [12, 8])
    assert list(pts.frame) == [1, 3] and list(pts.line) == [2, 4]
    assert list(pts.per_frame(100.0)) == [1, 3] and np.allclose(pts.per_frame(100.0)[3], [[0.25, 63.0]])
    refused(lambda: read_thunderstorm(tmp_path / "m.csv"), "m.csv", "x in pixels", "pixel size")
    (tmp_path / "u.csv").write_text("x [um],y [um]\n1.5,0.5\n")
    u = read_thunderstorm(tmp_path / "u.csv")
    assert list(u.frame) == [1] and np.allclose(u.xy_nm(), [[1500, 500]])


POINT_REFUSALS = [
    ("id,frame,xnm,ynm\n1,1,5,5\n", ["no x and y columns", "found: id, frame, xnm, ynm"]),
    ("frame,x [nm],y [nm]\n1,5,5\n2,abc,5\n", ["line 3", "x [nm] is 'abc'"]),
    ("frame,x [nm],y [nm]\n1,5,5\n1,5,\n", ["line 3", "y [nm] is ''"]),
    ("frame,x [nm],y [nm]\n0,5,5\n", ["line 2", "frame 0", "1..4", "numbers frames from 1", "add 1 to every frame"]),
    ("frame,x [nm],y [nm]\n5,5,5\n", ["line 2", "frame 5", "1..4", "belongs to this movie"]),
    ("frame,x [nm],y [nm]\n1,5,5\n2,5,3350\n", ["line 3", "y = 3350 nm", "0..3200 nm", "32 pixels of 100 nm"]),
    ("frame,x [nm],y [nm]\n1,-150,5\n", ["line 2", "x = -150 nm"]),
    ("frame,x [feet],y [feet]\n1,5,5\n", ["'x [feet]'", "x [nm]"]),
]


@pytest.mark.parametrize("text,words", POINT_REFUSALS)
def test_point_refusals(tmp_path, text, words):
    tifffile.imwrite(tmp_path / "m.tif", np.zeros((4, 32, 48), np.uint16), photometric="minisblack")
    (tmp_path / "m.csv").write_text(text)
    refused(lambda: read_point_targets([tmp_path / "m.tif"], tmp_path / "m.csv", 100.0), "m.csv", *words)


def test_point_pairing_refusals(tmp_path):
    tifffile.imwrite(tmp_path / "m.tif", np.zeros((4, 32, 48), np.uint16), photometric="minisblack")
    (tmp_path / "pos").mkdir()
    refused(lambda: read_point_targets([tmp_path / "m.tif"], tmp_path / "pos", 100.0),
            "m.tif", str(tmp_path / "pos" / "m.csv"))
    refused(lambda: read_point_targets([tmp_path / "m.tif"], tmp_path / "pos", 0), "pixel size")
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((2, 8, 8, 3), np.uint8), photometric="rgb")
    refused(lambda: movie_shape(tmp_path / "rgb.tif"), "rgb.tif", "(T, Y, X)")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "rgb.png")
    refused(lambda: movie_shape(tmp_path / "rgb.png"), "rgb.png", "single-channel")
    Image.fromarray(np.zeros((8, 9), np.uint8)).save(tmp_path / "one.png")
    assert movie_shape(tmp_path / "one.png") == (1, 8, 9)
    pts = Points(np.array([1]), np.array([5.0]), np.array([5.0]))
    check_points(pts, (1, 8, 8), 100.0)
    refused(lambda: check_points(pts, (1, 8, 8), 0.5), "x = 5 nm", "the positions line 2")
